//! A partition leader at run time: followers' fetches move the ISR and the high watermark,
//! acks=all produces wait for the high watermark, and a task per led partition does what
//! needs time or the network (the leader's own appends moving the high watermark, the ISR
//! check every half lag time, ISR changes sent to the controller as AlterPartition).
//!
//! The rules are [`LeaderState`]'s; this file carries them out: it writes the high
//! watermark to the log (which wakes long-polling consumers) and completes the waiting
//! produces whenever a call says it moved.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, BrokerId};
use std::time::Instant;

use runnel_engine::rt::{self, Either, LocalEvent};

use super::clock::now_ms;
use super::leader::{IsrChange, IsrChangeResult, ProduceCheck};
use crate::groups::oneshot;
use crate::kafka::error_code;
use crate::metrics::replication as metrics;
use crate::partitions::Partition;
use crate::route::ErrorCode;

/// Most acks=all produces one partition holds waiting (Kafka's purgatory has no per-partition
/// bound, but its clients' in-flight limits bound it; ours must not grow without one).
const MAX_WAITING_ACKS: usize = 100_000;

impl Partition {
    /// A follower fetched from `fetch_offset` (so holds everything below it): moves the ISR
    /// and the high watermark as [`LeaderState::on_follower_fetch`](super::leader) says.
    /// NOT_LEADER_OR_FOLLOWER unless this broker leads the partition in a cluster and the
    /// fetcher is one of its replicas.
    pub fn follower_fetched(&self, follower: i32, fetch_offset: i64) -> Result<(), ErrorCode> {
        let written = self.log().written_end();
        let outcome = {
            let mut leading = self.replica.leading.borrow_mut();
            let leading = leading.as_mut().ok_or(error_code::NOT_LEADER_OR_FOLLOWER)?;
            leading
                .state
                .on_follower_fetch(follower, fetch_offset, written, now_ms())
                .map_err(|rejected| rejected.code())?
        };
        if outcome.hw_advanced {
            self.publish_high_watermark();
        }
        if let Some(change) = outcome.propose {
            rt::spawn_local(send_isr_change(self.clone(), change));
        }
        Ok(())
    }

    /// Completes once the high watermark reaches `end` (the offset after an acks=all
    /// produce's last record), or with the error the produce gets: NOT_LEADER_OR_FOLLOWER
    /// when leadership is lost meanwhile, NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank
    /// below `min.insync.replicas`, REQUEST_TIMED_OUT after `timeout`.
    pub async fn wait_replicated(&self, end: i64, timeout: Duration) -> Result<(), ErrorCode> {
        // The append just written may be all it takes (a leader alone in the ISR): count it
        // now rather than when the leader's task next runs.
        self.leader_appended();
        let pending = {
            let mut leading = self.replica.leading.borrow_mut();
            let Some(leading) = leading.as_mut() else {
                // A lone broker's partition: written is committed. A partition no longer led
                // here: the produce must go to the new leader.
                return match self.replica.role() {
                    super::Role::Leader if self.replica.applied.get().is_none() => Ok(()),
                    _ => Err(error_code::NOT_LEADER_OR_FOLLOWER),
                };
            };
            match leading
                .state
                .produce_ready(end, self.replica.min_insync_replicas())
            {
                ProduceCheck::Ready => return Ok(()),
                ProduceCheck::NotEnoughReplicasAfterAppend => {
                    return Err(error_code::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
                }
                ProduceCheck::Wait => {
                    if leading.acks.len() >= MAX_WAITING_ACKS {
                        // Produces that timed out still hold their places: drop those first.
                        let _ = leading.acks.take_where(|ack| !ack.is_awaited());
                        if leading.acks.len() >= MAX_WAITING_ACKS {
                            return Err(error_code::REQUEST_TIMED_OUT);
                        }
                    }
                    let (sender, pending) = oneshot::channel();
                    leading.acks.add(end, sender);
                    pending
                }
            }
        };
        match rt::timeout(timeout, pending.recv()).await {
            Ok(Some(answer)) => answer,
            // Dropped unanswered: the partition went away with its leader state.
            Ok(None) => Err(error_code::NOT_LEADER_OR_FOLLOWER),
            Err(_) => Err(error_code::REQUEST_TIMED_OUT),
        }
    }

    /// Tells the leader state how far this replica's log is written; publishes the high
    /// watermark if that moved it.
    fn leader_appended(&self) {
        let written = self.log().written_end();
        let advanced = match self.replica.leading.borrow_mut().as_mut() {
            Some(leading) => leading.state.on_leader_append(written, now_ms()),
            None => false,
        };
        if advanced {
            self.publish_high_watermark();
        }
    }

    /// Writes the leader state's high watermark to the log (consumers read below it and
    /// their long polls wake) and answers the produces it completes.
    pub(super) fn publish_high_watermark(&self) {
        let ready = {
            let mut leading = self.replica.leading.borrow_mut();
            let Some(leading) = leading.as_mut() else {
                return;
            };
            let hw = leading.state.high_watermark();
            self.log().set_replicated_high_watermark(Some(hw));
            let min_insync = self.replica.min_insync_replicas();
            let answer = match leading.state.produce_ready(hw, min_insync) {
                ProduceCheck::NotEnoughReplicasAfterAppend => {
                    Err(error_code::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
                }
                _ => Ok(()),
            };
            (leading.acks.take_ready(hw), answer)
        };
        let (acks, answer) = ready;
        for ack in acks {
            ack.send(answer);
        }
    }
}

/// The leader's task for `partition` while it leads with the leader state whose wake event
/// is `wake` (a new leadership has a new one): follows its own appends (they move the high
/// watermark when it is alone in the ISR), checks the ISR every half lag time (Kafka's
/// `isr-expiration`) and re-sends an ISR change whose outcome was unknown when it is due.
pub(super) async fn lead(partition: Partition, wake: Rc<LocalEvent>, check_every: Duration) {
    let mut next_check = Instant::now() + check_every;
    loop {
        let changed = partition.log().changed();
        let woken = wake.wait();
        let written = partition.log().written_end();
        let now = now_ms();
        let due = Instant::now() >= next_check;
        let (advanced, propose, retry_at) = {
            let mut leading = partition.replica.leading.borrow_mut();
            let Some(leading) = leading.as_mut().filter(|l| Rc::ptr_eq(&l.wake, &wake)) else {
                return;
            };
            let mut advanced = leading.state.on_leader_append(written, now);
            if due {
                advanced |= leading.state.refresh_high_watermark(now);
            }
            // Cheap (the ISR's few members): on every wake, so a due retry goes out at once.
            let propose = leading.state.maybe_shrink(now);
            (advanced, propose, leading.state.next_retry_at())
        };
        if due {
            next_check = Instant::now() + check_every;
        }
        if advanced {
            partition.publish_high_watermark();
        }
        if let Some(change) = propose {
            rt::spawn_local(send_isr_change(partition.clone(), change));
        }
        let mut left = next_check.saturating_duration_since(Instant::now());
        if let Some(at) = retry_at {
            left = left.min(Duration::from_millis((at - now).max(1) as u64));
        }
        let events = rt::select(changed, woken);
        let stop = rt::select(rt::sleep(left), rt::shutdown_requested());
        if let Either::Right(Either::Right(())) = rt::select(events, stop).await {
            return;
        }
    }
}

/// Sends an ISR change to the controller (AlterPartition) and gives the leader state the
/// answer. One is in flight per partition at a time: the leader state proposes no other
/// until this one is answered.
async fn send_isr_change(partition: Partition, change: IsrChange) {
    let topic_id = uuid::Uuid::parse_str(&partition.topic_id).unwrap_or_default();
    let mut data = PartitionData::default();
    data.partition_index = partition.tp.partition;
    data.leader_epoch = change.leader_epoch;
    data.new_isr = change.new_isr.iter().copied().map(BrokerId).collect();
    data.partition_epoch = change.partition_epoch;
    let mut topic = TopicData::default();
    topic.topic_id = topic_id;
    topic.partitions.push(data);
    let mut request = AlterPartitionRequest::default();
    request.topics.push(topic);
    tracing::debug!(partition = %partition.tp, isr = ?change.new_isr, "proposing an ISR change");
    // The committed ISR the change starts from, to tell a shrink from an expansion once
    // committed (the metadata may bring the new ISR before the answer does).
    let base = partition
        .replica
        .leading
        .borrow()
        .as_ref()
        .filter(|l| l.state.leader_epoch() == change.leader_epoch)
        .map(|l| l.state.isr().to_vec());
    let result = match crate::controller::node::alter_partition(request).await {
        Err((code, message)) => {
            tracing::debug!(partition = %partition.tp, code, %message, "ISR change not answered");
            IsrChangeResult::Retriable
        }
        Ok(response) if response.error_code != error_code::NONE => {
            IsrChangeResult::from_error_code(response.error_code)
        }
        Ok(response) => {
            let answer = response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == partition.tp.partition);
            match answer {
                None => IsrChangeResult::Retriable,
                Some(p) if p.error_code != error_code::NONE => {
                    IsrChangeResult::from_error_code(p.error_code)
                }
                Some(p) => IsrChangeResult::Committed {
                    leader_epoch: p.leader_epoch,
                    isr: p.isr.iter().map(|b| b.0).collect(),
                    partition_epoch: p.partition_epoch,
                },
            }
        }
    };
    match &result {
        IsrChangeResult::Committed {
            isr,
            leader_epoch,
            partition_epoch,
        } => {
            tracing::info!(partition = %partition.tp, ?isr, "ISR changed");
            let this_change =
                *leader_epoch == change.leader_epoch && *partition_epoch > change.partition_epoch;
            if let Some(base) = base.as_deref().filter(|_| this_change) {
                metrics::record_isr_change(base, isr);
            }
        }
        other => {
            tracing::debug!(partition = %partition.tp, result = ?other, "ISR change refused");
            metrics::record_isr_change_failed();
        }
    }
    let advanced = {
        let mut leading = partition.replica.leading.borrow_mut();
        let Some(leading) = leading.as_mut() else {
            return;
        };
        // The answer to this proposal, not to one the metadata has since replaced (a late
        // refusal must not fence a newer proposal).
        if leading.state.pending_change() != Some(&change) {
            return;
        }
        let advanced = leading.state.on_isr_change_result(result, now_ms());
        // A retry (or the next check) is the task's to make.
        leading.wake.notify_all();
        advanced
    };
    if advanced {
        partition.publish_high_watermark();
    }
}
