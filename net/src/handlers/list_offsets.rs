//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3) and by-timestamp
//! offsets of partitions, asked of their owning shards.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::error_code;
use crate::cluster::shard::{self, on_shard};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

struct Lookup {
    slot: (usize, usize),
    topic: String,
    partition: usize,
    timestamp: i64,
}

pub async fn handle(request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = shard::current().topics();
    let mut response = ListOffsetsResponse::default();
    let mut by_shard: BTreeMap<usize, Vec<Lookup>> = BTreeMap::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for (p, partition) in topic.partitions.iter().enumerate() {
            let mut result = ListOffsetsPartitionResponse::default();
            result.partition_index = partition.partition_index;
            result.timestamp = -1;
            result.offset = -1;
            result.leader_epoch = if version >= 4 { 0 } else { -1 };
            let shard = topics.shard_of(topic.name.0.as_str(), partition.partition_index);
            match shard {
                Some(shard) => by_shard.entry(shard).or_default().push(Lookup {
                    slot: (t, p),
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index as usize,
                    timestamp: partition.timestamp,
                }),
                None => result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            topic_response.partitions.push(result);
        }
        response.topics.push(topic_response);
    }
    for (shard, lookups) in by_shard {
        let Ok(results) = on_shard(shard, move || look_up_all(lookups)).await else {
            continue;
        };
        for ((t, p), code, timestamp, offset) in results {
            let slot = &mut response.topics[t].partitions[p];
            slot.error_code = code;
            slot.timestamp = timestamp;
            slot.offset = offset;
        }
    }
    response
}

/// (slot, error code, timestamp, offset) for each lookup, on the owning shard.
async fn look_up_all(lookups: Vec<Lookup>) -> Vec<((usize, usize), i16, i64, i64)> {
    let state = shard::current();
    let mut results = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let Some(log) = state.log(&lookup.topic, lookup.partition) else {
            results.push((lookup.slot, error_code::NOT_LEADER_OR_FOLLOWER, -1, -1));
            continue;
        };
        let found = match lookup.timestamp {
            LATEST => Ok(Some((-1, log.high_watermark()))),
            EARLIEST => Ok(Some((-1, log.log_start_offset()))),
            MAX_TIMESTAMP => Ok(log.max_timestamp().map(|m| (m.timestamp, m.offset))),
            timestamp if timestamp >= 0 => log
                .offset_for_timestamp(timestamp)
                .await
                .map(|found| found.map(|m| (m.timestamp, m.offset))),
            _ => {
                results.push((lookup.slot, error_code::INVALID_REQUEST, -1, -1));
                continue;
            }
        };
        results.push(match found {
            Ok(Some((timestamp, offset))) => (lookup.slot, error_code::NONE, timestamp, offset),
            Ok(None) => (lookup.slot, error_code::NONE, -1, -1),
            Err(_) => (lookup.slot, error_code::KAFKA_STORAGE_ERROR, -1, -1),
        });
    }
    results
}
