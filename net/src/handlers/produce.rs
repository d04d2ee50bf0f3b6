//! Produce (key 0): appends record batches to partition logs on their owning shards, one
//! message per shard. acks=0 requests get no response at all (as in Kafka).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::{AppendError, AppendInfo};

use super::error_code;
use crate::cluster::shard::{self, on_shard};

/// One partition's records, on their way to its shard.
struct Append {
    slot: (usize, usize),
    topic: String,
    partition: usize,
    records: Bytes,
}

pub async fn handle(request: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let topics = shard::current().topics();
    let mut response = ProduceResponse::default();
    if !matches!(request.acks, -1..=1) {
        // Kafka answers every partition with INVALID_REQUIRED_ACKS and appends nothing.
        for topic in request.topic_data {
            let mut topic_response = TopicProduceResponse::default();
            topic_response.name = topic.name;
            for partition in topic.partition_data {
                let mut result = PartitionProduceResponse::default();
                result.index = partition.index;
                result.error_code = error_code::INVALID_REQUIRED_ACKS;
                result.base_offset = -1;
                result.log_append_time_ms = -1;
                result.log_start_offset = -1;
                topic_response.partition_responses.push(result);
            }
            response.responses.push(topic_response);
        }
        return Some(response);
    }
    let mut by_shard: BTreeMap<usize, Vec<Append>> = BTreeMap::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        for (p, partition) in topic.partition_data.into_iter().enumerate() {
            let mut result = PartitionProduceResponse::default();
            result.index = partition.index;
            result.base_offset = -1;
            result.log_append_time_ms = -1;
            result.log_start_offset = -1;
            let shard = topics.shard_of(topic.name.0.as_str(), partition.index);
            if topic.name.0.as_str() == crate::groups::OFFSETS_TOPIC {
                // Only the group coordinators write it (Kafka: "Cannot append to internal
                // topic").
                result.error_code = error_code::INVALID_TOPIC_EXCEPTION;
                topic_response.partition_responses.push(result);
                continue;
            }
            match (shard, partition.records) {
                (Some(shard), Some(records)) => by_shard.entry(shard).or_default().push(Append {
                    slot: (t, p),
                    topic: topic.name.0.to_string(),
                    partition: partition.index as usize,
                    records,
                }),
                (Some(_), None) => result.error_code = error_code::CORRUPT_MESSAGE,
                (None, _) => result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            topic_response.partition_responses.push(result);
        }
        response.responses.push(topic_response);
    }
    // Every shard appends its partitions; the shards work concurrently.
    let handles: Vec<_> = by_shard
        .into_iter()
        .map(|(shard, appends)| {
            runnel_engine::rt::spawn_local(on_shard(shard, move || append_all(appends)))
        })
        .collect();
    for handle in handles {
        let Ok(results) = handle.await else {
            continue; // the shard stopped: its partitions keep the error set below
        };
        for ((t, p), result) in results {
            let slot = &mut response.responses[t].partition_responses[p];
            match result {
                Ok(info) => {
                    slot.error_code = error_code::NONE;
                    slot.base_offset = info.base_offset;
                    slot.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                    slot.log_start_offset = info.log_start_offset;
                }
                Err((code, message)) => {
                    slot.error_code = code;
                    slot.error_message = message.map(StrBytes::from_string);
                }
            }
        }
    }
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if partition.error_code == error_code::NONE && partition.base_offset == -1 {
                partition.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
            }
        }
    }
    (request.acks != 0).then_some(response)
}

type AppendResult = Result<AppendInfo, (i16, Option<String>)>;

/// Appends on the owning shard. The partitions' appends run concurrently (each its own task,
/// started in request order), so one partition's write doesn't wait for another's. The records
/// are not copied: the log writes them from the request's buffer.
async fn append_all(appends: Vec<Append>) -> Vec<((usize, usize), AppendResult)> {
    let state = shard::current();
    let started: Vec<_> = appends
        .into_iter()
        .map(|append| {
            let log = state.log(&append.topic, append.partition);
            let task = runnel_engine::rt::spawn_local(async move {
                let Some(log) = log else {
                    return Err((error_code::LEADER_NOT_AVAILABLE, None));
                };
                let started = std::time::Instant::now();
                let bytes = append.records.len() as u64;
                let info = log
                    .append(append.records)
                    .await
                    .map_err(|e| (append_error_code(&e), Some(e.to_string())))?;
                let messages = (info.last_offset - info.base_offset + 1).max(0) as u64;
                crate::metrics::record_append(&append.topic, messages, bytes, started.elapsed());
                Ok(info)
            });
            (append.slot, task)
        })
        .collect();
    let mut results = Vec::with_capacity(started.len());
    for (slot, task) in started {
        results.push((slot, task.await));
    }
    results
}

/// The Kafka error code for a refused append.
pub fn append_error_code(e: &AppendError) -> i16 {
    use runnel_engine::log::batch::BatchError;
    match e {
        AppendError::Batch(BatchError::Corrupt(_)) => error_code::CORRUPT_MESSAGE,
        AppendError::Batch(BatchError::TooLarge { .. }) => error_code::MESSAGE_TOO_LARGE,
        AppendError::Batch(BatchError::Invalid(_)) => error_code::INVALID_RECORD,
        AppendError::RecordListTooLarge { .. } => error_code::RECORD_LIST_TOO_LARGE,
        AppendError::Closed => error_code::NOT_LEADER_OR_FOLLOWER,
        AppendError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
    }
}
