//! Structural rules shared by the image (which refuses records that break them) and the
//! controller (which never proposes such records).

use super::records::{BrokerId, Reassigning, NO_LEADER};

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// No id appears twice (sorting a copy: lists come from the log and may be long).
pub fn distinct(ids: &[BrokerId]) -> bool {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).all(|w| w[0] != w[1])
}

/// A partition's replicas are distinct broker ids; its ISR is a non-empty subset of them (Kafka
/// never empties an ISR: the last member stays); its leader is in the ISR or [`NO_LEADER`].
pub fn check_partition(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    leader: BrokerId,
) -> Result<(), &'static str> {
    if replicas.is_empty() || replicas.iter().any(|&r| r < 0) || !distinct(replicas) {
        return Err("replicas must be distinct broker ids");
    }
    if isr.is_empty() || !distinct(isr) {
        return Err("the ISR must be non-empty and distinct");
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    if isr.iter().any(|id| sorted.binary_search(id).is_err()) {
        return Err("the ISR must be a subset of the replicas");
    }
    if leader != NO_LEADER && !isr.contains(&leader) {
        return Err("the leader must be in the ISR");
    }
    Ok(())
}

/// A reassignment's replica sets are distinct ids within the partition's replicas, and no
/// replica is both added and removed.
pub fn check_reassigning(
    replicas: &[BrokerId],
    reassigning: &Reassigning,
) -> Result<(), &'static str> {
    let (adding, removing) = (&reassigning.adding, &reassigning.removing);
    if !distinct(adding) || !distinct(removing) {
        return Err("a reassignment's replica sets must be distinct");
    }
    if adding
        .iter()
        .chain(removing)
        .any(|id| !replicas.contains(id))
    {
        return Err("a reassignment's replicas must be the partition's");
    }
    if adding.iter().any(|id| removing.contains(id)) {
        return Err("a reassignment cannot add and remove the same replica");
    }
    // Something must stay: a reassignment removing every replica would leave none.
    if removing.len() >= replicas.len() && !removing.is_empty() {
        return Err("a reassignment cannot remove every replica");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(valid_topic_name("orders.v2_eu-1"));
        assert!(valid_topic_name(&"a".repeat(249)));
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"a".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn partition_invariants() {
        assert_eq!(check_partition(&[1, 2, 3], &[2, 3], 2), Ok(()));
        assert_eq!(check_partition(&[1], &[1], NO_LEADER), Ok(()));
        assert!(check_partition(&[], &[1], 1).is_err());
        assert!(check_partition(&[1, 1], &[1], 1).is_err());
        assert!(check_partition(&[1, -2], &[1], 1).is_err());
        assert!(check_partition(&[1, 2], &[], NO_LEADER).is_err());
        assert!(check_partition(&[1, 2], &[2, 2], 2).is_err());
        assert!(check_partition(&[1, 2], &[3], 3).is_err());
        assert!(check_partition(&[1, 2], &[1], 2).is_err());
    }

    #[test]
    fn reassignment_invariants() {
        let r = |adding: &[i32], removing: &[i32]| Reassigning {
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        };
        assert_eq!(check_reassigning(&[1, 2, 3], &r(&[], &[])), Ok(()));
        assert_eq!(check_reassigning(&[3, 1, 2], &r(&[3], &[2])), Ok(()));
        assert!(check_reassigning(&[1, 2], &r(&[3], &[])).is_err());
        assert!(check_reassigning(&[1, 2], &r(&[1, 1], &[])).is_err());
        assert!(check_reassigning(&[1, 2], &r(&[1], &[1])).is_err());
        assert!(check_reassigning(&[1, 2], &r(&[], &[1, 2])).is_err());
    }
}
