//! What a log does for transactions (KIP-98), beside the pure rules in [`super::txn`] and
//! [`super::producers`]: writing markers, the last stable offset, and the aborted
//! transactions a read_committed fetch reports.

use std::future::Future;

use bytes::Bytes;

use super::error::AppendError;
use super::partition::{AppendInfo, Log, Placement};
use super::txn::{self, AbortedTxn, EndTxnMarker};

impl Log {
    /// Appends transactional batches the broker's group coordinator writes for a producer
    /// (TxnOffsetCommit): they open the producer's transaction here as its own batches do,
    /// under the epoch rule but not the sequence rules (Kafka's coordinator origin).
    pub fn append_for_coordinator(
        &self,
        records: impl Into<Bytes>,
    ) -> impl Future<Output = Result<AppendInfo, AppendError>> + 'static {
        let placed = self.place(records.into(), Placement::Coordinator);
        self.finish_append(placed)
    }

    /// Writes a transaction marker (WriteTxnMarkers) for `producer_id` at `epoch`: one control
    /// batch in Kafka's format ([`txn::marker`]), stamped with the broker's clock. It ends
    /// the producer's open transaction here, if one is open; an ABORT is recorded in the
    /// aborted transaction index of the segment the marker lands in. Refused, with nothing
    /// written, as [`ProducerStates::check_marker`](super::producers::ProducerStates::check_marker)
    /// says (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED). Placed when called and
    /// made durable as [`append`](Self::append) is.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
    ) -> impl Future<Output = Result<AppendInfo, AppendError>> + 'static {
        let now = self.inner.clock.now_ms();
        let batch = txn::marker::marker_batch(producer_id, epoch, marker, now);
        let placement = Placement::Marker {
            producer_id,
            epoch,
            marker,
        };
        let placed = self.place(Bytes::from(batch), placement);
        self.finish_append(placed)
    }

    /// The last stable offset (LSO): below it every transaction is decided and its marker
    /// readable. At most the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.inner.state.borrow().last_stable_offset()
    }

    /// The first offset of the earliest undecided transaction (or one whose marker is not yet
    /// readable), if any: what holds the LSO back.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.inner.state.borrow().first_unstable_offset()
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` must report, as
    /// Kafka's `collectAbortedTransactions`: those whose marker is at or after `from` and
    /// that started before `upper` (the end of the data returned), from the transaction
    /// indexes of the segments that can hold them. In marker order.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let st = self.inner.state.borrow();
        let mut found = Vec::new();
        // An abort's entry sits in its marker's segment, which starts at or after the one
        // holding `from`.
        let start = st
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(&base, _)| base);
        for segment in st.segments.range(start..).map(|(_, s)| s) {
            if txn::index::collect(&segment.aborted, from, upper, &mut found) {
                break;
            }
        }
        found
    }
}
