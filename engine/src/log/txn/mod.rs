//! The partition side of Kafka transactions (KIP-98), beside the producer state that tracks
//! each producer's open transaction ([`crate::log::producers`]):
//! - [`marker`]: the control batches that end a transaction (COMMIT, ABORT), Kafka's format;
//! - [`index`]: the per-segment aborted transaction index (`.txnindex`), Kafka's format;
//! - here: the last stable offset (LSO), pure: what read_committed consumers may see.
//!
//! The LSO is Kafka's `UnifiedLog.lastStableOffset`: the smallest of the high watermark, the
//! first offset of any open transaction, and the first offset of any transaction whose marker
//! is placed but not yet below the high watermark (Kafka's "unreplicated" transactions: until
//! the marker is readable, a reader can't learn the transaction's fate, so its records must
//! not count as stable).

pub mod index;
pub mod marker;

use std::collections::VecDeque;

pub use index::{AbortedTxn, AbortedTxnEntry};
pub use marker::{EndTxnMarker, MarkerKind};

/// A transaction a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// Which records a read may return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Everything below the high watermark (Kafka's READ_UNCOMMITTED).
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset (READ_COMMITTED): aborted records still come back,
    /// with [`Log::aborted_transactions`](crate::log::Log::aborted_transactions) telling the
    /// consumer which to drop.
    ReadCommitted,
}

/// Transactions completed by a marker that is not yet below the high watermark, in marker
/// order (so their markers' offsets ascend).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unreplicated(VecDeque<CompletedTxn>);

impl Unreplicated {
    pub fn push(&mut self, txn: CompletedTxn) {
        self.0.push_back(txn);
    }

    /// Forgets the transactions whose marker is now below `high_watermark`.
    pub fn advance(&mut self, high_watermark: i64) {
        while self
            .0
            .front()
            .is_some_and(|t| t.last_offset < high_watermark)
        {
            self.0.pop_front();
        }
    }

    /// Forgets the transactions whose marker a truncation to `end` removed.
    pub fn truncate(&mut self, end: i64) {
        self.0.retain(|t| t.last_offset < end);
    }

    /// The first offset of the earliest still-unstable one, as of `high_watermark`.
    pub fn first_offset(&self, high_watermark: i64) -> Option<i64> {
        self.0
            .iter()
            .filter(|t| t.last_offset >= high_watermark)
            .map(|t| t.first_offset)
            .min()
    }
}

/// The first offset that is not stable: the earliest open transaction's first offset, or the
/// earliest of those whose marker is above the high watermark.
pub fn first_unstable_offset(
    first_open: Option<i64>,
    first_unreplicated: Option<i64>,
) -> Option<i64> {
    first_open.into_iter().chain(first_unreplicated).min()
}

/// The last stable offset: never past the high watermark.
pub fn last_stable_offset(first_unstable: Option<i64>, high_watermark: i64) -> i64 {
    first_unstable.map_or(high_watermark, |f| f.min(high_watermark))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(first: i64, marker: i64) -> CompletedTxn {
        CompletedTxn {
            producer_id: first,
            first_offset: first,
            last_offset: marker,
            aborted: false,
        }
    }

    #[test]
    fn the_lso_is_the_first_unstable_offset_capped_by_the_high_watermark() {
        assert_eq!(last_stable_offset(None, 10), 10);
        assert_eq!(last_stable_offset(Some(4), 10), 4);
        assert_eq!(last_stable_offset(Some(12), 10), 10);
        assert_eq!(first_unstable_offset(Some(7), Some(3)), Some(3));
        assert_eq!(first_unstable_offset(None, Some(3)), Some(3));
        assert_eq!(first_unstable_offset(Some(7), None), Some(7));
        assert_eq!(first_unstable_offset(None, None), None);
    }

    #[test]
    fn a_completed_transaction_stays_unstable_until_its_marker_is_below_the_high_watermark() {
        let mut unreplicated = Unreplicated::default();
        unreplicated.push(txn(5, 9));
        unreplicated.push(txn(2, 12));
        // Marker 9 not yet readable: the earliest first offset still counts.
        assert_eq!(unreplicated.first_offset(9), Some(2));
        assert_eq!(unreplicated.first_offset(10), Some(2));
        unreplicated.advance(10);
        assert_eq!(unreplicated.first_offset(10), Some(2));
        assert_eq!(unreplicated.first_offset(13), None);
        unreplicated.advance(13);
        assert_eq!(unreplicated, Unreplicated::default());
    }
}
