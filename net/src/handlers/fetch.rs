//! Fetch (key 1): reads from partition logs on their owning shards, long-polling up to
//! `max_wait_ms` until `min_bytes` are available.
//!
//! This is the copy path: each shard plans its reads and copies the planned ranges out of the
//! page cache into the response. The zero-copy path (splice/sendfile of the same ranges into
//! the socket around a hand-written response) replaces it for plain TCP.
//!
//! Fetch sessions (KIP-227) are not kept: every response is a full, sessionless one
//! (session id 0), which clients accept; a request naming a session we never created gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use runnel_engine::log::ReadError;
use runnel_engine::rt::{self, LocalEvent};

use super::error_code;
use crate::cluster::shard::{self, on_shard};

/// One partition to read, on its way to its shard.
#[derive(Debug, Clone)]
struct PartitionRead {
    slot: (usize, usize),
    topic: String,
    partition: usize,
    offset: i64,
    max_bytes: u64,
}

/// What a shard read for one partition.
#[derive(Debug)]
struct PartitionOutcome {
    slot: (usize, usize),
    topic: String,
    partition: usize,
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

pub async fn handle(request: FetchRequest, version: i16) -> FetchResponse {
    let mut response = FetchResponse::default();
    if version >= 7 && request.session_id != 0 {
        response.error_code = error_code::FETCH_SESSION_ID_NOT_FOUND;
        return response;
    }
    let topics = shard::current().topics();
    let mut reads: BTreeMap<usize, Vec<PartitionRead>> = BTreeMap::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        let meta = topics.get(topic.topic.0.as_str());
        for (p, partition) in topic.partitions.iter().enumerate() {
            let mut data = PartitionData::default();
            data.partition_index = partition.partition;
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.log_start_offset = -1;
            data.preferred_read_replica = BrokerId(-1);
            if version >= 4 {
                data.aborted_transactions = Some(Vec::new());
            }
            let shard = meta.and_then(|m| m.shards.get(usize::try_from(partition.partition).ok()?));
            match shard {
                Some(&shard) => reads.entry(shard).or_default().push(PartitionRead {
                    slot: (t, p),
                    topic: topic.topic.0.to_string(),
                    partition: partition.partition as usize,
                    offset: partition.fetch_offset,
                    max_bytes: partition.partition_max_bytes.max(0) as u64,
                }),
                None => data.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            topic_response.partitions.push(data);
        }
        response.responses.push(topic_response);
    }
    let max_bytes = if version >= 3 {
        request.max_bytes.max(0) as u64
    } else {
        u64::MAX
    };
    let min_bytes = request.min_bytes.max(0) as u64;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    loop {
        // Ask the shards' logs to wake us before reading, so no append is missed between.
        let woken = Rc::new(LocalEvent::new());
        let wait = woken.wait();
        let outcomes = read_everywhere(&reads, max_bytes, deadline, woken.clone()).await;
        let total: u64 = outcomes.iter().map(|o| o.records.len() as u64).sum();
        let errors = outcomes.iter().any(|o| o.error_code != error_code::NONE);
        if total >= min_bytes.max(1) || errors || reads.is_empty() || Instant::now() >= deadline {
            fill(&mut response, outcomes);
            return response;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = rt::select(wait, rt::sleep(left)).await;
    }
}

fn fill(response: &mut FetchResponse, outcomes: Vec<PartitionOutcome>) {
    for outcome in outcomes {
        let (t, p) = outcome.slot;
        let data = &mut response.responses[t].partitions[p];
        data.error_code = outcome.error_code;
        data.high_watermark = outcome.high_watermark;
        data.last_stable_offset = outcome.high_watermark;
        data.log_start_offset = outcome.log_start_offset;
        data.records = Some(outcome.records);
    }
}

/// Reads every partition on its shard, shard after shard, within the response's byte budget.
/// Each shard also arranges for `woken` to fire when one of its partitions gets new data
/// before `deadline` (for the long poll).
async fn read_everywhere(
    reads: &BTreeMap<usize, Vec<PartitionRead>>,
    max_bytes: u64,
    deadline: Instant,
    woken: Rc<LocalEvent>,
) -> Vec<PartitionOutcome> {
    let me = rt::shard_id();
    let mut outcomes = Vec::new();
    let mut budget = max_bytes;
    for (&shard, partitions) in reads {
        let partitions = partitions.clone();
        let first = outcomes
            .iter()
            .all(|o: &PartitionOutcome| o.records.is_empty());
        let result = on_shard(shard, move || read_on_shard(partitions, budget, first)).await;
        let Ok(shard_outcomes) = result else {
            continue;
        };
        let waiting: Vec<(String, usize, i64)> = shard_outcomes
            .iter()
            .filter(|o| o.error_code == error_code::NONE)
            .map(|o| (o.topic.clone(), o.partition, o.high_watermark))
            .collect();
        budget = budget.saturating_sub(shard_outcomes.iter().map(|o| o.records.len() as u64).sum());
        outcomes.extend(shard_outcomes);
        // A waiter on the owning shard pings this shard's event when its logs change.
        let woken = woken.clone();
        rt::spawn_local(async move {
            if shard == me {
                wait_for_change(waiting, deadline).await;
            } else if on_shard(shard, move || wait_for_change(waiting, deadline))
                .await
                .is_err()
            {
                return;
            }
            woken.notify_all();
        });
    }
    outcomes
}

/// Reads this shard's partitions.
async fn read_on_shard(
    partitions: Vec<PartitionRead>,
    mut budget: u64,
    mut first: bool,
) -> Vec<PartitionOutcome> {
    let state = shard::current();
    let mut outcomes = Vec::with_capacity(partitions.len());
    for read in partitions {
        let mut outcome = PartitionOutcome {
            slot: read.slot,
            topic: read.topic.clone(),
            partition: read.partition,
            error_code: error_code::NONE,
            high_watermark: -1,
            log_start_offset: -1,
            records: Bytes::new(),
        };
        match state.log(&read.topic, read.partition) {
            None => outcome.error_code = error_code::NOT_LEADER_OR_FOLLOWER,
            Some(log) => {
                outcome.high_watermark = log.high_watermark();
                outcome.log_start_offset = log.log_start_offset();
                let limit = read.max_bytes.min(budget);
                match log.read(read.offset, limit, first).await {
                    Ok(planned) => match planned.copy_out().await {
                        Ok(bytes) => {
                            outcome.high_watermark = planned.high_watermark;
                            outcome.log_start_offset = planned.log_start_offset;
                            budget = budget.saturating_sub(bytes.len() as u64);
                            first &= bytes.is_empty();
                            outcome.records = Bytes::from(bytes);
                        }
                        Err(_) => outcome.error_code = error_code::KAFKA_STORAGE_ERROR,
                    },
                    Err(ReadError::OffsetOutOfRange { .. }) => {
                        outcome.error_code = error_code::OFFSET_OUT_OF_RANGE
                    }
                    Err(ReadError::Storage(_)) => {
                        outcome.error_code = error_code::KAFKA_STORAGE_ERROR
                    }
                }
            }
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Completes when any of these partitions' high watermark differs from the one the read saw,
/// or at `deadline`. Checking and registering happen without yielding, so no change slips
/// between them.
async fn wait_for_change(partitions: Vec<(String, usize, i64)>, deadline: Instant) {
    let state = shard::current();
    let logs: Vec<_> = partitions
        .iter()
        .filter_map(|(topic, partition, seen)| Some((state.log(topic, *partition)?, *seen)))
        .collect();
    if logs.is_empty() {
        return;
    }
    loop {
        if logs.iter().any(|(log, seen)| log.high_watermark() != *seen) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let changes = AnyOf(logs.iter().map(|(log, _)| log.changed()).collect());
        let _ = rt::select(changes, rt::sleep(left)).await;
    }
}

/// Completes when any of its futures does.
struct AnyOf<F>(Vec<F>);

impl<F: std::future::Future<Output = ()> + Unpin> std::future::Future for AnyOf<F> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        for future in &mut self.0 {
            if std::pin::Pin::new(future).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    }
}
