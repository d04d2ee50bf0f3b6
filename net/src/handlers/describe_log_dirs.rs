//! DescribeLogDirs (key 35): the data directory, its partitions' sizes (asked of their owning
//! shards) and, from v4, the file system's total and free bytes.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::partitions::{shard, Partition, TopicPartition};
use crate::route::{Need, Routed};

crate::api!(DescribeLogDirs, 1..=4, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: DescribeLogDirsRequest, version: i16) -> DescribeLogDirsResponse {
    let state = shard::current();
    let topics = state.topics();
    // The partitions asked about (null: every partition), each to a shard holding a replica.
    let wanted: Vec<(TopicPartition, ())> = match request.topics {
        None => topics
            .by_name
            .values()
            .flat_map(|t| (0..t.shards.len()).map(|p| (t.partition(p), ())))
            .collect(),
        Some(list) => list
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.as_str();
                t.partitions
                    .iter()
                    .map(move |&p| (TopicPartition::new(name, p), ()))
            })
            .collect(),
    };
    let mut routed = Routed::new(Need::AnyReplica);
    for (tp, ()) in &wanted {
        routed.push(&topics, &tp.topic, tp.partition, ());
    }
    let sizes = routed.scatter(sizes_on_shard).await.gather().await;
    // Partitions this broker doesn't hold are left out, as Kafka leaves them out.
    let mut by_topic: std::collections::BTreeMap<&str, Vec<(i32, u64)>> = Default::default();
    for ((tp, ()), size) in wanted.iter().zip(sizes) {
        if let Ok(size) = size {
            by_topic
                .entry(&tp.topic)
                .or_default()
                .push((tp.partition, size));
        }
    }
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_string(
        std::fs::canonicalize(&state.data_dir)
            .unwrap_or_else(|_| state.data_dir.clone())
            .display()
            .to_string(),
    );
    result.topics = by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup_by_key(|(index, _)| *index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(topic.to_owned()));
            t.partitions = partitions
                .into_iter()
                .map(|(index, size)| {
                    let mut p = DescribeLogDirsPartition::default();
                    p.partition_index = index;
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

/// Each partition's size on disk, on the shard holding it.
async fn sizes_on_shard(partitions: Vec<(Partition, ())>) -> Vec<u64> {
    partitions
        .iter()
        .map(|(partition, ())| partition.log().size_bytes())
        .collect()
}
