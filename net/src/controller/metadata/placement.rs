//! Where new partitions' replicas go: Kafka's rack-unaware round robin
//! (`AdminUtils.assignReplicasToBrokers`), and the checks on an assignment given explicitly.
//!
//! Round robin over the brokers sorted by id: partition `p`'s first replica (its preferred
//! leader) is broker `(p + start) % n`, so leaders rotate evenly; the followers are the brokers
//! at increasing distances from it, the distance shifting by one every `n` partitions so that
//! followers spread too. Kafka draws `start` and the first shift at random; here they come from
//! a seed the caller passes, so tests are repeatable.

use super::image::MetadataImage;
use super::records::BrokerId;
use super::validate::distinct;
use crate::kafka::error_code as ec;

/// The start index and replica shift a seed stands for, for `n` brokers.
pub(super) fn from_seed(seed: u64, n: usize) -> (usize, usize) {
    let n = n.max(1) as u64;
    ((seed % n) as usize, ((seed / n) % n) as usize)
}

/// Assignments for partitions `first_partition..first_partition + count`, `rf` replicas each,
/// over `brokers` (sorted, distinct, at least `rf` of them).
pub(super) fn round_robin(
    brokers: &[BrokerId],
    first_partition: usize,
    count: usize,
    rf: usize,
    start: usize,
    mut shift: usize,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    if n == 0 || rf == 0 || rf > n {
        return Vec::new();
    }
    let mut assignment = Vec::with_capacity(count);
    for partition in first_partition..first_partition + count {
        if partition > 0 && partition % n == 0 {
            shift += 1;
        }
        let first = (partition + start) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            // 1..n-1 steps away from the first replica: never the first replica itself.
            let distance = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + distance) % n]);
        }
        assignment.push(replicas);
    }
    assignment
}

/// Checks an explicit assignment: every partition names `rf` distinct registered brokers
/// (`rf` being the first partition's when `None`). INVALID_REPLICA_ASSIGNMENT otherwise.
pub(super) fn check_manual(
    image: &MetadataImage,
    assignment: &[Vec<BrokerId>],
    rf: Option<usize>,
) -> Result<(), i16> {
    let rf = match (rf, assignment.first()) {
        (Some(rf), _) => rf,
        (None, Some(first)) => first.len(),
        (None, None) => return Err(ec::INVALID_REPLICA_ASSIGNMENT),
    };
    for replicas in assignment {
        if replicas.is_empty()
            || replicas.len() != rf
            || !distinct(replicas)
            || replicas.iter().any(|&b| image.broker(b).is_none())
        {
            return Err(ec::INVALID_REPLICA_ASSIGNMENT);
        }
    }
    Ok(())
}

/// The in-sync replicas a new partition starts with: its live replicas (a new partition has no
/// data, so any live replica is in sync). None live is refused, as Kafka does.
pub(super) fn initial_isr(
    image: &MetadataImage,
    replicas: &[BrokerId],
) -> Result<Vec<BrokerId>, i16> {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|&b| image.is_live(b))
        .collect();
    if isr.is_empty() {
        return Err(ec::INVALID_REPLICA_ASSIGNMENT);
    }
    Ok(isr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_round_robin() {
        // Kafka's documented example: 5 brokers, 10 partitions, 3 replicas, start 0, shift 0.
        let a = round_robin(&[0, 1, 2, 3, 4], 0, 10, 3, 0, 0);
        assert_eq!(a[0], vec![0, 1, 2]);
        assert_eq!(a[1], vec![1, 2, 3]);
        assert_eq!(a[4], vec![4, 0, 1]);
        // The follower distance shifts after a full round.
        assert_eq!(a[5], vec![0, 2, 3]);
        assert_eq!(a[9], vec![4, 1, 2]);
    }

    #[test]
    fn too_few_brokers_assign_nothing() {
        assert!(round_robin(&[1, 2], 0, 3, 3, 0, 0).is_empty());
        assert!(round_robin(&[], 0, 3, 1, 0, 0).is_empty());
    }
}
