//! Followers' fetchers (Kafka's `ReplicaFetcherThread`): on each shard, one task per leader
//! broker fetches for every partition of this shard that follows it, over one connection to
//! the leader's Kafka listener.
//!
//! Each round gathers what every partition's [`FollowerState`] wants (truncations, then
//! OffsetsForLeaderEpoch questions, ListOffsets after OFFSET_OUT_OF_RANGE, then one Fetch for
//! all the partitions ready to fetch), carries it out and reports back. Records are appended
//! as the leader sent them ([`Log::append_replica`](runnel_engine::log::Log)); the leader's
//! high watermark, capped at what this replica has, becomes the log's.
//!
//! A partition moves between tasks when its leader changes; an answer that arrives for a
//! partition no longer followed at the epoch it was asked under is dropped (the state machine
//! checks the epoch, and the partition's own role is checked before touching its log).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt::{self, Either, EventWait, LocalEvent};

use super::broker_client::{self, BrokerClient};
use super::clock::now_ms;
use super::follower::{FollowerAction, FollowerState};
use super::replica::Role;
use crate::metrics::replication::{self as metrics, FetcherRequest};
use crate::partitions::{Partition, TopicPartition};

/// The request versions followers send (what the leader's handlers take).
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 3;
const LIST_OFFSETS_VERSION: i16 = 4;

/// How long a request other than a long-polling Fetch may take (Kafka's
/// `replica.socket.timeout.ms` is 30 s; a leader that answers nothing this long is treated as
/// gone, and the partitions back off and retry).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// This shard's fetchers, by leader broker.
    static LINKS: RefCell<BTreeMap<i32, Rc<Link>>> = const { RefCell::new(BTreeMap::new()) };
}

/// The partitions of this shard following one leader broker, and the task fetching for them.
#[derive(Debug)]
struct Link {
    leader: i32,
    partitions: RefCell<BTreeMap<TopicPartition, Followed>>,
    /// A partition joined or left, or changed its leader epoch.
    changed: LocalEvent,
    /// A partition joined, or changed its leader epoch: it has a request to make now, which
    /// must not wait behind a long poll already out (up to `replica.fetch.wait.max.ms`;
    /// right after a failover that is the time the new leader's acks=all writes would wait
    /// for this replica).
    joined: LocalEvent,
}

#[derive(Debug)]
struct Followed {
    partition: Partition,
    state: FollowerState,
}

/// Makes `partition` follow broker `leader` at `leader_epoch`: it joins that leader's
/// fetcher (leaving any other) and first finds where its log diverges from the leader's.
pub(super) fn follow(partition: &Partition, leader: i32, leader_epoch: i32) {
    let settings = super::settings();
    let moved = LINKS.with(|links| {
        let mut links = links.borrow_mut();
        let mut moved = None;
        for (&other, link) in links.iter() {
            if other == leader {
                continue;
            }
            if let Some(f) = link.partitions.borrow_mut().remove(&partition.tp) {
                moved = Some(f);
                link.changed.notify_all();
            }
        }
        let link = links.entry(leader).or_insert_with(|| {
            let link = Rc::new(Link {
                leader,
                partitions: RefCell::new(BTreeMap::new()),
                changed: LocalEvent::new(),
                joined: LocalEvent::new(),
            });
            rt::spawn_local(run(link.clone()));
            link
        });
        let mut partitions = link.partitions.borrow_mut();
        let joined = match partitions.get_mut(&partition.tp) {
            Some(f) => f.state.on_new_leader(leader, leader_epoch),
            None => {
                let log = partition.log();
                let state = FollowerState::new(
                    leader,
                    leader_epoch,
                    log.log_end_offset(),
                    log.high_watermark(),
                    log.latest_leader_epoch(),
                    settings.replica_fetch_backoff_ms,
                );
                partitions.insert(
                    partition.tp.clone(),
                    Followed {
                        partition: partition.clone(),
                        state,
                    },
                );
                true
            }
        };
        link.changed.notify_all();
        if joined {
            link.joined.notify_all();
        }
        moved.is_some()
    });
    if moved {
        tracing::debug!(partition = %partition.tp, leader, leader_epoch, "following a new leader");
    }
}

/// Stops fetching for `partition` (it leads now, is leaderless, or is gone).
pub(super) fn unfollow(partition: &Partition) {
    LINKS.with(|links| {
        for link in links.borrow().values() {
            if link.partitions.borrow_mut().remove(&partition.tp).is_some() {
                link.changed.notify_all();
            }
        }
    });
}

/// What one round asks of the leader, by partition.
#[derive(Default)]
struct Round {
    truncations: Vec<(Partition, i32, FollowerAction)>,
    epoch_questions: Vec<(Partition, i32, i32, i32)>,
    offset_questions: Vec<(Partition, i32)>,
    fetches: Vec<(Partition, FetchPartition)>,
    /// When a backing-off partition wants another look.
    wake_at: Option<i64>,
}

impl Link {
    fn collect(&self, now: i64) -> Round {
        let mut round = Round::default();
        let mut partitions = self.partitions.borrow_mut();
        for f in partitions.values_mut() {
            let epoch = f.state.leader_epoch();
            let partition = f.partition.clone();
            match f.state.next_action(now) {
                Some(
                    action @ (FollowerAction::Truncate { .. }
                    | FollowerAction::TruncateFullyAndStartAt { .. }),
                ) => round.truncations.push((partition, epoch, action)),
                Some(FollowerAction::AskEpochEndOffset {
                    epoch: asked,
                    current_leader_epoch,
                }) => round
                    .epoch_questions
                    .push((partition, epoch, asked, current_leader_epoch)),
                Some(FollowerAction::ListLeaderOffsets { .. }) => {
                    round.offset_questions.push((partition, epoch))
                }
                Some(FollowerAction::Fetch {
                    offset,
                    current_leader_epoch,
                    last_fetched_epoch,
                }) => {
                    let mut fetch = FetchPartition::default();
                    fetch.partition = partition.tp.partition;
                    fetch.current_leader_epoch = current_leader_epoch;
                    fetch.fetch_offset = offset;
                    fetch.last_fetched_epoch = last_fetched_epoch.unwrap_or(-1);
                    fetch.log_start_offset = partition.log_start_offset();
                    fetch.partition_max_bytes = super::settings().replica_fetch_max_bytes;
                    round.fetches.push((partition, fetch));
                }
                None => {
                    if let Some(at) = f.state.next_wakeup() {
                        round.wake_at = Some(round.wake_at.map_or(at, |w: i64| w.min(at)));
                    }
                }
            }
        }
        round
    }

    /// Runs `report` on the state of `partition` if it still follows this leader.
    fn with_state(&self, partition: &Partition, report: impl FnOnce(&mut FollowerState)) {
        if let Some(f) = self.partitions.borrow_mut().get_mut(&partition.tp) {
            if Rc::ptr_eq(&f.partition.replica, &partition.replica) {
                report(&mut f.state);
            }
        }
    }

    /// Forgets `partition`'s fetch state and starts it afresh from its log (finding where it
    /// diverges from the leader's first).
    fn restart(&self, partition: &Partition) {
        if let Some(f) = self.partitions.borrow_mut().get_mut(&partition.tp) {
            let log = partition.log();
            f.state = FollowerState::new(
                f.state.leader(),
                f.state.leader_epoch(),
                log.log_end_offset(),
                log.high_watermark(),
                log.latest_leader_epoch(),
                super::settings().replica_fetch_backoff_ms,
            );
        }
    }

    /// The fetches handed out for these were not sent: they are asked again at once.
    fn abandoned(&self, fetches: Vec<(Partition, FetchPartition)>) {
        for (partition, fetch) in fetches {
            self.with_state(&partition, |s| {
                s.on_request_abandoned(fetch.current_leader_epoch)
            });
        }
    }

    /// The request out for each of these failed: they back off.
    fn failed(&self, partitions: impl IntoIterator<Item = (Partition, i32)>) {
        let now = now_ms();
        for (partition, epoch) in partitions {
            self.with_state(&partition, |s| s.on_request_failed(epoch, now));
        }
    }
}

/// The fetcher of `link`'s leader on this shard, until no partition follows it.
async fn run(link: Rc<Link>) {
    let settings = super::settings();
    let mut client: Option<BrokerClient> = None;
    loop {
        if link.partitions.borrow().is_empty() {
            LINKS.with(|links| {
                let mut links = links.borrow_mut();
                if links
                    .get(&link.leader)
                    .is_some_and(|l| Rc::ptr_eq(l, &link))
                {
                    links.remove(&link.leader);
                }
            });
            return;
        }
        let changed = link.changed.wait();
        let joined = link.joined.wait();
        let mut round = link.collect(now_ms());
        let asking = !round.epoch_questions.is_empty()
            || !round.offset_questions.is_empty()
            || !round.fetches.is_empty();
        let truncated = !round.truncations.is_empty();
        if truncated {
            truncate(&link, std::mem::take(&mut round.truncations)).await;
        }
        if !asking && truncated {
            // The truncated partitions fetch next.
            continue;
        }
        if !asking {
            let wait = match round.wake_at {
                Some(at) => Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64),
                None => Duration::from_secs(60),
            };
            let stop = rt::select(rt::sleep(wait), rt::shutdown_requested());
            if let Either::Right(Either::Right(())) = rt::select(changed, stop).await {
                return;
            }
            continue;
        }
        let Some(address) = leader_address(link.leader) else {
            link.failed(round_requests(&round));
            rt::sleep(Duration::from_millis(
                settings.replica_fetch_backoff_ms.max(1) as u64,
            ))
            .await;
            continue;
        };
        if client.as_ref().is_none_or(|c| c.address() != address) {
            client = Some(BrokerClient::new(
                link.leader,
                address,
                format!("runnel-replica-{}", super::node_id()),
                broker_client::max_response_bytes(
                    settings.replica_fetch_response_max_bytes.max(0) as usize
                ),
            ));
        }
        let client = client.as_mut().expect("set just above");
        let questions = !round.epoch_questions.is_empty() || !round.offset_questions.is_empty();
        let work = async {
            ask_epoch_ends(&link, client, round.epoch_questions).await;
            ask_leader_offsets(&link, client, round.offset_questions).await;
            if questions {
                // The answers move their partitions on (to a truncation, or to fetching):
                // collect the round again so that they fetch together with the rest, rather
                // than a long poll (`replica.fetch.wait.max.ms`) later. Right after a
                // failover that long poll is what the new leader's acks=all writes wait for.
                link.abandoned(round.fetches);
            } else {
                fetch(&link, client, round.fetches, round.wake_at, joined).await;
            }
        };
        if let Either::Right(()) = rt::select(work, rt::shutdown_requested()).await {
            return;
        }
    }
}

/// A Fetch's max wait: `replica.fetch.wait.max.ms`, cut short to end when a partition backing
/// off is due (`wake_at`, ms).
fn long_poll_ms(wait_max_ms: i32, wake_at: Option<i64>, now_ms: i64) -> i32 {
    let until_due = wake_at.map_or(i64::MAX, |at| at.saturating_sub(now_ms).max(0));
    i64::from(wait_max_ms.max(0)).min(until_due) as i32
}

/// Every partition a round handed a request to, with the epoch it was made under.
fn round_requests(round: &Round) -> Vec<(Partition, i32)> {
    round
        .epoch_questions
        .iter()
        .map(|(p, e, ..)| (p.clone(), *e))
        .chain(round.offset_questions.iter().cloned())
        .chain(
            round
                .fetches
                .iter()
                .map(|(p, f)| (p.clone(), f.current_leader_epoch)),
        )
        .collect()
}

/// The leader's Kafka listener, as the cluster view advertises it.
fn leader_address(leader: i32) -> Option<String> {
    let view = crate::controller::view::current()?;
    let broker = view.brokers.iter().find(|b| b.id == leader)?;
    Some(format!("{}:{}", broker.host, broker.port))
}

/// Carries out truncations and reports each. Each holds the partition's surgery turn, which
/// a partition taking up leadership waits for.
async fn truncate(link: &Link, truncations: Vec<(Partition, i32, FollowerAction)>) {
    for (partition, epoch, action) in truncations {
        let _surgery = partition.replica.log_surgery.acquire().await;
        if !still_following(&partition, epoch) {
            continue;
        }
        let log = partition.log();
        let done = match action {
            FollowerAction::Truncate { to } => {
                tracing::info!(partition = %partition.tp, to, "truncating to the leader's log");
                log.truncate_to(to).await
            }
            FollowerAction::TruncateFullyAndStartAt { offset } => {
                tracing::info!(partition = %partition.tp, offset, "emptying the log to restart at the leader's start");
                log.truncate_fully_and_start_at(offset).await
            }
            _ => continue,
        };
        match done {
            Ok(()) => {
                let (end, latest) = (log.log_end_offset(), log.latest_leader_epoch());
                if still_following(&partition, epoch) {
                    let hw = log.high_watermark().min(end);
                    log.set_replicated_high_watermark(Some(hw));
                }
                link.with_state(&partition, |s| s.on_truncated(end, latest));
            }
            Err(e) => {
                tracing::error!(partition = %partition.tp, error = %e, "cannot truncate");
                let now = now_ms();
                link.with_state(&partition, |s| s.on_truncation_failed(now));
            }
        }
    }
}

/// Whether `partition` still follows a leader at `epoch` (not leading, not moved on).
fn still_following(partition: &Partition, epoch: i32) -> bool {
    partition.role() == Role::Follower && partition.leader_epoch() == epoch
}

/// OffsetsForLeaderEpoch for every partition that must find where its log diverges.
async fn ask_epoch_ends(
    link: &Link,
    client: &mut BrokerClient,
    questions: Vec<(Partition, i32, i32, i32)>,
) {
    if questions.is_empty() {
        return;
    }
    let mut request = OffsetForLeaderEpochRequest::default();
    request.replica_id = BrokerId(super::node_id());
    for (partition, _, asked, current) in &questions {
        let mut ask = OffsetForLeaderPartition::default();
        ask.partition = partition.tp.partition;
        ask.current_leader_epoch = *current;
        ask.leader_epoch = *asked;
        topic_entry(&mut request.topics, &partition.tp.topic, |t| &mut t.topic)
            .partitions
            .push(ask);
    }
    let answer: Result<OffsetForLeaderEpochResponse, _> = client
        .call(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &request,
            REQUEST_TIMEOUT,
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!(leader = link.leader, error = %e, "OffsetsForLeaderEpoch failed");
            metrics::record_fetcher_request_failed(FetcherRequest::OffsetForLeaderEpoch);
            link.failed(questions.into_iter().map(|(p, e, ..)| (p, e)));
            return;
        }
    };
    let now = now_ms();
    for (partition, epoch, _, _) in questions {
        let found = answer
            .topics
            .iter()
            .filter(|t| t.topic.0.as_str() == &*partition.tp.topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition == partition.tp.partition);
        let log = partition.log().clone();
        let local = move |e: i32| {
            let (epoch, end) = log.end_offset_for_epoch(e);
            (epoch >= 0 && end >= 0).then_some((epoch, end))
        };
        if let Some(p) = found.filter(|p| p.error_code != 0) {
            tracing::debug!(partition = %partition.tp, code = p.error_code, "OffsetsForLeaderEpoch refused the partition");
        }
        link.with_state(&partition, |s| match found {
            None => s.on_request_failed(epoch, now),
            Some(p) if p.error_code != 0 => s.on_error(epoch, p.error_code, now),
            Some(p) => s.on_epoch_end_offset(epoch, p.leader_epoch, p.end_offset, &local, now),
        });
    }
}

/// The leader's log start and end (ListOffsets, earliest then latest) for every partition
/// whose fetch offset was out of range.
async fn ask_leader_offsets(
    link: &Link,
    client: &mut BrokerClient,
    questions: Vec<(Partition, i32)>,
) {
    if questions.is_empty() {
        return;
    }
    let mut bounds = Vec::with_capacity(2);
    for timestamp in [-2i64, -1] {
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(super::node_id());
        for (partition, epoch) in &questions {
            let mut ask = ListOffsetsPartition::default();
            ask.partition_index = partition.tp.partition;
            ask.current_leader_epoch = *epoch;
            ask.timestamp = timestamp;
            topic_entry(&mut request.topics, &partition.tp.topic, |t| &mut t.name)
                .partitions
                .push(ask);
        }
        let answer: Result<ListOffsetsResponse, _> = client
            .call(
                ApiKey::ListOffsets,
                LIST_OFFSETS_VERSION,
                &request,
                REQUEST_TIMEOUT,
            )
            .await;
        match answer {
            Ok(answer) => bounds.push(answer),
            Err(e) => {
                tracing::debug!(leader = link.leader, error = %e, "ListOffsets failed");
                metrics::record_fetcher_request_failed(FetcherRequest::ListOffsets);
                link.failed(questions);
                return;
            }
        }
    }
    let now = now_ms();
    let offset_of = |answer: &ListOffsetsResponse, partition: &Partition| {
        answer
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == &*partition.tp.topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition.tp.partition)
            .map(|p| (p.error_code, p.offset))
    };
    for (partition, epoch) in questions {
        let start = offset_of(&bounds[0], &partition);
        let end = offset_of(&bounds[1], &partition);
        link.with_state(&partition, |s| match (start, end) {
            (Some((0, start)), Some((0, end))) => s.on_leader_offsets(epoch, start, end, now),
            (Some((code, _)), _) | (_, Some((code, _))) if code != 0 => {
                s.on_error(epoch, code, now)
            }
            _ => s.on_request_failed(epoch, now),
        });
    }
}

/// One Fetch for every partition ready to fetch; appends what comes back. The long poll
/// ends by `wake_at` (ms), when a partition of this link backing off is due to ask again:
/// right after a failover that is the partition acks=all writes on its new leader wait for.
async fn fetch(
    link: &Link,
    client: &mut BrokerClient,
    fetches: Vec<(Partition, FetchPartition)>,
    wake_at: Option<i64>,
    joined: EventWait<'_>,
) {
    if fetches.is_empty() {
        return;
    }
    let settings = super::settings();
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(super::node_id());
    request.max_wait_ms = long_poll_ms(settings.replica_fetch_wait_max_ms, wake_at, now_ms());
    request.min_bytes = settings.replica_fetch_min_bytes;
    request.max_bytes = settings.replica_fetch_response_max_bytes;
    request.session_epoch = -1;
    for (partition, fetch) in &fetches {
        topic_entry(&mut request.topics, &partition.tp.topic, |t| &mut t.topic)
            .partitions
            .push(fetch.clone());
    }
    let timeout =
        REQUEST_TIMEOUT + Duration::from_millis(settings.replica_fetch_wait_max_ms.max(0) as u64);
    let sent = std::time::Instant::now();
    tracing::trace!(
        leader = link.leader,
        partitions = ?fetches.iter().map(|(p, f)| (p.tp.to_string(), f.fetch_offset)).collect::<Vec<_>>(),
        "Fetch sent"
    );
    let call = client.call(ApiKey::Fetch, FETCH_VERSION, &request, timeout);
    let answer: Result<FetchResponse, _> = match rt::select(call, joined).await {
        Either::Left(answer) => answer,
        Either::Right(()) => {
            // A partition joined while the long poll waited: give the poll up (the client
            // drops its connection, so the late answer is never read) and ask again for
            // everything at once.
            tracing::debug!(
                leader = link.leader,
                "Fetch given up for a partition that joined"
            );
            link.abandoned(fetches);
            return;
        }
    };
    if answer.is_ok() {
        metrics::record_fetch_round_trip(sent.elapsed());
    }
    tracing::trace!(leader = link.leader, took = ?sent.elapsed(), ok = answer.is_ok(), "Fetch answered");
    let epochs = fetches
        .iter()
        .map(|(p, f)| (p.clone(), f.current_leader_epoch));
    let mut answer = match answer {
        Ok(answer) if answer.error_code == 0 => answer,
        Ok(answer) => {
            tracing::debug!(
                leader = link.leader,
                code = answer.error_code,
                "Fetch refused"
            );
            metrics::record_fetcher_request_failed(FetcherRequest::Fetch);
            link.failed(epochs);
            return;
        }
        Err(e) => {
            tracing::debug!(leader = link.leader, error = %e, "Fetch failed");
            metrics::record_fetcher_request_failed(FetcherRequest::Fetch);
            link.failed(epochs);
            return;
        }
    };
    // Place every partition's records first (offsets and writes start in this order), then
    // wait for the writes together.
    let now = now_ms();
    let mut appending = Vec::new();
    for (partition, fetch) in fetches {
        let epoch = fetch.current_leader_epoch;
        let Some(data) = answer
            .responses
            .iter_mut()
            .filter(|t| t.topic.0.as_str() == &*partition.tp.topic)
            .flat_map(|t| t.partitions.iter_mut())
            .find(|p| p.partition_index == partition.tp.partition)
        else {
            metrics::record_fetch_partition_error();
            link.failed([(partition, epoch)]);
            continue;
        };
        let mut awaited = false;
        link.with_state(&partition, |s| awaited = s.expects_fetch_response(epoch));
        if !awaited || partition.role() != Role::Follower || partition.leader_epoch() != epoch {
            continue;
        }
        if data.error_code != 0 {
            tracing::debug!(partition = %partition.tp, code = data.error_code, "Fetch refused the partition");
            metrics::record_fetch_partition_error();
            link.with_state(&partition, |s| s.on_error(epoch, data.error_code, now));
            continue;
        }
        if data.diverging_epoch.epoch >= 0 {
            let log = partition.log().clone();
            let local = move |e: i32| {
                let (epoch, end) = log.end_offset_for_epoch(e);
                (epoch >= 0 && end >= 0).then_some((epoch, end))
            };
            let (d_epoch, d_end) = (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
            link.with_state(&partition, |s| {
                s.on_diverging_epoch(epoch, d_epoch, d_end, &local, now)
            });
            continue;
        }
        if fetch.fetch_offset != partition.log().log_end_offset() {
            // The log moved under the request (a truncation by the partition's previous
            // fetcher finished meanwhile): what came back may not continue it. Start over
            // from the log as it is.
            link.restart(&partition);
            continue;
        }
        let records = whole_batches(data.records.take().unwrap_or_default());
        let size = (batch_records(&records), records.len() as u64);
        let appended = (!records.is_empty()).then(|| partition.log().append_replica(records));
        appending.push((partition, epoch, data.high_watermark, appended, size));
    }
    for (partition, epoch, leader_hw, appended, (messages, bytes)) in appending {
        if let Some(appended) = appended {
            if let Err(e) = appended.await {
                tracing::warn!(partition = %partition.tp, error = %e, "cannot append the leader's records");
                metrics::record_fetch_partition_error();
                link.failed([(partition, epoch)]);
                continue;
            }
            metrics::record_replica_append(messages, bytes);
        }
        let log = partition.log();
        let (end, latest) = (log.log_end_offset(), log.latest_leader_epoch());
        let mut hw = None;
        link.with_state(&partition, |s| {
            hw = s.on_appended(epoch, end, leader_hw, latest)
        });
        if let Some(hw) = hw {
            log.set_replicated_high_watermark(Some(hw));
        }
    }
}

/// The whole batches at the front of `records`: a Fetch answer cut at its byte limit may end
/// in part of a batch, which is fetched again whole next time.
fn whole_batches(records: Bytes) -> Bytes {
    // A batch: base offset (8), length of the rest (4), the rest.
    let mut end = 0usize;
    while records.len() >= end + 12 {
        let len = i32::from_be_bytes(records[end + 8..end + 12].try_into().expect("4 bytes"));
        let Ok(len) = usize::try_from(len) else {
            break;
        };
        let next = end.saturating_add(12).saturating_add(len);
        if next > records.len() {
            break;
        }
        end = next;
    }
    records.slice(..end)
}

/// The records in `batches` (whole batches, as [`whole_batches`] leaves them): each v2
/// batch's record count; an older format's entry counts one.
fn batch_records(batches: &[u8]) -> u64 {
    // v2 header: magic at byte 16, the record count at 57..61.
    let mut count = 0u64;
    let mut at = 0usize;
    while batches.len() >= at + 12 {
        let len = i32::from_be_bytes(batches[at + 8..at + 12].try_into().expect("4 bytes"));
        let Ok(len) = usize::try_from(len) else {
            break;
        };
        let batch = &batches[at..batches.len().min(at.saturating_add(12).saturating_add(len))];
        count += match batch.get(16) {
            Some(2) if batch.len() >= 61 => {
                let n = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
                u64::try_from(n).unwrap_or(0)
            }
            _ => 1,
        };
        at = at.saturating_add(12).saturating_add(len);
    }
    count
}

/// The entry for `topic` in a request's topic list, added if missing.
fn topic_entry<'a, T: Default>(
    topics: &'a mut Vec<T>,
    topic: &str,
    name_of: impl Fn(&mut T) -> &mut TopicName,
) -> &'a mut T {
    let at = topics
        .iter_mut()
        .position(|t| name_of(t).0.as_str() == topic);
    match at {
        Some(at) => &mut topics[at],
        None => {
            let mut entry = T::default();
            *name_of(&mut entry) = TopicName(StrBytes::from_string(topic.to_owned()));
            topics.push(entry);
            topics.last_mut().expect("just pushed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len_of_rest: usize) -> Vec<u8> {
        let mut b = vec![0u8; 12 + len_of_rest];
        b[8..12].copy_from_slice(&(len_of_rest as i32).to_be_bytes());
        b
    }

    #[test]
    fn a_long_poll_ends_when_a_backing_off_partition_is_due() {
        assert_eq!(long_poll_ms(500, None, 1_000), 500);
        assert_eq!(long_poll_ms(500, Some(1_002), 1_000), 2);
        assert_eq!(long_poll_ms(500, Some(9_000), 1_000), 500);
        assert_eq!(long_poll_ms(500, Some(900), 1_000), 0, "already due");
        assert_eq!(long_poll_ms(-1, None, 1_000), 0);
    }

    #[test]
    fn a_cut_last_batch_is_left_for_the_next_fetch() {
        let mut records = batch(50);
        records.extend(batch(70));
        let whole = records.len();
        records.extend(&batch(40)[..30]);
        assert_eq!(whole_batches(Bytes::from(records)).len(), whole);
    }

    #[test]
    fn records_are_counted_from_the_batch_headers() {
        let v2 = |records: i32| {
            let mut b = batch(49 + 10);
            b[16] = 2;
            b[57..61].copy_from_slice(&records.to_be_bytes());
            b
        };
        let mut batches = v2(3);
        batches.extend(v2(5));
        batches.extend(batch(20)); // magic 0: one message
        assert_eq!(batch_records(&batches), 9);
        assert_eq!(batch_records(&v2(-4)), 0, "a negative count counts nothing");
        assert_eq!(batch_records(&[]), 0);
    }

    #[test]
    fn garbage_lengths_end_the_walk() {
        let mut records = batch(10);
        records.extend([0u8; 8]);
        records.extend((-5i32).to_be_bytes());
        assert_eq!(whole_batches(Bytes::from(records)).len(), 22);
        assert!(whole_batches(Bytes::from_static(&[1, 2, 3])).is_empty());
    }
}
