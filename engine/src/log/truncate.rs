//! Truncating a follower's log back to where it agrees with its leader (Kafka's
//! `UnifiedLog.truncateTo` and `truncateFullyAndStartAt`). Rare (a leader change, a follower
//! that fell behind the leader's log start), so correctness comes before speed: the kept
//! segment is walked from its start, producer state is rebuilt from a snapshot and replay.
//!
//! Order, so that a crash at any point leaves a valid log (a prefix of the old one, or the
//! new one; the follower fetches again from its end):
//! 1. appends are refused, writes and background tasks in flight finish, no sync round runs;
//! 2. the in-memory state moves to the new end (reads plan nothing past it from then on);
//! 3. segments past the target lose their files, newest first (every step leaves a prefix),
//!    then the directory is synced;
//! 4. the segment holding the target is cut and synced: it is the last segment now, so
//!    recovery after a crash always rescans it (it ends past the recovery point, or holds it);
//! 5. producer state is rebuilt (snapshots past the end are dropped), the leader epoch cache
//!    and the checkpoints follow.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::error::StorageError;
use super::index::SegmentIndexes;
use super::partition::{Inner, Log};
use super::producers;
use super::read::find_batch;
use super::segment::{self, Segment};
use super::txn::Unreplicated;

/// Keeps appends refused while a truncation runs; lets them in again when dropped (also when
/// the truncation fails or its caller stops waiting).
struct Truncating(Rc<Inner>);

impl Drop for Truncating {
    fn drop(&mut self) {
        self.0.state.borrow_mut().truncating = false;
    }
}

impl Log {
    /// Removes every batch at or past `offset`, Kafka's `truncateTo`: nothing when `offset`
    /// is at or past the log end; [`truncate_fully_and_start_at`](Self::truncate_fully_and_start_at)
    /// when it is below the first segment. Otherwise segments starting past `offset` go and
    /// the one holding it is cut where the first batch with a last offset at or past it
    /// begins (that batch goes whole: `offset` is normally a batch boundary); the log then
    /// ends after the last batch kept. Indexes, aborted transaction entries, producer state
    /// (rebuilt as of the new end), the leader epoch cache, the high watermark, the
    /// replicated cap and the log start follow. Appends are refused
    /// ([`Closed`](super::AppendError::Closed)) while it runs.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError(format!("can't truncate to offset {offset}")));
        }
        let _surgery = self.inner.surgery.acquire().await;
        let _truncating = self.stop_appends().await?;
        let (first_base, end) = {
            let st = self.inner.state.borrow();
            (
                *st.segments.keys().next().expect("a segment"),
                st.next_offset,
            )
        };
        if offset >= end {
            return Ok(());
        }
        if offset < first_base {
            return self.restart_at(offset).await;
        }
        self.cut_at(offset).await
    }

    /// Empties the log and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`): what
    /// a follower does when its fetch offset falls outside its leader's log (below the
    /// leader's log start). Producer state, snapshots and the leader epoch cache are
    /// cleared; the log start, the end and the high watermark become `offset`.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError(format!(
                "can't restart the log at offset {offset}"
            )));
        }
        let _surgery = self.inner.surgery.acquire().await;
        let _truncating = self.stop_appends().await?;
        self.restart_at(offset).await
    }

    /// Refuses appends from now on and waits until none is in flight, nor a background
    /// task (a seal writing indexes of a segment about to be cut), nor a sync round.
    async fn stop_appends(&self) -> Result<Truncating, StorageError> {
        self.inner.state.borrow_mut().truncating = true;
        let guard = Truncating(self.inner.clone());
        let end = self.log_end_offset();
        self.inner.wait_written(end).await?;
        self.quiesce().await;
        self.inner.sync_idle().await;
        Ok(guard)
    }

    /// [`truncate_to`](Self::truncate_to) within the log's segments.
    async fn cut_at(&self, target: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        let interval = self.config().index_interval_bytes;
        let (kept_base, file, size) = {
            let st = inner.state.borrow();
            let (&base, kept) = st.segments.range(..=target).next_back().expect("checked");
            let file = kept
                .log
                .clone()
                .ok_or_else(|| StorageError(format!("segment {base} has no file")))?;
            (base, file, kept.size)
        };
        // The kept batches, walked from the segment's start: where the cut goes, where the
        // log then ends, and the segment's indexes rebuilt over what stays.
        let walk = RefCell::new((0u64, kept_base, SegmentIndexes::new(kept_base, interval)));
        let found = find_batch(&file, 0, size, |header| {
            if header.last_offset() >= target {
                return true;
            }
            let mut walk = walk.borrow_mut();
            let (position, _, indexes) = &mut *walk;
            let len = header.total_len().unwrap_or(0);
            indexes.add_batch(
                *position as u32,
                header.last_offset(),
                header.max_timestamp,
                len,
            );
            walk.0 += len as u64;
            walk.1 = header.last_offset() + 1;
            false
        })
        .await
        .map_err(|e| StorageError::io("reading the segment to truncate", &e))?;
        let (walked, new_end, indexes) = walk.into_inner();
        let cut = found.map_or(walked, |(position, _)| position);

        // The new state, in one step.
        let removed: Vec<i64> = {
            let mut st = inner.state.borrow_mut();
            let removed: Vec<i64> = st
                .segments
                .range(kept_base + 1..)
                .map(|(&b, _)| b)
                .collect();
            let mut removed_bytes = 0;
            for base in &removed {
                removed_bytes += st.segments.remove(base).map_or(0, |s| s.size);
            }
            let kept = st.segments.get_mut(&kept_base).expect("kept");
            removed_bytes += kept.size - cut;
            kept.size = cut;
            kept.written = cut;
            kept.preallocated_to = cut;
            kept.next_offset = new_end;
            kept.indexes = indexes;
            kept.aborted.retain(|a| a.last_offset < new_end);
            kept.indexes_dirty = true;
            if cut == 0 {
                kept.first_append_ms = None;
            }
            move_end_back(&mut st, new_end, removed_bytes);
            removed
        };
        inner.truncate_synced(new_end);
        inner.progress.notify_all();

        for &base in removed.iter().rev() {
            segment::remove_segment_files(&inner.dir, base)
                .await
                .map_err(|e| StorageError::io("removing a truncated segment", &e))?;
        }
        if !removed.is_empty() {
            inner
                .dir_file
                .fsync()
                .await
                .map_err(|e| StorageError::io("syncing the partition directory", &e))?;
        }
        file.set_len(cut)
            .map_err(|e| StorageError::io("truncating a segment", &e))?;
        file.fdatasync()
            .await
            .map_err(|e| StorageError::io("syncing a truncated segment", &e))?;
        inner.bump_stats(|s| s.segments_deleted += removed.len() as u64);

        self.rebuild_producers(new_end).await?;
        self.after_truncation(new_end).await
    }

    /// [`truncate_fully_and_start_at`](Self::truncate_fully_and_start_at) once appends are
    /// stopped.
    async fn restart_at(&self, offset: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        let interval = self.config().index_interval_bytes;
        let removed: Vec<i64> = {
            let mut st = inner.state.borrow_mut();
            let old = std::mem::replace(
                &mut st.segments,
                BTreeMap::from([(offset, Segment::pending(offset, interval))]),
            );
            let removed_bytes = old.values().map(|s| s.size).sum();
            move_end_back(&mut st, offset, removed_bytes);
            st.log_start_offset = offset;
            st.producers = Default::default();
            st.unreplicated = Unreplicated::default();
            st.epochs.clear();
            old.into_keys().collect()
        };
        inner.truncate_synced(offset);
        inner.progress.notify_all();
        // Snapshots first: one left beside an emptied log would be loaded as its state.
        producers::snapshot::remove_all(&inner.dir)
            .await
            .map_err(|e| StorageError::io("removing producer snapshots", &e))?;
        for &base in removed.iter().rev() {
            segment::remove_segment_files(&inner.dir, base)
                .await
                .map_err(|e| StorageError::io("removing a truncated segment", &e))?;
        }
        let created = Segment::create_files(&inner.dir, offset).await;
        match created {
            Ok(file) => {
                if let Some(segment) = inner.state.borrow_mut().segments.get_mut(&offset) {
                    segment.log = Some(Rc::new(file));
                }
                inner.segment_created.notify_all();
            }
            Err(e) => {
                let error = StorageError::io("creating a segment", &e);
                inner.fail(error.clone());
                inner.segment_created.notify_all();
                return Err(error);
            }
        }
        inner
            .dir_file
            .fsync()
            .await
            .map_err(|e| StorageError::io("syncing the partition directory", &e))?;
        inner.bump_stats(|s| s.segments_deleted += removed.len() as u64);
        self.after_truncation(offset).await
    }

    /// Rebuilds producer state as of `end` from the newest snapshot at or below it and the
    /// batches after it (as opening the log would), and the aborted transaction entries of
    /// the markers replayed.
    async fn rebuild_producers(&self, end: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        // Drops the snapshots past the end, and says where replay starts.
        let from = producers::snapshot::load(&inner.dir, end)
            .await
            .map_err(|e| StorageError::io("loading the producer snapshot", &e))?
            .map_or(i64::MIN, |(offset, _)| offset);
        // Replay works on its own view of the segments it reads (the log's stay readable
        // meanwhile); the entries it regenerates are copied back.
        let mut replayed: BTreeMap<i64, Segment> = {
            let st = inner.state.borrow();
            st.segments
                .values()
                .filter(|s| s.next_offset > from)
                .map(|s| {
                    let mut copy = Segment::pending(s.base_offset, 0);
                    copy.log = s.log.clone();
                    copy.size = s.size;
                    copy.written = s.written;
                    copy.next_offset = s.next_offset;
                    copy.indexes = s.indexes.clone();
                    copy.aborted = s.aborted.clone();
                    (s.base_offset, copy)
                })
                .collect()
        };
        let now = inner.clock.now_ms();
        let (states, _) = producers::rebuild(&inner.dir, &mut replayed, end, now, None).await?;
        let mut st = inner.state.borrow_mut();
        st.producers = states;
        for (base, copy) in replayed {
            if let Some(segment) = st.segments.get_mut(&base) {
                if segment.aborted != copy.aborted {
                    segment.aborted = copy.aborted;
                    segment.indexes_dirty = true;
                }
            }
        }
        Ok(())
    }

    /// The files that describe the log as a whole follow its new end: the leader epoch cache,
    /// the cleaner's first dirty offset, the checkpoint (its recovery point is now at most the
    /// last segment's base).
    async fn after_truncation(&self, end: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        inner.persist_epochs().await?;
        let cleaner = {
            let mut compaction = inner.compaction.borrow_mut();
            let checkpoint = &mut compaction.checkpoint;
            (checkpoint.first_dirty > end).then(|| {
                checkpoint.first_dirty = end;
                *checkpoint
            })
        };
        if let Some(checkpoint) = cleaner {
            checkpoint
                .write(&inner.dir)
                .await
                .map_err(|e| StorageError::io("writing the cleaner checkpoint", &e))?;
        }
        inner.write_checkpoint().await?;
        tracing::info!(dir = %inner.dir.display(), end, "log truncated");
        Ok(())
    }
}

/// Moves the log's end back to `end`, with everything measured against it: the high
/// watermark and its cap, transactions whose marker went, the leader epochs begun past it,
/// the log start, the byte counters (`removed` bytes went).
fn move_end_back(st: &mut super::partition::State, end: i64, removed: u64) {
    debug_assert!(st.pending.is_empty(), "truncating under writes in flight");
    st.next_offset = end;
    st.written_end = end;
    st.replicated_cap = st.replicated_cap.map(|cap| cap.min(end));
    st.log_start_offset = st.log_start_offset.min(end);
    st.unreplicated.truncate(end);
    st.epochs.truncate_from_end(end);
    st.appended_total -= removed.min(st.appended_total);
    st.written_total -= removed.min(st.written_total);
    st.synced_total = st.synced_total.min(st.written_total);
    st.all_sealed = false;
}
