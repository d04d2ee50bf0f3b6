//! Produce (key 0): appends record batches to partition logs on their owning shards, one
//! message per shard. acks=0 requests get no response at all (as in Kafka).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::{AppendError, AppendInfo};

use super::error_code;
use runnel_engine::rt::{self, ShardStopped};

use crate::cluster::shard;

/// One partition's records, on their way to its shard.
struct Append {
    slot: Slot,
    topic: String,
    partition: usize,
    records: Bytes,
}

/// A produce request whose records are placed in their logs (offsets assigned), waiting for
/// the appends to complete.
#[derive(Debug)]
pub struct Placed {
    response: ProduceResponse,
    acks: i16,
    shards: Vec<Shard>,
}

/// A partition's place in the request and the response: (topic, partition) indexes.
type Slot = (usize, usize);

/// A shard's placed appends, each completing in its own task.
type Appending = Vec<(Slot, rt::JoinHandle<AppendResult>)>;

/// The first stage of a produce request: returns once every partition's records have been
/// placed in its log on its owning shard, so offsets are assigned in the order requests are
/// placed. The connection places a pipelined request only after the one before it, and can
/// then read the next while these appends are written and synced (they share a group commit).
pub async fn place(request: ProduceRequest, _version: i16) -> Placed {
    let topics = shard::current().topics();
    let acks = request.acks;
    let mut response = ProduceResponse::default();
    if !matches!(acks, -1..=1) {
        // Kafka answers every partition with INVALID_REQUIRED_ACKS and appends nothing.
        for topic in request.topic_data {
            let mut topic_response = TopicProduceResponse::default();
            topic_response.name = topic.name;
            for partition in topic.partition_data {
                let mut result = unanswered(partition.index);
                result.error_code = error_code::INVALID_REQUIRED_ACKS;
                topic_response.partition_responses.push(result);
            }
            response.responses.push(topic_response);
        }
        return Placed {
            response,
            acks: 1,
            shards: Vec::new(),
        };
    }
    let mut by_shard: BTreeMap<usize, Vec<Append>> = BTreeMap::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        for (p, partition) in topic.partition_data.into_iter().enumerate() {
            let mut result = unanswered(partition.index);
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
    // Each shard places its partitions when it takes the message: this shard at once, the
    // others in the order this shard posted to them, which is request order. So the next
    // request can be placed as soon as these messages are posted, without waiting for them
    // to run.
    let mut shards = Vec::with_capacity(by_shard.len());
    for (shard, appends) in by_shard {
        if shard == rt::shard_id() {
            shards.push(Shard::Here(place_on_this_shard(appends)));
            continue;
        }
        let mut submit = rt::submit_to(shard, move || collect(place_on_this_shard(appends)));
        match submit.posted().await {
            Ok(()) => shards.push(Shard::There(submit)),
            Err(stopped) => shards.push(Shard::Stopped(stopped)),
        }
    }
    Placed {
        response,
        acks,
        shards,
    }
}

/// Where a shard's appends stand once a request is placed.
#[derive(Debug)]
enum Shard {
    /// Placed on this shard.
    Here(Appending),
    /// Posted to another shard, which places them when it takes the message and answers
    /// once they complete.
    There(rt::SubmitTo<Vec<(Slot, AppendResult)>>),
    /// That shard has stopped.
    Stopped(ShardStopped),
}

impl Shard {
    async fn results(self) -> Result<Vec<(Slot, AppendResult)>, ShardStopped> {
        match self {
            Shard::Here(appending) => Ok(collect(appending).await),
            Shard::There(submit) => submit.await,
            Shard::Stopped(stopped) => Err(stopped),
        }
    }
}

impl Placed {
    /// Waits for the appends and fills in the response; `Ok(None)` for acks=0 (no response).
    /// An acks=0 request that failed somewhere is `Err(its first error code)`: Kafka closes the
    /// connection then, the only way to tell a client that expects no answer to refresh its
    /// metadata.
    pub async fn finish(self) -> Result<Option<ProduceResponse>, i16> {
        let Placed {
            mut response,
            acks,
            shards,
        } = self;
        for shard in shards {
            let Ok(results) = shard.results().await else {
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
        if acks != 0 {
            return Ok(Some(response));
        }
        let failed = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .map(|p| p.error_code)
            .find(|&code| code != error_code::NONE);
        match failed {
            Some(code) => Err(code),
            None => Ok(None),
        }
    }
}

/// A partition's answer before its append has reported.
fn unanswered(index: i32) -> PartitionProduceResponse {
    let mut result = PartitionProduceResponse::default();
    result.index = index;
    result.base_offset = -1;
    result.log_append_time_ms = -1;
    result.log_start_offset = -1;
    result
}

type AppendResult = Result<AppendInfo, (i16, Option<String>)>;

/// Places every append in its log now, in request order. The appends complete concurrently
/// (each awaited by its own task), so one partition's write or sync doesn't wait for
/// another's. The records are not copied: the log writes them from the request's buffer.
fn place_on_this_shard(appends: Vec<Append>) -> Appending {
    let state = shard::current();
    appends
        .into_iter()
        .map(|append| {
            let bytes = append.records.len() as u64;
            let started = std::time::Instant::now();
            let appended = state
                .log(&append.topic, append.partition)
                .map(|log| log.append(append.records));
            let task = rt::spawn_local(async move {
                let Some(appended) = appended else {
                    return Err((error_code::LEADER_NOT_AVAILABLE, None));
                };
                let info = appended
                    .await
                    .map_err(|e| (append_error_code(&e), Some(e.to_string())))?;
                let messages = (info.last_offset - info.base_offset + 1).max(0) as u64;
                crate::metrics::record_append(&append.topic, messages, bytes, started.elapsed());
                Ok(info)
            });
            (append.slot, task)
        })
        .collect()
}

/// Waits for a shard's placed appends.
async fn collect(appending: Appending) -> Vec<(Slot, AppendResult)> {
    let mut results = Vec::with_capacity(appending.len());
    for (slot, task) in appending {
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
