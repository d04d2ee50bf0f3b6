//! What Kafka replication (leaders, followers, ISR, KIP-101/279) asks of a partition's log.
//! The fetchers and ISR tracking live in the broker; the log offers the storage side:
//! - the replicated high watermark cap: consumers read below min(written end, cap), while the
//!   written end is this replica's log end as followers and ISR tracking see it;
//! - leader epoch stamping: the epoch a leader writes into every batch it appends;
//! - the leader epoch cache ([`super::leader_epochs`]) and its queries;
//! - a follower's appends: the leader's batches written verbatim, offsets included.
//!
//! Truncating a follower's log is truncate.rs's job.

use std::future::Future;

use bytes::Bytes;

use super::batch;
use super::config::MAX_SEGMENT_BYTES;
use super::error::{ReplicaAppendError, StorageError};
use super::leader_epochs::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use super::partition::{AppendInfo, Log, Placement};
use crate::flush::FlushPolicy;

impl Log {
    /// Caps the high watermark at `hw`, the offset below which every in-sync replica has the
    /// data (a leader's, from its followers' fetches; a follower's, from its leader's).
    /// `None` lifts the cap: a lone replica, the default, where the written end is the high
    /// watermark. The effective high watermark is never past the written end, nor below the
    /// log start. The cap may move either way; every move wakes long-polling fetches
    /// ([`changed`](Self::changed)).
    ///
    /// Transactions whose marker the high watermark passes become stable; one whose marker
    /// it passed before a backward move stays so (the LSO is still never past the high
    /// watermark).
    pub fn set_replicated_high_watermark(&self, hw: Option<i64>) {
        {
            let mut st = self.inner.state.borrow_mut();
            st.replicated_cap = hw;
            let high_watermark = st.high_watermark();
            st.unreplicated.advance(high_watermark);
        }
        self.inner.progress.notify_all();
    }

    /// The replicated cap, as last set.
    pub fn replicated_high_watermark(&self) -> Option<i64> {
        self.inner.state.borrow().replicated_cap
    }

    /// Offsets below this are written here and readable by followers
    /// ([`read_replica`](Self::read_replica)), whatever the replicated cap: this replica's
    /// log end offset as its leader's ISR tracking sees it. At most
    /// [`log_end_offset`](Self::log_end_offset), which counts appends still being written.
    pub fn written_end(&self) -> i64 {
        self.inner.state.borrow().written_end
    }

    /// Sets the partition leader epoch this log stamps into every batch it writes as leader
    /// ([`append`](Self::append), coordinator writes, markers), from the next append on.
    /// Until it is called batches are written with the epoch they came with, as a lone
    /// broker always did. Stamped epochs above the cache's latest are also recorded in the
    /// leader epoch cache, as Kafka's leader appends do.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.inner.state.borrow_mut().leader_epoch = Some(epoch);
    }

    /// Makes this replica a follower of the partition's leader (`true`) or its leader
    /// (`false`, the default: a lone broker's logs lead). A follower refuses every append
    /// but [`append_replica`](Self::append_replica) with
    /// [`NotLeader`](super::AppendError::NotLeader), nothing written, so a client, the group
    /// or transaction coordinator, or a marker writer still holding the log after losing
    /// leadership can't fork it from the leader's. Appends placed before the call complete.
    pub fn set_follower(&self, follower: bool) {
        self.inner.state.borrow_mut().follower = follower;
    }

    /// Whether this replica follows, as last set with [`set_follower`](Self::set_follower).
    pub fn is_follower(&self) -> bool {
        self.inner.state.borrow().follower
    }

    /// The epoch set with [`set_leader_epoch`](Self::set_leader_epoch), if one was.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.inner.state.borrow().leader_epoch
    }

    /// Records in the leader epoch cache that `epoch` began at `start_offset` (Kafka's
    /// `LeaderEpochFileCache.assign`, see
    /// [`LeaderEpochCache::assign`](super::leader_epochs::LeaderEpochCache::assign)) and
    /// persists the cache when that changed it. The broker calls it when this replica becomes
    /// leader, with the current log end.
    pub async fn assign_leader_epoch(
        &self,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), StorageError> {
        let changed = self
            .inner
            .state
            .borrow_mut()
            .epochs
            .assign(epoch, start_offset);
        if changed {
            self.inner.persist_epochs().await?;
        }
        Ok(())
    }

    /// The end of `epoch` in this log (OffsetsForLeaderEpoch, KIP-279): `(epoch, end offset)`
    /// as [`LeaderEpochCache::end_offset_for`](super::leader_epochs::LeaderEpochCache::end_offset_for)
    /// says, the latest epoch ending at the log end offset;
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` = `(-1, -1)` when it can't be placed.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.inner.state.borrow();
        st.epochs
            .end_offset_for(epoch, st.next_offset)
            .unwrap_or((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET))
    }

    /// The latest epoch in the leader epoch cache.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.inner.state.borrow().epochs.latest().map(|e| e.epoch)
    }

    /// The leader epoch cache's entries, `(epoch, start offset)`, oldest first.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        let st = self.inner.state.borrow();
        st.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// A follower's append: its leader's batches, as fetched, written verbatim (Kafka's
    /// `appendAsFollower`): offsets, timestamps, compression and leader epochs kept; no
    /// producer checks, compaction key checks or max.message.bytes (the leader accepted
    /// them). Each batch is checked as recovery checks stored batches (framing, CRC).
    ///
    /// The first batch must start at or past the log end (a gap is fine: a compacted leader
    /// leaves them) and each next one past the previous: otherwise
    /// [`OutOfOrder`](ReplicaAppendError::OutOfOrder), and nothing is written (a follower
    /// truncates first, [`truncate_to`](Self::truncate_to)).
    ///
    /// Producer state records every batch as replay does at open (idempotent producers'
    /// sequences, open transactions; markers end them and aborts are indexed), and the
    /// leader epoch cache learns each newer epoch the batches carry. Segments roll by the
    /// same rules as appends, a new segment starting at its first batch's offset. Placed when
    /// called and made readable and durable as [`append`](Self::append) is.
    pub fn append_replica(
        &self,
        records: impl Into<Bytes>,
    ) -> impl Future<Output = Result<AppendInfo, ReplicaAppendError>> + 'static {
        let finish = self
            .place_replica(records.into())
            .map(|placed| self.finish_append(Ok(placed)));
        async move { finish?.await.map_err(ReplicaAppendError::Append) }
    }

    /// The synchronous part of [`append_replica`](Self::append_replica): checks the batches
    /// and their order against the log end, then places them, in one step.
    fn place_replica(
        &self,
        records: Bytes,
    ) -> Result<(AppendInfo, FlushPolicy), ReplicaAppendError> {
        // Any batch a segment can hold: the leader already held it to its limits.
        let batches = batch::split_and_validate_stored(&records, MAX_SEGMENT_BYTES as usize)?;
        let mut expected = self.inner.state.borrow().next_offset;
        for (_, header) in &batches {
            let got = header.base_offset;
            if got < expected || header.last_offset() < got {
                return Err(ReplicaAppendError::OutOfOrder { expected, got });
            }
            expected = header.last_offset() + 1;
        }
        Ok(self.place_batches(records, batches, Placement::Replica)?)
    }
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
