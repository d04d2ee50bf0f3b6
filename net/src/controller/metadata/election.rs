//! Leader and ISR changes derived from which brokers are live: the one rule used when a broker
//! is fenced, starts a controlled shutdown, comes back, or when the controller repairs what a
//! lost proposal left behind.
//!
//! The rule (Kafka's pre-KIP-966 KRaft rule):
//! - A broker that is not live leaves every ISR, except that an ISR never becomes empty: when
//!   its last member goes, it stays (it may hold the only copy of acknowledged data, so it is
//!   the one to lead again once it returns). Leaving the leader's place is what matters here.
//! - The leader stays if it is live and in the new ISR; otherwise the new leader is the first
//!   replica, in replica order, that is in the new ISR and live; if there is none the partition
//!   is leaderless ([`NO_LEADER`]). Never a replica outside the ISR: no unclean election.

use super::image::{MetadataImage, PartitionState};
use super::records::*;

/// The leader and ISR `p` should have when only brokers passing `live` are live.
pub(super) fn target(
    p: &PartitionState,
    live: &impl Fn(BrokerId) -> bool,
) -> (BrokerId, Vec<BrokerId>) {
    let mut isr: Vec<BrokerId> = p.isr.iter().copied().filter(|&b| live(b)).collect();
    if isr.is_empty() {
        isr = p.isr.clone();
    }
    let leader = if p.leader != NO_LEADER && live(p.leader) && isr.contains(&p.leader) {
        p.leader
    } else {
        p.replicas
            .iter()
            .copied()
            .find(|&r| live(r) && isr.contains(&r))
            .unwrap_or(NO_LEADER)
    };
    (leader, isr)
}

/// Changes that bring every partition `pick` selects to its [`target`].
pub(super) fn rebalance(
    image: &MetadataImage,
    live: impl Fn(BrokerId) -> bool,
    mut pick: impl FnMut(&PartitionState) -> bool,
) -> Vec<MetadataRecord> {
    let mut changes = Vec::new();
    for topic in image.topics() {
        for (partition, p) in (0i32..).zip(&topic.partitions) {
            if !pick(p) {
                continue;
            }
            let (leader, isr) = target(p, &live);
            if leader == p.leader && isr == p.isr {
                continue;
            }
            changes.push(MetadataRecord::PartitionChange(PartitionChange {
                topic_id: topic.id,
                partition,
                base_partition_epoch: p.partition_epoch,
                leader: (leader != p.leader).then_some(leader),
                isr: (isr != p.isr).then_some(isr),
                replicas: None,
                reassigning: None,
            }));
        }
    }
    changes
}

/// Changes that take `broker` out of leadership and ISRs, as if it were no longer live.
pub(super) fn moves_off(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    rebalance(
        image,
        |b| b != broker && image.is_live(b),
        |p| p.leader == broker || p.isr.contains(&broker),
    )
}

/// Elections of `broker`, about to become live, where it is the ISR member able to lead.
pub(super) fn elections_with(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    rebalance(
        image,
        |b| b == broker || image.is_live(b),
        |p| p.leader == NO_LEADER && p.isr.contains(&broker),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            reassigning: Reassigning::default(),
        }
    }

    #[test]
    fn the_first_live_isr_replica_in_replica_order_leads() {
        let live = |b: i32| b != 1;
        assert_eq!(
            target(&state(&[1, 3, 2], &[2, 3, 1], 1), &live),
            (3, vec![2, 3])
        );
        // A live leader stays even if it is not the first replica.
        assert_eq!(
            target(&state(&[1, 3, 2], &[2, 3], 2), &live),
            (2, vec![2, 3])
        );
    }

    #[test]
    fn the_last_isr_member_stays_and_no_unclean_leader_is_chosen() {
        let live = |b: i32| b != 1;
        // Replicas 2 and 3 are live but out of sync: the partition goes leaderless.
        assert_eq!(
            target(&state(&[1, 2, 3], &[1], 1), &live),
            (NO_LEADER, vec![1])
        );
        // When it comes back it leads again.
        let all = |_: i32| true;
        assert_eq!(
            target(&state(&[1, 2, 3], &[1], NO_LEADER), &all),
            (1, vec![1])
        );
    }
}
