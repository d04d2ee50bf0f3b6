//! Produce (key 0, v3-v9): appends record batches to partition logs on their owning shards,
//! one message per shard. acks=0 requests get no response at all (as in Kafka).
//!
//! acks=all (-1) answers once every in-sync replica has the records (the high watermark has
//! passed them), and is refused with NOT_ENOUGH_REPLICAS before anything is appended while
//! the ISR is smaller than `min.insync.replicas`; acks=1 answers after the leader's own
//! append. A lone broker is its partitions' only replica: both answer alike.
//!
//! Runs in two phases, so a connection's pipelined requests are written and synced together:
//! [`place`] returns once every partition's records are placed in their logs (offsets
//! assigned, in request order), then [`Placed::finish`] waits for the appends.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::batch::{self, BatchError};
use runnel_engine::log::{AppendError, AppendInfo};
use runnel_engine::rt;

use crate::kafka::dispatch::{Api, Call, Finishing, HandlerError, LocalBoxFuture, Run};
use crate::kafka::error_code;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::{shard, Partition};
use crate::route::{self, record_errors, ErrorCode, Need, Routed, Scattered};

pub const API: Api = Api::new(
    kafka_protocol::messages::ApiKey::Produce,
    3,
    9,
    Run::Pipelined(run),
);

fn run(call: Call) -> LocalBoxFuture<Finishing> {
    Box::pin(async move {
        let RequestKind::Produce(request) = call.body else {
            return Finishing::failed(HandlerError::WrongBody);
        };
        let placed = place(request).await;
        Finishing::new(async move {
            match placed.finish().await {
                Ok(response) => Ok(response.map(|r| ResponseKind::Produce(r).into())),
                Err(code) => Err(HandlerError::FailedWithoutAcks(code)),
            }
        })
    })
}

/// A produce request whose records are placed in their logs (offsets assigned), waiting for
/// the appends to complete.
#[derive(Debug)]
pub struct Placed {
    response: ProduceResponse,
    acks: i16,
    appends: Option<Scattered<AppendResult>>,
}

/// An append's outcome: where the records landed, or why not.
type AppendResult = Result<AppendInfo, Refusal>;

/// A refused append: the Kafka error, its message, and the records at fault (batch index and
/// message; see [`route::record_errors`]).
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

/// The first phase of a produce request: returns once every partition's records have been
/// placed in its log on its owning shard, so offsets are assigned in the order requests are
/// placed. The connection places a pipelined request only after the one before it, and can
/// then read the next while these appends are written and synced (they share a group commit).
pub async fn place(request: ProduceRequest) -> Placed {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
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
            appends: None,
        };
    }
    let topics = shard::current().topics();
    let mut routed = Routed::new(Need::Leader);
    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default();
        let name = topic.name.0.as_str();
        for partition in topic.partition_data {
            topic_response
                .partition_responses
                .push(unanswered(partition.index));
            match partition.records {
                // Only the coordinators write them (Kafka: "Cannot append to internal
                // topic").
                _ if is_internal(name) => routed.refuse(error_code::INVALID_TOPIC_EXCEPTION),
                Some(records) => routed.push(&topics, name, partition.index, records),
                None => routed.refuse(error_code::CORRUPT_MESSAGE),
            }
        }
        topic_response.name = topic.name;
        response.responses.push(topic_response);
    }
    Placed {
        response,
        acks,
        appends: Some(
            routed
                .scatter(move |appends| place_on_this_shard(appends, acks, timeout))
                .await,
        ),
    }
}

impl Placed {
    /// Waits for the appends and fills in the response; `Ok(None)` for acks=0 (no response).
    /// An acks=0 request that failed somewhere is `Err(its first error code)`: Kafka closes the
    /// connection then, the only way to tell a client that expects no answer to refresh its
    /// metadata.
    pub async fn finish(self) -> Result<Option<ProduceResponse>, ErrorCode> {
        let Placed {
            mut response,
            acks,
            appends,
        } = self;
        if let Some(appends) = appends {
            let results = appends.gather().await;
            let partitions = response
                .responses
                .iter_mut()
                .flat_map(|t| &mut t.partition_responses);
            for (answer, result) in partitions.zip(results) {
                match result {
                    Ok(Ok(info)) => {
                        answer.base_offset = info.base_offset;
                        answer.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                        answer.log_start_offset = info.log_start_offset;
                    }
                    Ok(Err(refusal)) => {
                        answer.error_code = refusal.code;
                        answer.error_message = refusal.message.map(StrBytes::from_string);
                        answer.record_errors = refusal
                            .record_errors
                            .into_iter()
                            .map(|(index, message)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(index)
                                    .with_batch_index_error_message(Some(StrBytes::from_string(
                                        message,
                                    )))
                            })
                            .collect();
                    }
                    Err(code) => answer.error_code = code,
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

/// Why `partition`'s log refused an append. A compacted log refusing a batch as invalid
/// (`records`: what was sent, kept for compacted logs only) names the records without a key,
/// as Kafka does.
fn refusal(partition: &Partition, records: Option<&Bytes>, e: &AppendError) -> Refusal {
    let code = route::errors::append_error(e);
    let keyless = match (e, records) {
        (AppendError::Batch(BatchError::Invalid(_)), Some(records)) => {
            let limit = batch::decompression_limit(partition.log().config().max_message_bytes);
            record_errors::keyless(records, limit)
        }
        _ => Vec::new(),
    };
    if keyless.is_empty() {
        return Refusal {
            code,
            message: Some(e.to_string()),
            record_errors: Vec::new(),
        };
    }
    let message = record_errors::keyless_message(&partition.tp.topic, partition.tp.partition);
    let errors: Vec<(i32, String)> = keyless.into_iter().map(|i| (i, message.clone())).collect();
    Refusal {
        code,
        message: Some(record_errors::summary(&errors)),
        record_errors: errors,
    }
}

/// Places every append in its log now, in request order (this runs when the shard takes the
/// message). The appends complete concurrently, each awaited by its own task, so one
/// partition's write or sync doesn't wait for another's. The records are not copied: the log
/// writes them from the request's buffer.
fn place_on_this_shard(
    appends: Vec<(Partition, Bytes)>,
    acks: i16,
    timeout: Duration,
) -> impl std::future::Future<Output = Vec<AppendResult>> {
    let tasks: Vec<_> = appends
        .into_iter()
        .map(|(partition, records)| {
            if acks == -1 {
                if let Err(code) = partition.check_min_insync() {
                    let refused = Refusal {
                        code,
                        message: Some(not_enough_replicas(&partition)),
                        record_errors: Vec::new(),
                    };
                    return rt::spawn_local(async move { Err(refused) });
                }
            }
            let bytes = records.len() as u64;
            let started = std::time::Instant::now();
            // A refusal may have to name records: keep them (a reference, not a copy) until
            // the append is done, on compacted logs only, so other appends free their request
            // buffers as soon as they are written.
            let kept = partition
                .log()
                .config()
                .cleanup_policy
                .compact
                .then(|| records.clone());
            let appended = partition.log().append(records);
            rt::spawn_local(async move {
                let info = appended
                    .await
                    .map_err(|e| refusal(&partition, kept.as_ref(), &e))?;
                if acks == -1 {
                    partition
                        .wait_replicated(info.last_offset + 1, timeout)
                        .await
                        .map_err(|code| Refusal {
                            code,
                            message: None,
                            record_errors: Vec::new(),
                        })?;
                }
                let messages = (info.last_offset - info.base_offset + 1).max(0) as u64;
                crate::metrics::record_append(
                    &partition.tp.topic,
                    messages,
                    bytes,
                    started.elapsed(),
                );
                Ok(info)
            })
        })
        .collect();
    async move {
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await);
        }
        results
    }
}

/// Why an acks=all append was refused before it was made.
fn not_enough_replicas(partition: &Partition) -> String {
    format!(
        "partition {} has fewer in-sync replicas than min.insync.replicas ({})",
        partition.tp,
        partition.min_insync_replicas()
    )
}
