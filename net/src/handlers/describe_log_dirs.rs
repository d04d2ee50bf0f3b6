//! DescribeLogDirs (key 35): the data directory, its partitions' sizes (asked of their owning
//! shards) and, from v4, the file system's total and free bytes.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::shard::{self, on_shard};

pub async fn handle(request: DescribeLogDirsRequest, version: i16) -> DescribeLogDirsResponse {
    let state = shard::current();
    let topics = state.topics();
    // (topic, partition) wanted, grouped by owning shard; null asks for every partition.
    let mut by_shard: BTreeMap<usize, Vec<(String, usize)>> = BTreeMap::new();
    let wanted: Vec<(String, Vec<usize>)> = match request.topics {
        None => topics
            .by_name
            .values()
            .map(|t| (t.name.clone(), (0..t.shards.len()).collect()))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .filter_map(|&p| usize::try_from(p).ok())
                    .collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect(),
    };
    for (topic, partitions) in &wanted {
        let Some(meta) = topics.get(topic) else {
            continue;
        };
        for &partition in partitions {
            if let Some(&shard) = meta.shards.get(partition) {
                by_shard
                    .entry(shard)
                    .or_default()
                    .push((topic.clone(), partition));
            }
        }
    }
    let mut sizes: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
    for (shard, partitions) in by_shard {
        let Ok(found) = on_shard(shard, move || async move {
            let state = shard::current();
            partitions
                .into_iter()
                .filter_map(|(topic, p)| {
                    Some((topic.clone(), p, state.log(&topic, p)?.size_bytes()))
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        for (topic, partition, size) in found {
            sizes.entry(topic).or_default().push((partition, size));
        }
    }
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_string(
        std::fs::canonicalize(&state.data_dir)
            .unwrap_or_else(|_| state.data_dir.clone())
            .display()
            .to_string(),
    );
    result.topics = sizes
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(topic));
            t.partitions = partitions
                .into_iter()
                .map(|(index, size)| {
                    let mut p = DescribeLogDirsPartition::default();
                    p.partition_index = index as i32;
                    p.partition_size = size as i64;
                    p
                })
                .collect();
            t
        })
        .collect();
    if version >= 4 {
        if let Ok(fs) = nix::sys::statvfs::statvfs(&state.data_dir) {
            let block = fs.fragment_size() as i64;
            result.total_bytes = fs.blocks() as i64 * block;
            result.usable_bytes = fs.blocks_available() as i64 * block;
        }
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    response
}
