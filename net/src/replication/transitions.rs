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
use crate::partitions::topics::{Here, PartitionPlacement};
use crate::partitions::Partition;

impl Partition {
    /// Takes the part `placement` gives this broker, with the topic's `min.insync.replicas`.
    /// A placement already applied (same leader and partition epochs) changes nothing.
    pub fn follow_placement(&self, placement: &PartitionPlacement, min_insync: i32) {
        self.replica.set_min_insync_replicas(min_insync);
        let key = (placement.leader_epoch, placement.partition_epoch);
        let before = self.replica.applied.replace(Some(key));
        if before == Some(key) {
            return;
        }
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
            Here::Leader => self.lead_at(placement),
            Here::Follower => self.follow(placement),
            // Not hosted here: the registry closes the log.
            Here::Absent => self.stop_replicating(),
        }
    }

    /// Stops leading and fetching (the partition is closed, or deleted).
    pub fn stop_replicating(&self) {
        self.replica.stop_leading();
        fetcher::unfollow(self);
    }

    fn lead_at(&self, placement: &PartitionPlacement) {
        let settings = super::settings();
        let epoch = placement.leader_epoch;
        let now = now_ms();
        let still_leading = {
            let mut leading = self.replica.leading.borrow_mut();
            leading
                .as_mut()
                .filter(|l| l.state.leader_epoch() == epoch)
                .map(|leading| {
                    // Still leading at this epoch: the ISR (or replicas) changed.
                    leading.wake.notify_all();
                    leading.state.on_metadata(
                        epoch,
                        placement.partition_epoch,
                        placement.isr.clone(),
                        placement.replicas.clone(),
                        now,
                    )
                })
        };
        if let Some(advanced) = still_leading {
            if advanced {
                self.publish_high_watermark();
            }
            return;
        }
        fetcher::unfollow(self);
        self.replica.stop_leading();
        self.replica.set_role(Role::Leader, super::node_id(), epoch);
        let log = self.log();
        // Records appended from now on are this epoch's (stamped with it), starting at the
        // log's end: what followers ask OffsetsForLeaderEpoch about.
        let epoch_start = log.log_end_offset();
        log.set_leader_epoch(epoch);
        let (recording, tp) = (log.clone(), self.tp.clone());
        rt::spawn_local(async move {
            if let Err(e) = recording.assign_leader_epoch(epoch, epoch_start).await {
                tracing::error!(partition = %tp, error = %e, "cannot record the leader epoch");
            }
        });
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
        *self.replica.leading.borrow_mut() = Some(Leading {
            state,
            acks: Waiters::new(),
            wake: Rc::new(LocalEvent::new()),
        });
        self.publish_high_watermark();
        tracing::debug!(partition = %self.tp, epoch, isr = ?placement.isr, "leading");
        // Kafka checks the ISR every half lag time; retries of an unanswered change need
        // sooner checks, which the task's wake-ups provide.
        let check_every =
            Duration::from_millis((settings.replica_lag_time_max_ms / 2).max(10) as u64);
        rt::spawn_local(lead(self.clone(), epoch, check_every));
    }

    fn follow(&self, placement: &PartitionPlacement) {
        self.replica.stop_leading();
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
