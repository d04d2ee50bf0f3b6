//! Offsets committed inside transactions (TxnOffsetCommit), held per group until the
//! transaction's marker decides them: a COMMIT makes them the group's offsets, an ABORT drops
//! them. Pure; the coordinator feeds it from requests, from loading `__consumer_offsets` and
//! from the markers written to its partitions.
//!
//! Kafka's rules (its `GroupMetadata.completePendingTxnOffsetCommit`):
//! - a producer's later TxnOffsetCommit for the same partition replaces its earlier one;
//! - on COMMIT a pending offset replaces the group's offset only if it was written to the log
//!   after it: a plain OffsetCommit that reached the log later wins, whichever finished first;
//! - while any producer holds a pending offset for a partition, an OffsetFetch that asks for
//!   stable offsets (KIP-447's `require_stable`) gets UNSTABLE_OFFSET_COMMIT for it, so a
//!   consumer taking over doesn't start from an offset that is about to change.

use std::collections::HashMap;

use super::records::OffsetValue;

/// A group's offset for one partition, with where its record sits in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOffset {
    pub value: OffsetValue,
    /// The log offset of the record that committed it: later records win.
    pub log_offset: i64,
}

/// A partition of a group's offsets (a consumed topic's partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetPartition {
    pub topic: String,
    pub partition: i32,
}

/// The pending transactional offsets of one group, by producer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingTxnOffsets {
    by_producer: HashMap<i64, HashMap<OffsetPartition, PlacedOffset>>,
}

impl PendingTxnOffsets {
    pub fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }

    /// A TxnOffsetCommit of `producer_id`, written to the log at `offset.log_offset`.
    pub fn stage(&mut self, producer_id: i64, partition: OffsetPartition, offset: PlacedOffset) {
        self.by_producer
            .entry(producer_id)
            .or_default()
            .insert(partition, offset);
    }

    /// Whether `producer_id` has an open transaction with offsets in this group.
    pub fn has_producer(&self, producer_id: i64) -> bool {
        self.by_producer.contains_key(&producer_id)
    }

    /// Whether some transaction holds an undecided offset for `partition`.
    pub fn is_unstable(&self, partition: &OffsetPartition) -> bool {
        self.by_producer.values().any(|p| p.contains_key(partition))
    }

    /// The marker of `producer_id`'s transaction was written: its offsets, to apply with
    /// [`apply_committed`] on a commit, to drop on an abort. Empty if it had none here.
    pub fn complete(&mut self, producer_id: i64) -> HashMap<OffsetPartition, PlacedOffset> {
        self.by_producer.remove(&producer_id).unwrap_or_default()
    }

    /// Forgets every pending offset of `topic` (the topic was deleted).
    pub fn forget_topic(&mut self, topic: &str) {
        self.retain(|p| p.topic != topic);
    }

    /// Forgets the pending offsets of `partition` (OffsetDelete removed its offset: a later
    /// commit must not bring it back, as in Kafka's `removeOffsets`).
    pub fn forget_partition(&mut self, partition: &OffsetPartition) {
        self.retain(|p| p != partition);
    }

    fn retain(&mut self, keep: impl Fn(&OffsetPartition) -> bool) {
        for offsets in self.by_producer.values_mut() {
            offsets.retain(|p, _| keep(p));
        }
        self.by_producer.retain(|_, offsets| !offsets.is_empty());
    }
}

/// Sets `partition`'s offset to `placed` unless a record later in the log already set it.
/// Returns whether it did.
pub fn apply_if_newer(
    offsets: &mut HashMap<OffsetPartition, PlacedOffset>,
    partition: OffsetPartition,
    placed: PlacedOffset,
) -> bool {
    let newer = offsets
        .get(&partition)
        .is_none_or(|current| current.log_offset < placed.log_offset);
    if newer {
        offsets.insert(partition, placed);
    }
    newer
}

/// Applies a committed transaction's offsets to `offsets`, each only where it is newer in the
/// log than the offset there (a plain commit written after the transactional one wins).
/// Returns how many were applied.
pub fn apply_committed(
    offsets: &mut HashMap<OffsetPartition, PlacedOffset>,
    committed: HashMap<OffsetPartition, PlacedOffset>,
) -> usize {
    let mut applied = 0;
    for (partition, placed) in committed {
        applied += usize::from(apply_if_newer(offsets, partition, placed));
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64, log_offset: i64) -> PlacedOffset {
        PlacedOffset {
            value: OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            },
            log_offset,
        }
    }

    fn tp(topic: &str, partition: i32) -> OffsetPartition {
        OffsetPartition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn a_commit_applies_the_producers_latest_offsets_and_an_abort_drops_them() {
        let mut pending = PendingTxnOffsets::default();
        pending.stage(7, tp("in", 0), at(10, 100));
        pending.stage(7, tp("in", 0), at(12, 104));
        pending.stage(7, tp("in", 1), at(3, 104));
        pending.stage(8, tp("in", 2), at(9, 105));
        assert!(pending.is_unstable(&tp("in", 0)));
        assert!(!pending.is_unstable(&tp("in", 3)));

        let mut offsets = HashMap::new();
        let committed = pending.complete(7);
        assert_eq!(apply_committed(&mut offsets, committed), 2);
        assert_eq!(offsets[&tp("in", 0)], at(12, 104));
        assert_eq!(offsets[&tp("in", 1)], at(3, 104));
        assert!(!pending.is_unstable(&tp("in", 0)));
        assert!(pending.has_producer(8));

        // Producer 8 aborts: nothing of it reaches the offsets.
        assert_eq!(pending.complete(8).len(), 1);
        assert!(pending.is_empty());
        assert!(!offsets.contains_key(&tp("in", 2)));
        // A marker for a producer with nothing here changes nothing.
        assert!(pending.complete(99).is_empty());
    }

    #[test]
    fn a_plain_commit_written_after_the_transactional_one_wins() {
        let mut offsets = HashMap::from([(tp("in", 0), at(50, 200))]);
        let mut pending = PendingTxnOffsets::default();
        pending.stage(7, tp("in", 0), at(40, 150));
        pending.stage(7, tp("in", 1), at(41, 150));
        assert_eq!(apply_committed(&mut offsets, pending.complete(7)), 1);
        assert_eq!(offsets[&tp("in", 0)], at(50, 200));
        assert_eq!(offsets[&tp("in", 1)], at(41, 150));
        // Written before the transactional one: the transaction's offset replaces it.
        let mut offsets = HashMap::from([(tp("in", 0), at(5, 100))]);
        pending.stage(7, tp("in", 0), at(40, 150));
        apply_committed(&mut offsets, pending.complete(7));
        assert_eq!(offsets[&tp("in", 0)], at(40, 150));
    }

    #[test]
    fn a_deleted_offset_is_not_brought_back_by_its_transaction() {
        let mut pending = PendingTxnOffsets::default();
        pending.stage(7, tp("in", 0), at(1, 10));
        pending.stage(7, tp("in", 1), at(1, 10));
        pending.stage(8, tp("in", 0), at(2, 11));
        pending.forget_partition(&tp("in", 0));
        assert!(!pending.is_unstable(&tp("in", 0)));
        assert!(
            !pending.has_producer(8),
            "a producer with nothing left is forgotten"
        );
        assert_eq!(pending.complete(7).len(), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_deleted_topic_leaves_no_pending_offsets() {
        let mut pending = PendingTxnOffsets::default();
        pending.stage(7, tp("gone", 0), at(1, 10));
        pending.stage(7, tp("kept", 0), at(1, 10));
        pending.forget_topic("gone");
        assert!(!pending.is_unstable(&tp("gone", 0)));
        assert!(pending.is_unstable(&tp("kept", 0)));
    }
}
