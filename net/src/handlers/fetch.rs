//! Fetch (key 1): reads from partition logs on their owning shards, long-polling up to
//! `max_wait_ms` until `min_bytes` are available.
//!
//! Zero copy: each owning shard plans its reads into segment file ranges and hands back
//! descriptors for them; the connection's shard writes the response around those ranges
//! ([`crate::kafka::fetch_response`]) and splices the records from the page cache to the
//! socket. Reads smaller than `fetch_splice_min_bytes` (64 KiB) are copied on the owning
//! shard even so: splicing costs two operations per read, one after another in the response's
//! send, which for a fetch of many partitions with a little new data each costs more than
//! the copy (bench/RESULTS.md, 100 partitions). With `fetch_zero_copy = false` the shards copy
//! every read into the response (the path TLS will need, and the comparison point for
//! benchmarks).
//!
//! Fetch sessions (KIP-227) are not kept: every response is a full, sessionless one
//! (session id 0), which clients accept; a request naming a session we never created gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::FetchRequest;
use runnel_engine::log::{ReadError, ReadResult};
use runnel_engine::rt::{self, Either, LocalEvent};

use super::error_code;
use crate::cluster::shard::{self, on_shard};
use crate::kafka::fetch_response::{FetchReply, PartitionReply, Records};

/// The longest a Fetch waits for `min_bytes`, whatever `max_wait_ms` asks (Kafka's clients
/// default to 500 ms).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The most a Fetch response carries, whatever the client asks (Kafka's broker setting
/// `fetch.max.bytes`, 55 MiB by default).
const FETCH_MAX_BYTES: u64 = 55 << 20;

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
    records: Records,
}

pub async fn handle(request: FetchRequest, version: i16, copy_below: u64) -> FetchReply {
    let mut reply = FetchReply::default();
    if version >= 7 && request.session_id != 0 {
        reply.error_code = error_code::FETCH_SESSION_ID_NOT_FOUND;
        return reply;
    }
    let topics = shard::current().topics();
    let mut reads: BTreeMap<usize, Vec<PartitionRead>> = BTreeMap::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (p, partition) in topic.partitions.iter().enumerate() {
            let mut data = PartitionReply {
                partition_index: partition.partition,
                error_code: error_code::NONE,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: Records::Copied(Bytes::new()),
            };
            let shard = topics.shard_of(topic.topic.0.as_str(), partition.partition);
            match shard {
                Some(shard) => reads.entry(shard).or_default().push(PartitionRead {
                    slot: (t, p),
                    topic: topic.topic.0.to_string(),
                    partition: partition.partition as usize,
                    offset: partition.fetch_offset,
                    max_bytes: partition.partition_max_bytes.max(0) as u64,
                }),
                None => data.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            partitions.push(data);
        }
        reply.topics.push((topic.topic.0.to_string(), partitions));
    }
    let max_bytes = if version >= 3 {
        (request.max_bytes.max(0) as u64).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    };
    let min_bytes = request.min_bytes.max(0) as u64;
    // The broker bounds the long poll: a client can't park a request (and its connection)
    // for days.
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + max_wait;
    let unknown = reply
        .topics
        .iter()
        .flat_map(|(_, partitions)| partitions)
        .any(|p| p.error_code != error_code::NONE);
    if let (false, Some((&shard, partitions))) = (unknown, reads.first_key_value()) {
        if reads.len() == 1 {
            // Every partition lives on one shard: the whole long poll runs there, so new data
            // is read where it lands and only the answer crosses shards.
            let partitions = partitions.clone();
            let outcomes = on_shard(shard, move || {
                poll_on_shard(partitions, max_bytes, min_bytes, deadline, copy_below)
            })
            .await
            .unwrap_or_else(|_| shard_stopped(&reads[&shard]));
            fill(&mut reply, outcomes);
            return reply;
        }
    }
    loop {
        // Ask the shards' logs to wake us before reading, so no append is missed between.
        let woken = Rc::new(LocalEvent::new());
        let wait = woken.wait();
        let mut outcomes =
            read_everywhere(&reads, max_bytes, deadline, woken.clone(), copy_below).await;
        spend_in_request_order(&mut outcomes, max_bytes);
        let total: u64 = outcomes.iter().map(|o| o.records.len()).sum();
        let errors = outcomes.iter().any(|o| o.error_code != error_code::NONE);
        if total >= min_bytes || errors || unknown || reads.is_empty() || Instant::now() >= deadline
        {
            fill(&mut reply, outcomes);
            return reply;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = rt::select(wait, rt::sleep(left)).await;
    }
}

/// Trims what the shards read to the response's byte budget, spent in request order: the
/// first partition with records keeps at least its first batch whole (KIP-74), later ones get
/// what is left (a cut batch is dropped by clients, as with Kafka), then nothing.
fn spend_in_request_order(outcomes: &mut [PartitionOutcome], max_bytes: u64) {
    outcomes.sort_by_key(|o| o.slot);
    let mut left = max_bytes;
    let mut first = true;
    for outcome in outcomes.iter_mut() {
        let len = outcome.records.len();
        if len == 0 {
            continue;
        }
        if !first {
            outcome.records.truncate(left);
        }
        first = false;
        left = left.saturating_sub(outcome.records.len());
    }
}

fn fill(reply: &mut FetchReply, outcomes: Vec<PartitionOutcome>) {
    for outcome in outcomes {
        let (t, p) = outcome.slot;
        let data = &mut reply.topics[t].1[p];
        data.error_code = outcome.error_code;
        data.high_watermark = outcome.high_watermark;
        data.last_stable_offset = outcome.high_watermark;
        data.log_start_offset = outcome.log_start_offset;
        crate::metrics::record_fetched(&outcome.topic, outcome.records.len());
        data.records = outcome.records;
    }
}

/// Reads every partition on its shard, the shards concurrently, each within the response's
/// byte budget. Each shard also arranges for `woken` to fire when one of its partitions gets
/// new data before `deadline` (for the long poll).
async fn read_everywhere(
    reads: &BTreeMap<usize, Vec<PartitionRead>>,
    max_bytes: u64,
    deadline: Instant,
    woken: Rc<LocalEvent>,
    copy_below: u64,
) -> Vec<PartitionOutcome> {
    let me = rt::shard_id();
    // Every shard may use the whole budget; `spend_in_request_order` then keeps what Kafka
    // would have sent, partitions taken in the order the client listed them.
    let reading: Vec<_> = reads
        .iter()
        .map(|(&shard, partitions)| {
            let partitions = partitions.clone();
            let read = on_shard(shard, move || {
                read_on_shard(partitions, max_bytes, copy_below)
            });
            (shard, rt::spawn_local(read))
        })
        .collect();
    let mut outcomes = Vec::new();
    for (shard, read) in reading {
        let Ok(shard_outcomes) = read.await else {
            outcomes.extend(shard_stopped(&reads[&shard]));
            continue;
        };
        let waiting = waiting_for_more(&shard_outcomes);
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

/// The long poll of a fetch whose partitions all live on this shard: reads, and until
/// `min_bytes` are there (or an error, or the deadline), waits for the logs to change and
/// reads again.
async fn poll_on_shard(
    partitions: Vec<PartitionRead>,
    max_bytes: u64,
    min_bytes: u64,
    deadline: Instant,
    copy_below: u64,
) -> Vec<PartitionOutcome> {
    loop {
        let outcomes = read_on_shard(partitions.clone(), max_bytes, copy_below).await;
        let total: u64 = outcomes.iter().map(|o| o.records.len()).sum();
        let errors = outcomes.iter().any(|o| o.error_code != error_code::NONE);
        if total >= min_bytes || errors || Instant::now() >= deadline {
            return outcomes;
        }
        // The read saw these high watermarks; any change since wakes the wait at once.
        wait_for_change(waiting_for_more(&outcomes), deadline).await;
    }
}

/// The partitions a long poll waits on, with the high watermark each read saw.
fn waiting_for_more(outcomes: &[PartitionOutcome]) -> Vec<(String, usize, i64)> {
    outcomes
        .iter()
        .filter(|o| o.error_code == error_code::NONE)
        .map(|o| (o.topic.clone(), o.partition, o.high_watermark))
        .collect()
}

/// The answer for partitions whose shard stopped (shutting down): as a leader that is going
/// away, so clients retry.
fn shard_stopped(reads: &[PartitionRead]) -> Vec<PartitionOutcome> {
    reads
        .iter()
        .map(|read| PartitionOutcome {
            slot: read.slot,
            topic: read.topic.clone(),
            partition: read.partition,
            error_code: error_code::NOT_LEADER_OR_FOLLOWER,
            high_watermark: -1,
            log_start_offset: -1,
            records: Records::Copied(Bytes::new()),
        })
        .collect()
}

/// Reads this shard's partitions: the planned file ranges themselves (with descriptors the
/// connection's shard can splice from) or, below `copy_below` bytes, their bytes.
///
/// Three steps. Every partition's read is planned at once (planning may read batch headers
/// from the segment files, and a fetch of many partitions shouldn't pay for them one after
/// another). The byte budget is then spent on the plans in request order: the shard's first
/// partition with data keeps its first batch whole (KIP-74), later ones get at most their
/// `partition_max_bytes` and what is left. Last, the reads to copy are copied, again all at
/// once, so only bytes the response will carry are read. The connection's shard trims across
/// shards the same way.
async fn read_on_shard(
    partitions: Vec<PartitionRead>,
    mut budget: u64,
    copy_below: u64,
) -> Vec<PartitionOutcome> {
    let state = shard::current();
    let planning: Vec<_> = partitions
        .into_iter()
        .map(|read| {
            let log = state.log(&read.topic, read.partition);
            let limit = read.max_bytes.min(budget);
            let offset = read.offset;
            let plan = log.map(|log| rt::spawn_local(plan_read(log, offset, limit)));
            (read, plan)
        })
        .collect();
    let mut first = true;
    let mut kept = Vec::with_capacity(planning.len());
    for (read, plan) in planning {
        let mut outcome = PartitionOutcome {
            slot: read.slot,
            topic: read.topic,
            partition: read.partition,
            error_code: error_code::NONE,
            high_watermark: -1,
            log_start_offset: -1,
            records: Records::Copied(Bytes::new()),
        };
        let planned = match plan {
            None => Err(error_code::NOT_LEADER_OR_FOLLOWER),
            Some(plan) => plan.await,
        };
        let mut planned = match planned {
            Ok(planned) => planned,
            Err(code) => {
                outcome.error_code = code;
                kept.push((outcome, None));
                continue;
            }
        };
        outcome.high_watermark = planned.high_watermark;
        outcome.log_start_offset = planned.log_start_offset;
        if !first {
            trim(&mut planned, read.max_bytes.min(budget));
        }
        budget = budget.saturating_sub(planned.bytes);
        first &= planned.bytes == 0;
        kept.push((outcome, Some(planned)));
    }
    let copying: Vec<_> = kept
        .into_iter()
        .map(|(outcome, planned)| {
            let records = planned.map(|planned| {
                if planned.bytes < copy_below {
                    Either::Left(rt::spawn_local(async move { planned.copy_out().await }))
                } else {
                    Either::Right(records_of(&planned))
                }
            });
            (outcome, records)
        })
        .collect();
    let mut outcomes = Vec::with_capacity(copying.len());
    for (mut outcome, records) in copying {
        let records = match records {
            None => Ok(Records::Copied(Bytes::new())),
            Some(Either::Left(copy)) => copy.await.map(|bytes| Records::Copied(Bytes::from(bytes))),
            Some(Either::Right(ranges)) => ranges,
        };
        match records {
            Ok(records) => outcome.records = records,
            Err(_) => outcome.error_code = error_code::KAFKA_STORAGE_ERROR,
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Plans a read of up to `limit` bytes from `offset` (the first batch whole, KIP-74). Errors
/// are Kafka error codes.
async fn plan_read(
    log: runnel_engine::log::Log,
    offset: i64,
    limit: u64,
) -> Result<ReadResult, i16> {
    log.read(offset, limit, true).await.map_err(|e| match e {
        ReadError::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
        ReadError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
    })
}

/// Keeps at most the first `max` bytes of a planned read.
fn trim(planned: &mut ReadResult, max: u64) {
    let mut left = max;
    planned.ranges.retain_mut(|range| {
        range.len = range.len.min(left);
        left -= range.len;
        range.len > 0
    });
    planned.bytes = max.min(planned.bytes);
}

/// The planned ranges as response records: descriptors to splice from.
fn records_of(planned: &ReadResult) -> std::io::Result<Records> {
    planned
        .ranges
        .iter()
        .map(|range| {
            let fd = std::os::fd::AsFd::as_fd(&*range.file).try_clone_to_owned()?;
            Ok((fd, range.position, range.len))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map(Records::Files)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(t: usize, p: usize, len: usize) -> PartitionOutcome {
        PartitionOutcome {
            slot: (t, p),
            topic: format!("t{t}"),
            partition: p,
            error_code: error_code::NONE,
            high_watermark: 100,
            log_start_offset: 0,
            records: Records::Copied(Bytes::from(vec![1u8; len])),
        }
    }

    #[test]
    fn the_budget_is_spent_in_request_order_whatever_shard_read_first() {
        // Read shard by shard (shard 1's partition first), trimmed in request order.
        let mut outcomes = vec![
            outcome(0, 2, 40),
            outcome(0, 0, 70),
            outcome(0, 1, 0),
            outcome(1, 0, 30),
        ];
        spend_in_request_order(&mut outcomes, 100);
        let kept: Vec<_> = outcomes.iter().map(|o| (o.slot, o.records.len())).collect();
        assert_eq!(
            kept,
            vec![((0, 0), 70), ((0, 1), 0), ((0, 2), 30), ((1, 0), 0)]
        );
    }

    #[test]
    fn the_first_partition_with_data_keeps_its_oversized_batch() {
        let mut outcomes = vec![outcome(0, 0, 0), outcome(0, 1, 500), outcome(0, 2, 10)];
        spend_in_request_order(&mut outcomes, 100);
        let kept: Vec<_> = outcomes.iter().map(|o| o.records.len()).collect();
        assert_eq!(kept, vec![0, 500, 0]);
    }
}
