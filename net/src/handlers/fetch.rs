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
//! read_committed (v4+ isolation level 1) reads stop at each partition's last stable offset
//! and carry the transactions aborted in what they return, which consumers drop.
//!
//! Followers fetch like consumers, naming themselves by `replica_id` (Kafka's replica
//! fetch): they read past the high watermark up to what the leader has written, each fetch
//! reports how far the follower has got (which moves the ISR and the high watermark, see
//! [`crate::replication`]), and their long polls wake on new writes rather than on the high
//! watermark. Every read checks the asker's `current_leader_epoch` (v9+): an older one is
//! FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (KIP-320).
//!
//! Fetch sessions (KIP-227) are not kept: every response is a full, sessionless one
//! (session id 0), which clients accept; a request naming a session we never created gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestKind};
use runnel_engine::log::{Isolation, ReadResult};
use runnel_engine::rt::{self, Either};

use crate::kafka::dispatch::{Api, Call, Handled, HandlerError, LocalBoxFuture, ResponseBody, Run};
use crate::kafka::error_code;
use crate::kafka::fetch_response::{
    self, AbortedTransaction, FetchBody, FetchPartition, FetchTopic, Records,
};
use crate::partitions::{shard, Partition, TopicPartition};
use crate::route::{self, ErrorCode, Need, Routed};

pub const API: Api = Api::new(ApiKey::Fetch, 4, 12, Run::Alone(run));

fn run(call: Call) -> LocalBoxFuture<Handled> {
    Box::pin(async move {
        let RequestKind::Fetch(request) = call.body else {
            return Err(HandlerError::WrongBody);
        };
        // Reads below this size are copied into the response; larger ones are spliced.
        let copy_below = if call.broker.zero_copy_fetch {
            call.broker.fetch_splice_min_bytes
        } else {
            u64::MAX
        };
        let body = handle(request, call.version, copy_below).await;
        Ok(Some(ResponseBody::Pieces(fetch_response::encode(
            body,
            call.version,
        ))))
    })
}

/// The longest a Fetch waits for `min_bytes`, whatever `max_wait_ms` asks (Kafka's clients
/// default to 500 ms).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The most a Fetch response carries, whatever the client asks (Kafka's broker setting
/// `fetch.max.bytes`, 55 MiB by default).
const FETCH_MAX_BYTES: u64 = 55 << 20;

/// What the request asks of one partition.
#[derive(Debug, Clone, Copy)]
struct PartitionRead {
    offset: i64,
    max_bytes: u64,
    /// read_committed reads stop at the last stable offset and report aborted transactions.
    isolation: Isolation,
    /// The leader epoch the asker believes current; -1 when it does not say.
    current_leader_epoch: i32,
    /// The follower fetching, for a replica's fetch; `None` for a consumer's.
    replica: Option<i32>,
    /// A follower's last fetched epoch (v12+, KIP-320; -1 when not sent): the leader checks
    /// its log agrees up to the fetch offset.
    last_fetched_epoch: i32,
}

/// What the owning shard read for one partition.
#[derive(Debug)]
struct ReadOutcome {
    tp: TopicPartition,
    error_code: i16,
    high_watermark: i64,
    /// How far the read could see: the high watermark for a consumer, the leader's written
    /// end for a follower. A long poll waits for it to move.
    visible_end: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// For read_committed reads: the aborted transactions within the records read.
    aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// A follower whose log diverged from this one: where this log's matching epoch ends.
    diverging_epoch: Option<(i32, i64)>,
    records: Records,
}

impl ReadOutcome {
    /// An error, or a follower told where its log diverges: waiting for more data would not
    /// change the answer (the follower must truncate first), so the long poll ends now, as
    /// Kafka's does. A follower that just learned of a new leader would otherwise wait out
    /// `replica.fetch.wait.max.ms` before truncating, and acks=all writes with it.
    fn answers_at_once(&self) -> bool {
        self.error_code != error_code::NONE || self.diverging_epoch.is_some()
    }
}

/// A partition's outcome, or the error it got before reaching a log.
type Outcome = Result<ReadOutcome, ErrorCode>;

/// The response's limits, the same for every read of a long poll.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_bytes: u64,
    min_bytes: u64,
    deadline: Instant,
    /// Partition reads below this size are copied, larger ones spliced.
    copy_below: u64,
}

pub async fn handle(request: FetchRequest, version: i16, copy_below: u64) -> FetchBody {
    let mut body = FetchBody::default();
    if version >= 7 && request.session_id != 0 {
        body.error_code = error_code::FETCH_SESSION_ID_NOT_FOUND;
        return body;
    }
    let topics = shard::current().topics();
    let mut routed = Routed::new(Need::Leader);
    // v4+: 1 is READ_COMMITTED.
    let isolation = if version >= 4 && request.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    // Consumers send -1 (and debugging tools -2); brokers their node id.
    let replica = (request.replica_id.0 >= 0).then_some(request.replica_id.0);
    for topic in &request.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            partitions.push(FetchPartition {
                partition_index: partition.partition,
                error_code: error_code::NONE,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: None,
                diverging_epoch: None,
                records: Records::Copied(Bytes::new()),
            });
            let read = PartitionRead {
                offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes.max(0) as u64,
                isolation,
                current_leader_epoch: if version >= 9 {
                    partition.current_leader_epoch
                } else {
                    -1
                },
                replica,
                last_fetched_epoch: if version >= 12 {
                    partition.last_fetched_epoch
                } else {
                    -1
                },
            };
            routed.push(&topics, name, partition.partition, read);
        }
        body.topics.push(FetchTopic {
            name: name.to_owned(),
            partitions,
        });
    }
    let max_bytes = if version >= 3 {
        (request.max_bytes.max(0) as u64).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    };
    // The broker bounds the long poll: a client can't park a request (and its connection)
    // for days.
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let limits = Limits {
        max_bytes,
        min_bytes: request.min_bytes.max(0) as u64,
        deadline: Instant::now() + max_wait,
        copy_below,
    };
    let outcomes = if routed.shard_count() == 1 && !routed.any_refused() {
        // Every partition lives on one shard: the whole long poll runs there, so new data
        // is read where it lands and only the answer crosses shards.
        let routed_here = routed.len();
        let polled = routed.scatter(move |reads| {
            // The shard answers a partition it doesn't lead (or hasn't open) itself, without
            // handing it to the poll; Kafka answers a fetch with such an error at once.
            let turned_away = reads.len() < routed_here;
            poll_on_shard(reads, limits, turned_away)
        });
        polled.await.gather().await
    } else {
        poll_across_shards(&routed, limits).await
    };
    fill(&mut body, outcomes);
    body
}

/// The long poll of a fetch whose partitions live on several shards (or none): reads every
/// shard at once and, until `min_bytes` are there (or an error, or the deadline), waits for
/// any of the partitions to change on its shard and reads again.
async fn poll_across_shards(routed: &Routed<PartitionRead>, limits: Limits) -> Vec<Outcome> {
    loop {
        let reads = routed.scatter(move |reads| read_on_shard(reads, limits));
        let mut outcomes = reads.await.gather().await;
        spend_in_request_order(&mut outcomes, limits.max_bytes);
        if poll_is_over(&outcomes, limits) || routed.is_empty() {
            return outcomes;
        }
        let seen: Arc<BTreeMap<TopicPartition, i64>> = Arc::new(
            outcomes
                .iter()
                .flatten()
                .map(|o| (o.tp.clone(), o.visible_end))
                .collect(),
        );
        let deadline = limits.deadline;
        let waits = routed
            .scatter(move |reads| {
                let seen = seen.clone();
                let partitions = reads.len();
                let waiting = reads
                    .into_iter()
                    .filter_map(|(partition, read)| {
                        let end = *seen.get(&partition.tp)?;
                        Some((partition, read.replica.is_some(), end))
                    })
                    .collect();
                async move {
                    wait_for_change(waiting, deadline).await;
                    vec![(); partitions]
                }
            })
            .await;
        let left = deadline.saturating_duration_since(Instant::now());
        let stop = rt::select(rt::sleep(left), rt::shutdown_requested());
        if let Either::Right(Either::Right(())) = rt::select(waits.any(), stop).await {
            return outcomes;
        }
    }
}

/// Whether a long poll answers now: enough bytes, an error or a diverging epoch somewhere, or
/// out of time.
fn poll_is_over(outcomes: &[Outcome], limits: Limits) -> bool {
    let total: u64 = outcomes.iter().flatten().map(|o| o.records.len()).sum();
    let at_once = outcomes
        .iter()
        .any(|o| o.as_ref().map_or(true, ReadOutcome::answers_at_once));
    total >= limits.min_bytes || at_once || Instant::now() >= limits.deadline
}

/// Trims what the shards read to the response's byte budget, spent in request order: the
/// first partition with records keeps at least its first batch whole (KIP-74), later ones get
/// what is left (a cut batch is dropped by clients, as with Kafka), then nothing.
fn spend_in_request_order(outcomes: &mut [Outcome], max_bytes: u64) {
    let mut left = max_bytes;
    let mut first = true;
    for outcome in outcomes.iter_mut().flatten() {
        if outcome.records.is_empty() {
            continue;
        }
        if !first {
            outcome.records.truncate(left);
        }
        first = false;
        left = left.saturating_sub(outcome.records.len());
    }
}

/// Puts each partition's outcome into its place in the response (both in request order).
fn fill(body: &mut FetchBody, outcomes: Vec<Outcome>) {
    let answers = body.topics.iter_mut().flat_map(|t| &mut t.partitions);
    for (answer, outcome) in answers.zip(outcomes) {
        match outcome {
            Ok(outcome) => {
                answer.error_code = outcome.error_code;
                answer.high_watermark = outcome.high_watermark;
                answer.last_stable_offset = outcome.last_stable_offset;
                answer.log_start_offset = outcome.log_start_offset;
                answer.aborted_transactions = outcome.aborted_transactions;
                answer.diverging_epoch = outcome.diverging_epoch;
                crate::metrics::record_fetched(&outcome.tp.topic, outcome.records.len());
                answer.records = outcome.records;
            }
            Err(code) => answer.error_code = code,
        }
    }
}

/// The long poll of a fetch whose partitions all live on this shard: reads, and until
/// `min_bytes` are there (or an error, or the deadline), waits for the logs to change and
/// reads again. `turned_away`: the shard already answers some of the fetch's partitions with
/// an error, so the fetch answers after the first read.
async fn poll_on_shard(
    reads: Vec<(Partition, PartitionRead)>,
    limits: Limits,
    turned_away: bool,
) -> Vec<ReadOutcome> {
    loop {
        let outcomes = read_on_shard(reads.clone(), limits).await;
        let total: u64 = outcomes.iter().map(|o| o.records.len()).sum();
        if turned_away
            || total >= limits.min_bytes
            || outcomes.iter().any(ReadOutcome::answers_at_once)
            || Instant::now() >= limits.deadline
        {
            return outcomes;
        }
        // The read saw these high watermarks; any change since wakes the wait at once.
        let waiting = reads
            .iter()
            .zip(&outcomes)
            .map(|((partition, read), outcome)| {
                (
                    partition.clone(),
                    read.replica.is_some(),
                    outcome.visible_end,
                )
            })
            .collect();
        if wait_for_change(waiting, limits.deadline).await == Woken::ShuttingDown {
            return outcomes;
        }
    }
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
async fn read_on_shard(reads: Vec<(Partition, PartitionRead)>, limits: Limits) -> Vec<ReadOutcome> {
    let mut budget = limits.max_bytes;
    let planning: Vec<_> = reads
        .into_iter()
        .map(|(partition, read)| {
            let limit = read.max_bytes.min(budget);
            let plan = rt::spawn_local(plan_read(partition.clone(), read, limit));
            (partition, read, plan)
        })
        .collect();
    let mut first = true;
    let mut kept = Vec::with_capacity(planning.len());
    for (partition, read, plan) in planning {
        let mut outcome = ReadOutcome {
            tp: partition.tp.clone(),
            error_code: error_code::NONE,
            high_watermark: -1,
            visible_end: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            diverging_epoch: None,
            records: Records::Copied(Bytes::new()),
        };
        let mut planned = match plan.await {
            Ok(Planned::Diverged(diverging)) => {
                outcome.high_watermark = partition.high_watermark();
                outcome.visible_end = partition.log().written_end();
                outcome.last_stable_offset = partition.log().last_stable_offset();
                outcome.log_start_offset = partition.log_start_offset();
                outcome.diverging_epoch = Some(diverging);
                kept.push((outcome, None));
                continue;
            }
            Ok(Planned::Read(planned)) => planned,
            Err(code) => {
                outcome.error_code = code;
                kept.push((outcome, None));
                continue;
            }
        };
        outcome.high_watermark = planned.high_watermark;
        outcome.visible_end = match read.replica {
            Some(_) => partition.log().written_end(),
            None => planned.high_watermark,
        };
        outcome.last_stable_offset = planned.last_stable_offset;
        outcome.log_start_offset = planned.log_start_offset;
        if read.isolation == Isolation::ReadCommitted {
            // The transactions aborted within the records returned: those ending at or after
            // the fetch offset and starting below the end of what was read (its last
            // segment's end, or the last stable offset), as Kafka bounds them. Possibly a few
            // that start past the records returned, which consumers skip.
            let upper = planned.upper_bound_offset.min(planned.last_stable_offset);
            let aborted = partition.log().aborted_transactions(read.offset, upper);
            outcome.aborted_transactions = Some(
                aborted
                    .into_iter()
                    .map(|a| AbortedTransaction {
                        producer_id: a.producer_id,
                        first_offset: a.first_offset,
                    })
                    .collect(),
            );
        }
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
                if planned.bytes < limits.copy_below {
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

/// What a partition's read comes to.
enum Planned {
    Read(ReadResult),
    /// A follower's log diverged from this one before its fetch offset (KIP-320): nothing is
    /// read, the follower truncates to this epoch's end first.
    Diverged((i32, i64)),
}

/// Plans a read of up to `limit` bytes from the read's offset (the first batch whole,
/// KIP-74), under its isolation; a follower's read first checks its log agrees with this
/// one, and reports how far it has got. Errors are Kafka error codes.
async fn plan_read(
    partition: Partition,
    read: PartitionRead,
    limit: u64,
) -> Result<Planned, ErrorCode> {
    partition.check_leader_epoch(read.current_leader_epoch)?;
    let log = partition.log();
    let planned = match read.replica {
        Some(follower) => {
            if let Some(diverging) = divergence(&partition, read) {
                return Ok(Planned::Diverged(diverging));
            }
            partition.follower_fetched(follower, read.offset)?;
            log.read_replica(read.offset, limit).await
        }
        None => {
            log.read_isolated(read.offset, limit, true, read.isolation)
                .await
        }
    };
    planned
        .map(Planned::Read)
        .map_err(|e| route::errors::read_error(&e))
}

/// Where a follower's log stops agreeing with this one, if before its fetch offset (Kafka's
/// `Partition.fetchRecords` with a last fetched epoch): this log's largest epoch at or below
/// the follower's last one ends before the fetch offset, or is an older epoch. A log whose
/// epochs are unknown here tells nothing.
fn divergence(partition: &Partition, read: PartitionRead) -> Option<(i32, i64)> {
    if read.last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = partition
        .log()
        .end_offset_for_epoch(read.last_fetched_epoch);
    let diverged = epoch >= 0 && (epoch < read.last_fetched_epoch || end < read.offset);
    diverged.then_some((epoch, end))
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

/// Completes when any of these partitions' visible end (the high watermark; the written end
/// for a follower's read, flagged `true`) differs from the one the read saw, at `deadline`,
/// or when the broker shuts down (a parked poll is answered at once rather than holding the
/// shard past its grace period). Checking and registering happen without yielding, so no
/// change slips between them.
async fn wait_for_change(partitions: Vec<(Partition, bool, i64)>, deadline: Instant) -> Woken {
    // With no partition to watch this waits out the deadline, as Kafka's purgatory does for
    // a fetch with nothing to read. Answering "changed" at once made a long poll with no
    // partition on its shard read nothing and wait again in a loop that never yielded: the
    // shard's other tasks and timers stood still for the whole max wait.
    loop {
        if partitions
            .iter()
            .any(|(partition, replica, seen)| visible_end(partition, *replica) != *seen)
        {
            return Woken::Changed;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Woken::Deadline;
        }
        let changes = AnyOf(
            partitions
                .iter()
                .map(|(p, _, _)| p.log().changed())
                .collect(),
        );
        let stop = rt::select(rt::sleep(left), rt::shutdown_requested());
        if let Either::Right(Either::Right(())) = rt::select(changes, stop).await {
            return Woken::ShuttingDown;
        }
    }
}

/// How far a read of `partition` can see: a follower's (`replica`) up to the written end.
fn visible_end(partition: &Partition, replica: bool) -> i64 {
    if replica {
        partition.log().written_end()
    } else {
        partition.high_watermark()
    }
}

/// Why a long poll's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    Changed,
    Deadline,
    /// The broker is shutting down: the poll answers with what it has.
    ShuttingDown,
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

    fn outcome(partition: i32, len: usize) -> Outcome {
        Ok(ReadOutcome {
            tp: TopicPartition::new("t", partition),
            error_code: error_code::NONE,
            high_watermark: 100,
            visible_end: 100,
            last_stable_offset: 100,
            log_start_offset: 0,
            aborted_transactions: None,
            diverging_epoch: None,
            records: Records::Copied(Bytes::from(vec![1u8; len])),
        })
    }

    fn kept(outcomes: &[Outcome]) -> Vec<u64> {
        outcomes
            .iter()
            .map(|o| o.as_ref().map_or(u64::MAX, |o| o.records.len()))
            .collect()
    }

    #[test]
    fn the_budget_is_spent_in_request_order() {
        let mut outcomes = vec![
            outcome(0, 70),
            Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            outcome(1, 0),
            outcome(2, 40),
            outcome(3, 30),
        ];
        spend_in_request_order(&mut outcomes, 100);
        assert_eq!(kept(&outcomes), vec![70, u64::MAX, 0, 30, 0]);
    }

    #[test]
    fn a_diverging_epoch_or_an_error_ends_the_long_poll() {
        let limits = Limits {
            max_bytes: 1 << 20,
            min_bytes: 1,
            deadline: Instant::now() + Duration::from_secs(60),
            copy_below: 0,
        };
        let empty = || outcome(0, 0);
        assert!(
            !poll_is_over(&[empty(), empty()], limits),
            "nothing yet: wait"
        );
        let mut diverged = empty();
        if let Ok(read) = diverged.as_mut() {
            read.diverging_epoch = Some((6, 120));
        }
        assert!(poll_is_over(&[empty(), diverged], limits));
        assert!(poll_is_over(
            &[empty(), Err(error_code::NOT_LEADER_OR_FOLLOWER)],
            limits
        ));
        assert!(
            poll_is_over(&[empty(), outcome(1, 1)], limits),
            "min_bytes reached"
        );
    }

    #[test]
    fn the_first_partition_with_data_keeps_its_oversized_batch() {
        let mut outcomes = vec![outcome(0, 0), outcome(1, 500), outcome(2, 10)];
        spend_in_request_order(&mut outcomes, 100);
        assert_eq!(kept(&outcomes), vec![0, 500, 0]);
    }
}

#[cfg(test)]
mod long_poll_tests {
    use std::time::{Duration, Instant};

    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::partitions::shard;
    use crate::partitions::test_shard::on_one_shard;

    fn fetch(topic: &str, max_wait_ms: i32) -> FetchRequest {
        let mut partition = FetchPartition::default();
        partition.fetch_offset = 0;
        partition.partition_max_bytes = 1 << 20;
        let mut wanted = FetchTopic::default();
        wanted.topic = TopicName(StrBytes::from_string(topic.to_owned()));
        wanted.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.replica_id = kafka_protocol::messages::BrokerId(-1);
        request.max_wait_ms = max_wait_ms;
        request.min_bytes = 1;
        request.max_bytes = 1 << 20;
        request.topics = vec![wanted];
        request
    }

    /// A partition its shard turns away (here: routed to it, but its log isn't open, as
    /// while a topic is being opened or a leadership taken up) answers at once, and the shard
    /// runs its other tasks meanwhile. The long poll used to read nothing and wait on nothing
    /// in a loop that never yielded, for the whole max wait.
    #[test]
    fn a_fetch_of_partitions_the_shard_turns_away_answers_at_once() {
        on_one_shard("fetch-turned-away", &["closed", "open"], || async {
            let tp = TopicPartition::new("closed", 0);
            shard::current().logs.remove(&tp).expect("open at first");
            let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let counting = ticks.clone();
            let stop = std::rc::Rc::new(std::cell::Cell::new(false));
            let stopped = stop.clone();
            let ticker = rt::spawn_local(async move {
                while !stopped.get() {
                    rt::sleep(Duration::from_millis(10)).await;
                    counting.set(counting.get() + 1);
                }
            });
            let asked = Instant::now();
            let body = handle(fetch("closed", 3_000), 12, 0).await;
            let took = asked.elapsed();
            let code = body.topics[0].partitions[0].error_code;
            assert_ne!(code, error_code::NONE);
            assert!(
                took < Duration::from_millis(1_500),
                "answered after {took:?}"
            );
            // A fetch of an open partition still waits for data, without holding the shard:
            // the ticker keeps ticking.
            let before = ticks.get();
            let body = handle(fetch("open", 300), 12, 0).await;
            assert_eq!(body.topics[0].partitions[0].error_code, error_code::NONE);
            assert!(ticks.get() > before + 5, "{} ticks", ticks.get() - before);
            stop.set(true);
            ticker.await;
        });
    }
}
