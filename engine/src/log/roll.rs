//! Segment rolls: when the active segment is full or old, the next append starts a new one,
//! and the old one is sealed (synced, indexes written, checkpoint moved past it).
//!
//! The roll decision and the new segment's offsets are made synchronously in the append that
//! triggers it, since appends take their offsets in call order. Creating the files can't be
//! (it is file-system metadata work, which must not stall the shard), so the new segment
//! starts [pending](Segment::pending) and its files are created in the background; writes to
//! it wait for them ([`segment_file`]). A failure to create them fails the log, as a failed
//! write would: offsets were already handed out for data that can't be stored.

use std::rc::Rc;

use super::config::LogConfig;
use super::error::StorageError;
use super::partition::{Inner, State};
use super::producers;
use super::segment::{self, Segment};
use crate::flush;
use crate::rt::File;

/// Rolls to a new segment when the incoming `len` bytes, spanning offsets `first_offset` to
/// `end_offset` (exclusive), wouldn't fit the active one, or it is older than `segment.ms`
/// (or, compacted, `max.compaction.lag.ms`). The new segment starts at `first_offset`: the
/// log end for a leader's append, the first batch's own base offset for a follower's (past a
/// gap a compacted leader left). Returns the base offset of the segment to seal.
pub(super) fn roll_if_needed(
    inner: &Rc<Inner>,
    st: &mut State,
    config: &LogConfig,
    len: u64,
    first_offset: i64,
    end_offset: i64,
    now: i64,
) -> Option<i64> {
    let active = st.active();
    if active.size == 0 {
        return None;
    }
    let too_big = active.size + len > config.effective_segment_bytes();
    let too_old = active
        .first_append_ms
        .is_some_and(|first| now.saturating_sub(first) >= config.max_segment_ms());
    let offsets_overflow = end_offset - active.base_offset > i64::from(i32::MAX);
    let index_full = active.indexes.offsets.len() >= config.max_index_entries();
    if !(too_big || too_old || offsets_overflow || index_full) {
        return None;
    }
    let old = active.base_offset;
    let segment = Segment::pending(first_offset, config.index_interval_bytes);
    st.segments.insert(first_offset, segment);
    inner.spawn_background(create_files(inner.clone(), first_offset));
    inner.bump_stats(|s| s.segments_rolled += 1);
    Some(old)
}

/// Creates a rolled segment's files and hands the log file to the segment.
async fn create_files(inner: Rc<Inner>, base: i64) {
    match Segment::create_files(&inner.dir, base).await {
        Ok(file) => {
            let mut st = inner.state.borrow_mut();
            if let Some(segment) = st.segments.get_mut(&base) {
                segment.log = Some(Rc::new(file));
            }
            // The next sync round makes the new entries durable before anything written
            // into them is declared durable.
            st.dir_dirty = true;
        }
        Err(e) => {
            tracing::error!(dir = %inner.dir.display(), base, error = %e, "creating a segment failed; the log refuses appends until reopened");
            inner.fail(StorageError::io("creating a segment", &e));
        }
    }
    inner.segment_created.notify_all();
}

/// The log file of segment `base`: `known` when the caller already had it, otherwise once the
/// roll that made the segment has created it. Fails when the log failed first.
pub(super) async fn segment_file(
    inner: &Inner,
    base: i64,
    known: Option<Rc<File>>,
) -> Result<Rc<File>, StorageError> {
    if let Some(file) = known {
        return Ok(file);
    }
    loop {
        // Taken before looking, so a creation in between is not missed.
        let created = inner.segment_created.wait();
        {
            let st = inner.state.borrow();
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            match st.segments.get(&base) {
                Some(segment) => {
                    if let Some(file) = &segment.log {
                        return Ok(file.clone());
                    }
                }
                None => return Err(StorageError(format!("segment {base} was removed"))),
            }
        }
        created.await;
    }
}

/// After a roll: syncs the old segment, writes its indexes and the producer state as of its
/// end (`producers`, encoded), releases its unused preallocated space and moves the
/// checkpoint past it.
pub(super) async fn seal(inner: Rc<Inner>, base: i64, producers: Vec<u8>) {
    let end = match inner.state.borrow().segments.get(&base) {
        Some(segment) => segment.next_offset,
        None => return,
    };
    if flush::sync_to(&inner, end).await.is_err() {
        return;
    }
    let Some((snapshot, file, size, preallocated_to)) = ({
        let mut st = inner.state.borrow_mut();
        st.segments
            .get_mut(&base)
            .map(|s| (s.index_snapshot(), s.log.clone(), s.size, s.preallocated_to))
    }) else {
        return;
    };
    // Synced, so written, so its file exists.
    if let Some(file) = file {
        segment::release_preallocation(&file, size, preallocated_to).await;
    }
    if let Err(e) = snapshot.write(&inner.dir).await {
        tracing::warn!(dir = %inner.dir.display(), base, error = %e, "writing a sealed segment's indexes failed; recovery will rebuild them");
        return;
    }
    // Synced to `end` above, so the snapshot never describes data a crash could lose.
    if let Err(e) = producers::snapshot::write(&inner.dir, end, producers).await {
        tracing::warn!(dir = %inner.dir.display(), end, error = %e, "writing a producer snapshot failed; opening the log will replay more");
    }
    if let Some(segment) = inner.state.borrow_mut().segments.get_mut(&base) {
        segment.indexes_dirty = false;
    }
    if let Err(e) = inner.write_checkpoint().await {
        tracing::warn!(dir = %inner.dir.display(), error = %e, "writing the checkpoint failed");
    }
}
