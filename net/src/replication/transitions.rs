//! A partition taking the part the cluster's metadata gives this broker (Kafka's
//! `Partition.makeLeader` / `makeFollower`): leading starts a [`LeaderState`] and the
//! leader's task, following hands the partition to the fetcher of its leader's broker.
//! Called on the owning shard whenever the registry's placement of the partition changes.

use std::rc::Rc;
use std::time::Duration;

use runnel_engine::rt::{self, LocalEvent};

use super::clock::now_ms;
use super::fetcher;
use super::leader::{LeaderInit, LeaderState};
use super::leading::lead;
use super::replica::{Leading, Role};
use super::waiters::Waiters;
use crate::partitions::internal_topics::{OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use crate::partitions::topics::{Here, PartitionPlacement};
use crate::partitions::Partition;

impl Partition {
    /// Takes the part `placement` gives this broker, with the topic's `min.insync.replicas`.
    /// A placement already applied (same leader and partition epochs) changes nothing.
    pub async fn follow_placement(&self, placement: &PartitionPlacement, min_insync: i32) {
        self.replica.set_min_insync_replicas(min_insync);
        let key = (placement.leader_epoch, placement.partition_epoch);
        let before = self.replica.applied.replace(Some(key));
        if before == Some(key) {
            return;
        }
        tracing::debug!(
            partition = %self.tp,
            leader = placement.leader,
            leader_epoch = placement.leader_epoch,
            here = ?placement.here,
            "taking the part the metadata gives"
        );
        if before.is_none() {
            // What this replica holds past its log start is not known to be committed until
            // a leader says so: a broker restarted (or a replica new to a cluster) must not
            // let consumers read records the cluster may yet lose.
            let log = self.log();
            if log.replicated_high_watermark().is_none() {
                log.set_replicated_high_watermark(Some(log.log_start_offset()));
            }
        }
        match placement.here {
            Here::Leader => self.lead_at(placement).await,
            Here::Follower => self.follow(placement),
            // Not hosted here: the registry closes the log.
            Here::Absent => self.stop_replicating(),
        }
    }

    /// Stops leading and fetching (the partition is closed, or deleted).
    pub fn stop_replicating(&self) {
        self.resign();
        fetcher::unfollow(self);
    }

    /// Ends this broker's leadership of the partition, if it led it: waiting produces are
    /// answered, and a coordinator whose state lives in the partition forgets it (the new
    /// leader's coordinator loads it; Kafka's `onResignation`).
    fn resign(&self) {
        if !self.replica.stop_leading() {
            return;
        }
        match &*self.tp.topic {
            OFFSETS_TOPIC => crate::groups::coordinator::partition_lost(self.tp.partition),
            TRANSACTION_STATE_TOPIC => crate::txn::coordinator::partition_lost(self.tp.partition),
            _ => {}
        }
    }

    async fn lead_at(&self, placement: &PartitionPlacement) {
        let epoch = placement.leader_epoch;
        if self.keep_leading(placement) {
            return;
        }
        fetcher::unfollow(self);
        self.resign();
        // Requests meanwhile find a follower (NOT_LEADER_OR_FOLLOWER, retried) until the log
        // is whole: a truncation the fetcher started must end before the log's end is read.
        self.replica.set_role(Role::Follower, -1, epoch);
        let _surgery = self.replica.log_surgery.acquire().await;
        if self.replica.applied.get() != Some((epoch, placement.partition_epoch)) {
            // A newer placement arrived while waiting; it is applied in its turn.
            return;
        }
        let settings = super::settings();
        let log = self.log();
        log.set_follower(false);
        let epoch_start = self.begin_epoch(epoch);
        let now = now_ms();
        let state = LeaderState::new(LeaderInit {
            local: super::node_id(),
            leader_epoch: epoch,
            partition_epoch: placement.partition_epoch,
            replicas: placement.replicas.clone(),
            isr: placement.isr.clone(),
            leader_log_end: log.written_end(),
            high_watermark: log.high_watermark(),
            epoch_start_offset: epoch_start,
            now_ms: now,
            lag_time_max_ms: settings.replica_lag_time_max_ms,
            isr_retry_backoff_ms: settings.alter_partition_retry_backoff_ms,
        });
        let wake = Rc::new(LocalEvent::new());
        *self.replica.leading.borrow_mut() = Some(Leading {
            state,
            acks: Waiters::new(),
            wake: wake.clone(),
        });
        self.replica.set_role(Role::Leader, super::node_id(), epoch);
        self.publish_high_watermark();
        tracing::debug!(partition = %self.tp, epoch, isr = ?placement.isr, "leading");
        // Kafka checks the ISR every half lag time; retries of an unanswered change are
        // woken for at their time.
        let check_every =
            Duration::from_millis((settings.replica_lag_time_max_ms / 2).max(10) as u64);
        rt::spawn_local(lead(self.clone(), wake, check_every));
    }

    /// A placement that keeps this broker leading: the ISR or replicas changed, or the same
    /// broker was elected again at a newer epoch (its waiting produces stay, it does not stop
    /// leading). Returns whether it applied.
    fn keep_leading(&self, placement: &PartitionPlacement) -> bool {
        let epoch = placement.leader_epoch;
        let newer_epoch = {
            let mut leading = self.replica.leading.borrow_mut();
            let Some(leading) = leading.as_mut().filter(|l| l.state.leader_epoch() <= epoch) else {
                return false;
            };
            let newer_epoch = leading.state.leader_epoch() < epoch;
            let advanced = leading.state.on_metadata(
                epoch,
                placement.partition_epoch,
                placement.isr.clone(),
                placement.replicas.clone(),
                now_ms(),
            );
            leading.wake.notify_all();
            (newer_epoch, advanced)
        };
        let (newer_epoch, advanced) = newer_epoch;
        if newer_epoch {
            self.begin_epoch(epoch);
            self.replica.set_role(Role::Leader, super::node_id(), epoch);
        }
        if advanced {
            self.publish_high_watermark();
        }
        true
    }

    /// Starts leader epoch `epoch` at the log's end: what is appended from now on is stamped
    /// with it, and followers asking OffsetsForLeaderEpoch learn where it starts. Returns
    /// that start.
    fn begin_epoch(&self, epoch: i32) -> i64 {
        let log = self.log();
        let epoch_start = log.log_end_offset();
        log.set_leader_epoch(epoch);
        let (recording, tp) = (log.clone(), self.tp.clone());
        rt::spawn_local(async move {
            if let Err(e) = recording.assign_leader_epoch(epoch, epoch_start).await {
                tracing::error!(partition = %tp, error = %e, "cannot record the leader epoch");
            }
        });
        epoch_start
    }

    fn follow(&self, placement: &PartitionPlacement) {
        // Only the leader's records are appended here from now on (a coordinator's write
        // still under way is refused).
        self.log().set_follower(true);
        self.resign();
        self.replica
            .set_role(Role::Follower, placement.leader, placement.leader_epoch);
        if placement.leader >= 0 {
            fetcher::follow(self, placement.leader, placement.leader_epoch);
        } else {
            // Leaderless: nobody to fetch from until the controller elects one.
            fetcher::unfollow(self);
        }
    }
}
