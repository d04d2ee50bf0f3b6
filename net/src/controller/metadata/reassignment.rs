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
/// `PartitionReassignmentReplicas`): the target followed by what it removes from `current`.
fn moving_to(current: &[BrokerId], target: &[BrokerId]) -> (Vec<BrokerId>, Reassigning) {
    let mut removing: Vec<BrokerId> = current
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    removing.sort_unstable();
    let mut adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
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
    /// AlterPartitionReassignments for one partition: move it to `target`, or cancel the move
    /// under way (`None`). A target that the ISR already covers completes at once. With
    /// `allow_rf_change` false, a target of another size than the original replicas is refused
    /// (KIP-860).
    pub fn alter_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<&[BrokerId]>,
        allow_rf_change: bool,
    ) -> Outcome<()> {
        let topic = self
            .image
            .topic(topic)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        let original: Vec<BrokerId> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !p.reassigning.adding.contains(r))
            .collect();
        let (replicas, isr, reassigning) = match target {
            Some(target) => {
                placement::check_manual(&self.image, &[target.to_vec()], Some(target.len()))?;
                if !allow_rf_change && target.len() != original.len() {
                    return Err(ec::INVALID_REPLICATION_FACTOR);
                }
                let (replicas, reassigning) = moving_to(&p.replicas, target);
                (replicas, p.isr.clone(), reassigning)
            }
            None => {
                if !p.reassigning.in_progress() {
                    return Err(NO_REASSIGNMENT_IN_PROGRESS);
                }
                let isr: Vec<BrokerId> = p
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| !p.reassigning.adding.contains(r))
                    .collect();
                if isr.is_empty() {
                    // Only replicas being added are in sync: going back would need an unclean
                    // election, which is not enabled.
                    return Err(ec::INVALID_REPLICA_ASSIGNMENT);
                }
                (original, isr, Reassigning::default())
            }
        };
        let done = completed(&replicas, &reassigning, &isr)
            .and_then(|(replicas, isr)| Some((self.leader_of(p, &replicas, &isr)?, replicas, isr)));
        let (leader, replicas, isr, reassigning) = match done {
            Some((leader, replicas, isr)) => (leader, replicas, isr, Reassigning::default()),
            // Started (or replaced): the ISR and leader stay as they are.
            None if isr == p.isr => (p.leader, replicas, isr, reassigning),
            // Cancelled, the replicas it added leaving the ISR: if one of them led, an original
            // replica takes over; with none live to, going back would leave it leaderless.
            None => {
                let leader = self
                    .leader_of(p, &replicas, &isr)
                    .ok_or(ec::INVALID_REPLICA_ASSIGNMENT)?;
                (leader, replicas, isr, reassigning)
            }
        };
        let change = PartitionChange {
            topic_id: topic.id,
            partition,
            base_partition_epoch: p.partition_epoch,
            leader: Some(leader),
            isr: Some(isr),
            replicas: Some(replicas),
            reassigning: Some(reassigning),
        };
        let records = only_changes(p, change).into_iter().collect();
        Ok(Decision { records, reply: () })
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
                let change = PartitionChange {
                    topic_id: topic.id,
                    partition,
                    base_partition_epoch: p.partition_epoch,
                    leader: Some(leader),
                    isr: Some(isr),
                    replicas: Some(replicas),
                    reassigning: Some(Reassigning::default()),
                };
                changes.extend(only_changes(p, change));
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

/// `change` with only the fields that differ from `p`; `None` if none does.
fn only_changes(p: &PartitionState, change: PartitionChange) -> Option<MetadataRecord> {
    let change = PartitionChange {
        leader: change.leader.filter(|&l| l != p.leader),
        isr: change.isr.filter(|isr| *isr != p.isr),
        replicas: change.replicas.filter(|r| *r != p.replicas),
        reassigning: change.reassigning.filter(|r| *r != p.reassigning),
        ..change
    };
    let changes_something = change.leader.is_some()
        || change.isr.is_some()
        || change.replicas.is_some()
        || change.reassigning.is_some();
    changes_something.then_some(MetadataRecord::PartitionChange(change))
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
