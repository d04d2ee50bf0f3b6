//! Checks of where a new topic's or new partitions' replicas go, as Kafka's controller makes
//! them (ReplicationControlManager): explicit replica assignments from CreateTopics and
//! CreatePartitions, or a partition count and replication factor to place by default. Pure:
//! the brokers come from [`super::brokers`], the error codes and messages are Kafka's.

use std::collections::BTreeSet;

use super::brokers::Brokers;
use super::shard::CreateError;

/// Kafka's `default.replication.factor` (1, its default): what `-1` asks for.
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// A new topic's shape: partitions and replicas of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub partitions: i32,
    pub replication_factor: i16,
}

/// One partition's replicas as a CreateTopics assignment gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// The layout of a topic CreateTopics asks for: from `assignments` when there are any (then
/// the counts must be -1), else from the counts, -1 meaning the default.
pub fn new_topic_layout(
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[PartitionReplicas],
    default_partitions: i32,
    brokers: &Brokers,
) -> Result<Layout, CreateError> {
    if !assignments.is_empty() {
        if replication_factor != -1 {
            return Err(CreateError::InvalidRequest(
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1."
                    .into(),
            ));
        }
        if num_partitions != -1 {
            return Err(CreateError::InvalidRequest(
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1."
                    .into(),
            ));
        }
        return assigned_layout(assignments, brokers);
    }
    if replication_factor < -1 || replication_factor == 0 {
        return Err(CreateError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    if num_partitions < -1 || num_partitions == 0 {
        return Err(CreateError::InvalidPartitions(
            "Number of partitions was set to an invalid non-positive value.".into(),
        ));
    }
    let replication_factor = if replication_factor == -1 {
        DEFAULT_REPLICATION_FACTOR
    } else {
        replication_factor
    };
    if usize::try_from(replication_factor).unwrap_or(0) > brokers.len() {
        return Err(CreateError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target \
             replication factor of {replication_factor} cannot be reached because only {} \
             broker(s) are registered.",
            brokers.len()
        )));
    }
    let partitions = if num_partitions == -1 {
        default_partitions
    } else {
        num_partitions
    };
    Ok(Layout {
        partitions,
        replication_factor,
    })
}

/// The layout an explicit assignment describes: every partition once, ids 0..n, each with
/// the same number of distinct registered brokers.
fn assigned_layout(
    assignments: &[PartitionReplicas],
    brokers: &Brokers,
) -> Result<Layout, CreateError> {
    let mut seen = BTreeSet::new();
    let mut replication_factor = None;
    for assignment in assignments {
        if !seen.insert(assignment.partition) {
            return Err(CreateError::InvalidReplicaAssignment(format!(
                "Found multiple manual partition assignments for partition {}",
                assignment.partition
            )));
        }
        check_replicas(&assignment.replicas, replication_factor, brokers)?;
        replication_factor = Some(assignment.replicas.len());
    }
    // Distinct ids, as many as partitions: contiguous from 0 exactly when the largest is n-1
    // and none is negative.
    let contiguous = seen.first().is_some_and(|&first| first == 0)
        && seen
            .last()
            .is_some_and(|&last| usize::try_from(last).is_ok_and(|l| l + 1 == seen.len()));
    if !contiguous {
        return Err(CreateError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    Ok(Layout {
        partitions: i32::try_from(seen.len()).unwrap_or(i32::MAX),
        // At most the brokers' count (distinct registered ids), so it fits.
        replication_factor: replication_factor
            .and_then(|rf| i16::try_from(rf).ok())
            .unwrap_or(i16::MAX),
    })
}

/// Checks CreatePartitions' explicit assignments of the partitions a topic grows by: one per
/// new partition, each with `replication_factor` distinct registered brokers.
pub fn check_new_partitions(
    assignments: &[Vec<i32>],
    additional: usize,
    replication_factor: usize,
    brokers: &Brokers,
) -> Result<(), CreateError> {
    if assignments.len() != additional {
        return Err(CreateError::InvalidReplicaAssignment(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) \
             were specified.",
            assignments.len()
        )));
    }
    for replicas in assignments {
        check_replicas(replicas, Some(replication_factor), brokers)?;
    }
    Ok(())
}

/// One partition's replicas: not empty, registered brokers, none twice, and as many as the
/// other partitions have (when known).
fn check_replicas(
    replicas: &[i32],
    replication_factor: Option<usize>,
    brokers: &Brokers,
) -> Result<(), CreateError> {
    let refuse = |message: String| Err(CreateError::InvalidReplicaAssignment(message));
    if replicas.is_empty() {
        return refuse("The manual partition assignment includes an empty replica list.".into());
    }
    // Sorted, as Kafka checks them: the smallest unknown or repeated id is the one named.
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for &broker in &sorted {
        if !brokers.contains(broker) {
            return refuse(format!(
                "The manual partition assignment includes broker {broker}, but no such broker \
                 is registered."
            ));
        }
        if previous == Some(broker) {
            return refuse(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    match replication_factor {
        Some(expected) if expected != sorted.len() => refuse(format!(
            "The manual partition assignment includes a partition with {} replica(s), but \
             this is not consistent with previous partitions, which have {expected} \
             replica(s).",
            sorted.len()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(spec: &[(i32, &[i32])]) -> Vec<PartitionReplicas> {
        spec.iter()
            .map(|&(partition, replicas)| PartitionReplicas {
                partition,
                replicas: replicas.to_vec(),
            })
            .collect()
    }

    fn layout(spec: &[(i32, &[i32])], brokers: &[i32]) -> Result<Layout, CreateError> {
        new_topic_layout(
            -1,
            -1,
            &assignment(spec),
            1,
            &Brokers::of(brokers.iter().copied()),
        )
    }

    fn assignment_error(result: Result<impl std::fmt::Debug, CreateError>) -> String {
        match result {
            Err(CreateError::InvalidReplicaAssignment(message)) => message,
            other => panic!("expected INVALID_REPLICA_ASSIGNMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_assignment_gives_the_layout() {
        let three = [(1, &[7][..]), (0, &[7][..]), (2, &[7][..])];
        assert_eq!(
            layout(&three, &[7]),
            Ok(Layout {
                partitions: 3,
                replication_factor: 1
            })
        );
        let replicated = [(0, &[1, 2][..]), (1, &[2, 3][..])];
        assert_eq!(
            layout(&replicated, &[1, 2, 3]),
            Ok(Layout {
                partitions: 2,
                replication_factor: 2
            })
        );
    }

    #[test]
    fn badly_formed_assignments_are_refused_with_kafkas_messages() {
        let unknown = assignment_error(layout(&[(0, &[1])], &[7]));
        assert!(
            unknown.contains("broker 1, but no such broker"),
            "{unknown}"
        );
        let twice = assignment_error(layout(&[(0, &[7, 7])], &[7]));
        assert!(twice.contains("broker 7 more than once"), "{twice}");
        let empty = assignment_error(layout(&[(0, &[])], &[7]));
        assert!(empty.contains("empty replica list"), "{empty}");
        let repeated = assignment_error(layout(&[(0, &[7]), (0, &[7])], &[7]));
        assert!(repeated.contains("multiple manual partition assignments for partition 0"));
        for gap in [
            &[(0, &[7][..]), (2, &[7][..])][..],
            &[(1, &[7][..])],
            &[(-1, &[7][..])],
        ] {
            let message = assignment_error(layout(gap, &[7]));
            assert!(message.contains("consecutive 0-based"), "{message}");
        }
        let uneven = assignment_error(layout(&[(0, &[1]), (1, &[1, 2])], &[1, 2]));
        assert!(uneven.contains("with 2 replica(s)"), "{uneven}");
    }

    #[test]
    fn counts_must_be_minus_one_with_an_assignment() {
        let brokers = Brokers::of([7]);
        let given = assignment(&[(0, &[7])]);
        for (partitions, rf) in [(1, -1), (-1, 1), (3, 3)] {
            let result = new_topic_layout(partitions, rf, &given, 1, &brokers);
            assert!(
                matches!(result, Err(CreateError::InvalidRequest(_))),
                "{partitions} {rf}: {result:?}"
            );
        }
    }

    #[test]
    fn counts_without_an_assignment() {
        let brokers = Brokers::of([7]);
        let of = |partitions, rf| new_topic_layout(partitions, rf, &[], 4, &brokers);
        assert_eq!(
            of(-1, -1),
            Ok(Layout {
                partitions: 4,
                replication_factor: 1
            })
        );
        assert_eq!(of(6, 1).map(|l| l.partitions), Ok(6));
        assert!(
            matches!(of(1, 2), Err(CreateError::InvalidReplicationFactor(m)) if m.contains("only 1 broker(s)"))
        );
        for rf in [0, -2, i16::MIN] {
            assert!(matches!(
                of(1, rf),
                Err(CreateError::InvalidReplicationFactor(_))
            ));
        }
        for partitions in [0, -2, i32::MIN] {
            assert!(matches!(
                of(partitions, 1),
                Err(CreateError::InvalidPartitions(_))
            ));
        }
    }

    #[test]
    fn new_partitions_need_one_assignment_each() {
        let brokers = Brokers::of([7]);
        assert_eq!(
            check_new_partitions(&[vec![7], vec![7]], 2, 1, &brokers),
            Ok(())
        );
        let short = assignment_error(check_new_partitions(&[vec![7]], 2, 1, &brokers));
        assert!(
            short.contains("add 2 additional partition(s), but only 1"),
            "{short}"
        );
        let unknown = assignment_error(check_new_partitions(&[vec![8]], 1, 1, &brokers));
        assert!(unknown.contains("broker 8"), "{unknown}");
        let wider = assignment_error(check_new_partitions(
            &[vec![7, 8]],
            1,
            1,
            &Brokers::of([7, 8]),
        ));
        assert!(
            wider.contains("previous partitions, which have 1"),
            "{wider}"
        );
    }
}
