//! What a cleaning pass does with transactions (pure): Kafka's `CleanedTransactionMetadata`.
//!
//! Walking batches in offset order over a range, with the aborted transactions that overlap
//! it (from the transaction indexes):
//! - a transactional batch of an aborted transaction is discarded: its records never count,
//!   neither in the offset map (an aborted record must not supersede a committed one) nor in
//!   the output;
//! - an ABORT marker is kept while this pass saw data of its transaction (a consumer still
//!   needs the marker to drop that data, which goes in this same pass but may survive in a
//!   segment that isn't rewritten); then its index entry is carried into the cleaned
//!   segment's `.txnindex`. Otherwise it may go;
//! - a COMMIT marker may go when the pass saw no data of its transaction.
//!
//! A marker that may go is removed only once past its delete horizon (set the first time a
//! pass finds it removable, as tombstones' are: filter.rs), so a consumer that read the data
//! before it still sees the marker (Kafka's rule, KIP-534).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::log::batch::BatchHeader;
use crate::log::txn::{AbortedTxnEntry, MarkerKind};

#[derive(Debug)]
pub(crate) struct CleanedTxns {
    /// Aborted transactions not yet reached, by first offset.
    upcoming: VecDeque<AbortedTxnEntry>,
    /// Aborted transactions reached and not yet ended, by producer: whether data of it was
    /// seen in this pass.
    aborted: HashMap<i64, (AbortedTxnEntry, bool)>,
    /// Producers whose transactional data (not aborted) was seen in this pass, until their
    /// marker.
    committed: HashSet<i64>,
    /// Entries of the ABORT markers kept, for the cleaned segment's index.
    pub kept_entries: Vec<AbortedTxnEntry>,
}

impl CleanedTxns {
    /// Over a range overlapped by the aborted transactions `aborted`.
    pub fn new(mut aborted: Vec<AbortedTxnEntry>) -> Self {
        aborted.sort_by_key(|a| a.first_offset);
        CleanedTxns {
            upcoming: aborted.into(),
            aborted: HashMap::new(),
            committed: HashSet::new(),
            kept_entries: Vec::new(),
        }
    }

    fn reach(&mut self, offset: i64) {
        while let Some(next) = self.upcoming.front().filter(|a| a.first_offset <= offset) {
            let entry = *next;
            self.upcoming.pop_front();
            self.aborted.insert(entry.producer_id, (entry, false));
        }
    }

    /// A data batch: true when it belongs to an aborted transaction (discard its records).
    pub fn on_batch(&mut self, header: &BatchHeader) -> bool {
        self.reach(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        match self.aborted.get_mut(&header.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(header.producer_id);
                false
            }
        }
    }

    /// A control batch (`kind`: the marker it is, `None` for other control types): true when
    /// it may be removed (once past its delete horizon).
    pub fn on_control(&mut self, header: &BatchHeader, kind: Option<MarkerKind>) -> bool {
        self.reach(header.last_offset());
        let producer_id = header.producer_id;
        match kind {
            Some(MarkerKind::Abort) => match self.aborted.remove(&producer_id) {
                Some((entry, true)) => {
                    self.kept_entries.push(entry);
                    false
                }
                _ => true,
            },
            Some(MarkerKind::Commit) => !self.committed.remove(&producer_id),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, offset: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }
    const TXN: i16 = 0x10;
    const MARKER: i16 = 0x30;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn aborted_data_goes_and_its_marker_stays_while_data_was_seen() {
        // P1 aborts [0, 3], P2 commits [1, 4], P3 writes outside transactions.
        let mut txns = CleanedTxns::new(vec![entry(1, 0, 3)]);
        assert!(txns.on_batch(&header(1, 0, TXN)));
        assert!(!txns.on_batch(&header(2, 1, TXN)));
        assert!(!txns.on_batch(&header(3, 2, 0)));
        assert!(!txns.on_control(&header(1, 3, MARKER), Some(MarkerKind::Abort)));
        assert_eq!(txns.kept_entries, vec![entry(1, 0, 3)]);
        assert!(!txns.on_control(&header(2, 4, MARKER), Some(MarkerKind::Commit)));
        // P1 writes again after its abort: not aborted any more.
        assert!(!txns.on_batch(&header(1, 5, TXN)));
    }

    #[test]
    fn markers_of_transactions_with_no_data_left_may_go() {
        let mut txns = CleanedTxns::new(vec![entry(1, 0, 3)]);
        // The aborted data was removed by an earlier pass: only the marker is left.
        assert!(txns.on_control(&header(1, 3, MARKER), Some(MarkerKind::Abort)));
        assert!(txns.kept_entries.is_empty());
        assert!(txns.on_control(&header(2, 4, MARKER), Some(MarkerKind::Commit)));
        assert!(
            !txns.on_control(&header(2, 5, MARKER), None),
            "not a marker: kept"
        );
    }
}
