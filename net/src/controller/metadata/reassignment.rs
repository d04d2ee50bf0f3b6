//! Partition reassignment (KIP-455, as KRaft's `ReplicationControlManager` does it):
//! AlterPartitionReassignments starts, replaces or cancels moving a partition's replicas to a
//! target set; the controller's tick completes it once the target has caught up;
//! ListPartitionReassignments reports those under way.
//!
//! While one is under way the partition's replicas are the target followed by the replicas it
//! removes. The replicas it adds start as followers with empty logs, fetch from the leader and
//! join the ISR the way any follower does (the leader's AlterPartition). Once the ISR holds
//! every target replica, one change drops the removed replicas from the replicas and the ISR
//! and, if the leader was among them, elects a target replica; a broker left without a
//! replica deletes its copy. Until then nothing is lost by cancelling: the removed replicas
//! stayed in sync all along.

use super::controller::{Decision, MetadataController, Outcome};
use super::image::PartitionState;
use super::placement;
use super::records::*;
use crate::kafka::error_code as ec;

/// Kafka's NO_REASSIGNMENT_IN_PROGRESS: a cancellation of a partition that is not moving.
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// One partition's reassignment under way, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
    pub reassigning: Reassigning,
}

/// A partition's replica sets once `target` is asked for (Kafka's
/// `PartitionReassignmentReplicas`): the target followed by what it removes from `original`.
fn moving_to(original: &[BrokerId], target: &[BrokerId]) -> (Vec<BrokerId>, Reassigning) {
    let mut removing: Vec<BrokerId> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    removing.sort_unstable();
    let mut adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    adding.sort_unstable();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    (replicas, Reassigning { adding, removing })
}

/// The replicas and ISR once the reassignment under way completes, if `isr` allows it now:
/// every replica it keeps is in the ISR, and some ISR member stays.
fn completed(
    replicas: &[BrokerId],
    reassigning: &Reassigning,
    isr: &[BrokerId],
) -> Option<(Vec<BrokerId>, Vec<BrokerId>)> {
    if !reassigning.in_progress() {
        return None;
    }
    let kept = |r: &&BrokerId| !reassigning.removing.contains(r);
    let new_replicas: Vec<BrokerId> = replicas.iter().filter(kept).copied().collect();
    let new_isr: Vec<BrokerId> = isr.iter().filter(kept).copied().collect();
    if new_isr.is_empty() || !new_replicas.iter().all(|r| new_isr.contains(r)) {
        return None;
    }
    Some((new_replicas, new_isr))
}

impl MetadataController {
    /// AlterPartitionReassignments: each of `moves` (topic, partition, target) decided on its
    /// own, all the accepted ones in one entry. The reply is each move's error code, in order
    /// (NONE: accepted). A partition named twice is refused the second time (both changes
    /// would name the same partition epoch, and the entry would be refused whole).
    pub fn alter_reassignments(
        &self,
        moves: &[(&str, i32, Option<&[BrokerId]>)],
        allow_rf_change: bool,
    ) -> Outcome<Vec<i16>> {
        let mut records = Vec::new();
        let mut codes = Vec::with_capacity(moves.len());
        let mut seen = std::collections::BTreeSet::new();
        for &(topic, partition, target) in moves {
            if !seen.insert((topic, partition)) {
                codes.push(ec::INVALID_REQUEST);
                continue;
            }
            match self.reassignment_change(topic, partition, target, allow_rf_change) {
                Ok(change) => {
                    records.extend(change);
                    codes.push(ec::NONE);
                }
                Err(code) => codes.push(code),
            }
        }
        Ok(Decision {
            records,
            reply: codes,
        })
    }

    /// [`alter_reassignments`](Self::alter_reassignments) for one partition: its change, or
    /// the error to answer.
    pub fn alter_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<&[BrokerId]>,
        allow_rf_change: bool,
    ) -> Outcome<()> {
        let decision = self.alter_reassignments(&[(topic, partition, target)], allow_rf_change)?;
        match decision.reply.first() {
            Some(&ec::NONE) => Ok(Decision {
                records: decision.records,
                reply: (),
            }),
            Some(&code) => Err(code),
            None => Err(ec::UNKNOWN_SERVER_ERROR),
        }
    }

    /// The change moving one partition to `target`, or cancelling its move (`None`); `None`
    /// when nothing changes. A target the ISR already covers completes at once. With
    /// `allow_rf_change` false, a target of another size than the current one is refused
    /// (KIP-860).
    ///
    /// A new target replaces the move under way: it is measured from the original replicas
    /// (without those being added), so asking twice for the same target changes nothing, and
    /// replicas being added that the new target drops leave at once.
    fn reassignment_change(
        &self,
        topic: &str,
        partition: i32,
        target: Option<&[BrokerId]>,
        allow_rf_change: bool,
    ) -> Result<Option<MetadataRecord>, i16> {
        let topic = self
            .image
            .topic(topic)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        let without = |ids: &[BrokerId], gone: &[BrokerId]| -> Vec<BrokerId> {
            ids.iter().copied().filter(|r| !gone.contains(r)).collect()
        };
        let original = without(&p.replicas, &p.reassigning.adding);
        let (replicas, reassigning) = match target {
            Some(target) => {
                placement::check_manual(&self.image, &[target.to_vec()], Some(target.len()))?;
                let current_target = without(&p.replicas, &p.reassigning.removing);
                if !allow_rf_change && target.len() != current_target.len() {
                    return Err(ec::INVALID_REPLICATION_FACTOR);
                }
                moving_to(&original, target)
            }
            None => {
                if !p.reassigning.in_progress() {
                    return Err(NO_REASSIGNMENT_IN_PROGRESS);
                }
                (original, Reassigning::default())
            }
        };
        // Replicas being added that stay no replica leave the ISR.
        let isr: Vec<BrokerId> = p
            .isr
            .iter()
            .copied()
            .filter(|r| replicas.contains(r))
            .collect();
        if isr.is_empty() {
            // Only replicas being added, and now dropped, are in sync: going on without them
            // would need an unclean election.
            return Err(ec::INVALID_REPLICA_ASSIGNMENT);
        }
        let done = completed(&replicas, &reassigning, &isr)
            .and_then(|(replicas, isr)| Some((self.leader_of(p, &replicas, &isr)?, replicas, isr)));
        let (leader, replicas, isr, reassigning) = match done {
            Some((leader, replicas, isr)) => (leader, replicas, isr, Reassigning::default()),
            // Started, replaced or cancelled: the leader stays unless it left the ISR, and then
            // a remaining ISR member takes over; with none live to, the change would leave the
            // partition leaderless, so it is refused.
            None => {
                let leader = if isr == p.isr {
                    p.leader
                } else {
                    self.leader_of(p, &replicas, &isr)
                        .ok_or(ec::INVALID_REPLICA_ASSIGNMENT)?
                };
                (leader, replicas, isr, reassigning)
            }
        };
        let state = NewState {
            leader,
            isr,
            replicas,
            reassigning,
        };
        Ok(state.change_from(topic.id, partition, p))
    }

    /// Changes that complete every reassignment whose target has caught up (run by the tick).
    pub(super) fn completed_reassignments(&self) -> Vec<MetadataRecord> {
        let mut changes = Vec::new();
        for topic in self.image.topics() {
            for (partition, p) in (0i32..).zip(&topic.partitions) {
                let Some((replicas, isr)) = completed(&p.replicas, &p.reassigning, &p.isr) else {
                    continue;
                };
                // No live target replica to lead yet: it completes once one is back.
                let Some(leader) = self.leader_of(p, &replicas, &isr) else {
                    continue;
                };
                let state = NewState {
                    leader,
                    isr,
                    replicas,
                    reassigning: Reassigning::default(),
                };
                changes.extend(state.change_from(topic.id, partition, p));
            }
        }
        changes
    }

    /// ListPartitionReassignments: those under way among `wanted` (topic, partitions), or all
    /// of them. Unknown topics and partitions are left out, as Kafka does.
    pub fn reassignments(&self, wanted: Option<&[(String, Vec<i32>)]>) -> Vec<OngoingReassignment> {
        let ongoing = |topic: &super::image::TopicImage, partition: i32| {
            let p = usize::try_from(partition)
                .ok()
                .and_then(|i| topic.partitions.get(i))?;
            p.reassigning.in_progress().then(|| OngoingReassignment {
                topic: topic.name.clone(),
                partition,
                replicas: p.replicas.clone(),
                reassigning: p.reassigning.clone(),
            })
        };
        match wanted {
            Some(wanted) => wanted
                .iter()
                .filter_map(|(name, partitions)| Some((self.image.topic(name)?, partitions)))
                .flat_map(|(topic, partitions)| {
                    partitions.iter().filter_map(|&p| ongoing(topic, p))
                })
                .collect(),
            None => self
                .image
                .topics()
                .flat_map(|topic| {
                    (0..topic.partitions.len() as i32).filter_map(|p| ongoing(topic, p))
                })
                .collect(),
        }
    }

    /// The leader `p` has with these replicas and ISR: the current one if it stays in the ISR
    /// and is live, else the first live ISR member in replica order; `None` if there is none.
    fn leader_of(
        &self,
        p: &PartitionState,
        replicas: &[BrokerId],
        isr: &[BrokerId],
    ) -> Option<BrokerId> {
        if isr.contains(&p.leader) && self.image.is_live(p.leader) {
            return Some(p.leader);
        }
        replicas
            .iter()
            .copied()
            .find(|&r| isr.contains(&r) && self.image.is_live(r))
    }
}

/// The part of a partition's state a reassignment decides.
struct NewState {
    leader: BrokerId,
    isr: Vec<BrokerId>,
    replicas: Vec<BrokerId>,
    reassigning: Reassigning,
}

impl NewState {
    /// The change from `p` to this state, naming only the fields that differ; `None` if none
    /// does.
    fn change_from(
        self,
        topic_id: TopicId,
        partition: i32,
        p: &PartitionState,
    ) -> Option<MetadataRecord> {
        let change = PartitionChange {
            topic_id,
            partition,
            base_partition_epoch: p.partition_epoch,
            leader: (self.leader != p.leader).then_some(self.leader),
            isr: (self.isr != p.isr).then_some(self.isr),
            replicas: (self.replicas != p.replicas).then_some(self.replicas),
            reassigning: (self.reassigning != p.reassigning).then_some(self.reassigning),
        };
        let changes_something = change.leader.is_some()
            || change.isr.is_some()
            || change.replicas.is_some()
            || change.reassigning.is_some();
        changes_something.then_some(MetadataRecord::PartitionChange(change))
    }
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
