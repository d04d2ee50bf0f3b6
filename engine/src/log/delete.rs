//! The actions that remove segments from the front of a log: retention and DeleteRecords.
//!
//! Which segments go is [`retention`](super::retention)'s pure decision; this is carrying it
//! out. A segment leaves the log's map first (so no new read plans it; reads in flight keep
//! its file open), then its files go and the directory is synced, then the checkpoint records
//! the new log start offset. DeleteRecords syncs up to the new start before moving it, so a
//! restart never finds the start past the durable end.

use super::error::{ReadError, StorageError};
use super::partition::{Inner, Log};
use super::retention::{self, RetentionInput, SegmentSummary};
use super::segment;
use crate::flush;

impl Log {
    /// DeleteRecords: moves the log start offset to `before` (`-1`: the high watermark) and
    /// removes the segments wholly below it. Returns the new log start offset.
    pub async fn delete_records(&self, before: i64) -> Result<i64, ReadError> {
        if !self.config().cleanup_policy.delete {
            // As Kafka: a compacted topic's log is its state; only its policy removes records.
            return Err(ReadError::PolicyViolation(
                "records of a topic whose cleanup.policy lacks delete can't be deleted",
            ));
        }
        let start = {
            let st = self.inner.state.borrow_mut();
            let high_watermark = st.high_watermark();
            let before = if before == -1 { high_watermark } else { before };
            if before < 0 || before > high_watermark {
                return Err(st.out_of_range(before, high_watermark));
            }
            before
        };
        // The new start must never outrun durable data: after a crash, recovery could
        // otherwise find the start past the end.
        flush::sync_to(&self.inner, start).await?;
        let start = {
            let mut st = self.inner.state.borrow_mut();
            st.log_start_offset = st.log_start_offset.max(start);
            st.log_start_offset
        };
        self.inner.epochs_start_moved().await?;
        // Retention removes the segments now below the start, and records the new start in
        // the checkpoint when it deleted any; otherwise record it here.
        if self.enforce_retention().await? == 0 {
            self.inner.write_checkpoint().await?;
        }
        Ok(start.max(self.log_start_offset()))
    }

    /// Deletes the segments retention (`retention.ms`, `retention.bytes`, the log start
    /// offset) no longer keeps. Returns how many went. Time and size apply only when the
    /// `cleanup.policy` includes `delete`; segments below the log start offset always go.
    pub async fn enforce_retention(&self) -> Result<usize, StorageError> {
        let now = self.inner.clock.now_ms();
        let mut config = self.config();
        if !config.cleanup_policy.delete {
            (config.retention_ms, config.retention_bytes) = (None, None);
        }
        // Not while the cleaner swaps segments in (it checks its group is intact under the
        // same turn).
        let _turn = self.inner.surgery.acquire().await;
        let removed: Vec<i64> = {
            let mut st = self.inner.state.borrow_mut();
            let summaries: Vec<SegmentSummary> = st
                .segments
                .values()
                .map(|s| SegmentSummary {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    size: s.size,
                    max_timestamp: s.max_timestamp().map(|m| m.timestamp),
                })
                .collect();
            let input = RetentionInput {
                now_ms: now,
                retention_ms: config.retention_ms,
                retention_bytes: config.retention_bytes,
                log_start_offset: st.log_start_offset,
                high_watermark: st.high_watermark(),
            };
            let count = retention::segments_to_delete(&summaries, &input);
            let removed: Vec<i64> = summaries[..count].iter().map(|s| s.base_offset).collect();
            for base in &removed {
                st.segments.remove(base);
            }
            let first = *st.segments.keys().next().expect("the active segment stays");
            st.log_start_offset = st.log_start_offset.max(first);
            removed
        };
        if removed.is_empty() {
            return Ok(0);
        }
        // The segments left the map above; their files and the new start must follow even if
        // the caller stops waiting, so that part runs in its own task.
        let inner = self.inner.clone();
        let count = removed.len();
        let deletion = self.inner.spawn_background(async move {
            for &base in &removed {
                segment::remove_segment_files(&inner.dir, base)
                    .await
                    .map_err(|e| StorageError::io("deleting a segment", &e))?;
            }
            inner
                .dir_file
                .fsync()
                .await
                .map_err(|e| StorageError::io("syncing the partition directory", &e))?;
            inner.bump_stats(|s| s.segments_deleted += removed.len() as u64);
            inner.write_checkpoint().await
        });
        deletion.await?;
        self.inner.epochs_start_moved().await?;
        tracing::debug!(dir = %self.inner.dir.display(), segments = count, "retention deleted segments");
        Ok(count)
    }
}

impl Inner {
    /// The log start moved: the leader epoch cache forgets the epochs wholly below it (Kafka's
    /// `truncateFromStart`), persisted when that changed it.
    async fn epochs_start_moved(&self) -> Result<(), StorageError> {
        let changed = {
            let mut st = self.state.borrow_mut();
            let start = st.log_start_offset;
            st.epochs.truncate_from_start(start)
        };
        if changed {
            self.persist_epochs().await?;
        }
        Ok(())
    }
}
