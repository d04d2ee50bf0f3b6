//! One cleaning pass over one log (the action; the decisions are policy.rs and filter.rs).
//!
//! 1. Decide: the policy splits the log and says whether a pass is due.
//! 2. Map: read the dirty section, recording each key's newest offset, until the section
//!    ends or the map is full; the pass then covers offsets below where mapping stopped.
//! 3. Raise the compacted bound in the cleaner checkpoint, before any segment changes
//!    (recovery allows gaps below it).
//! 4. Clean: the segments below that point, in groups that fit one segment (small segments
//!    merge, as in Kafka), each copied batch by batch through the filter into `.cleaned`
//!    files (log and indexes), synced, then swapped in (swap.rs) under the log's surgery
//!    turn, after checking that retention did not remove any of the group meanwhile. The
//!    swap runs as the log's background task: a pass dropped mid-way (shutdown) never leaves
//!    the disk swapped and the log's segments not, and closing the log waits for it.
//! 5. Move the first dirty offset past the mapped section, only if every group was swapped
//!    in; otherwise the next pass maps the section again.
//!
//! Transactions: a pass covers only offsets below the last stable offset, and follows the
//! aborted transactions (from the transaction indexes) through both the map and the clean
//! (txns.rs): aborted records are never mapped and always removed, markers go once no data
//! of their transaction is left before them and their delete horizon has passed. One
//! tracker follows the whole clean, from the log's start, so a marker is judged with every
//! batch before it in view.
//!
//! Reads of replaced segments already planned keep working: they hold the old files open.
//! Appends never wait for a pass: the cleaner only touches sealed segments.

use std::rc::Rc;

use super::filter::{self, FilterRules, Outcome};
use super::first_dirty::CleanerCheckpoint;
use super::offset_map::key_hash;
use super::policy::{self, Cleanable, PolicyInput, SegmentInfo, Trigger};
use super::swap;
use super::txns::CleanedTxns;
use super::Cleaner;
use crate::log::batch::{self, BatchHeader, LOG_OVERHEAD};
use crate::log::error::StorageError;
use crate::log::index::SegmentIndexes;
use crate::log::partition::{Inner, Log};
use crate::log::records;
use crate::log::segment::{Segment, LOG_SUFFIX};
use crate::log::txn::{marker, AbortedTxnEntry, MarkerKind};
use crate::log::MAX_SEGMENT_BYTES;
use crate::rt::{self, File};

/// Bytes read per step.
const READ_WINDOW: usize = 1 << 20;
/// Bytes of cleaned output gathered per write.
const WRITE_CHUNK: usize = 1 << 20;

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassReport {
    pub trigger: Trigger,
    /// The dirty share before the pass.
    pub dirty_ratio: f64,
    /// The first dirty offset after the pass.
    pub first_dirty: i64,
    /// Segments replaced by cleaned ones (several may merge into one).
    pub segments_cleaned: usize,
    pub bytes_read: u64,
    /// Bytes the cleaned segments hold.
    pub bytes_written: u64,
    /// Bytes the replaced segments held.
    pub bytes_replaced: u64,
    pub records_removed: u64,
}

/// A sealed segment as the pass sees it when it starts.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub file: Rc<File>,
    pub first_append_ms: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub index_entries: usize,
}

/// The dirty share of a log and whether a pass is due, with the segments it saw.
pub(crate) struct Assessment {
    pub cleanable: Cleanable,
    /// Sealed segments whose data and indexes are written, oldest first.
    pub sealed: Vec<SegmentView>,
}

impl Log {
    /// Splits the log as the policy sees it now; `None` unless it is compacted.
    pub(crate) fn assess_compaction(&self) -> Option<Assessment> {
        let config = self.config();
        if !config.cleanup_policy.compact {
            return None;
        }
        let checkpoint = self.inner.compaction.borrow().checkpoint;
        let st = self.inner.state.borrow();
        let active = st.active();
        // A segment still being sealed (indexes not yet written) and everything after it
        // stay out of reach, like the active segment.
        let sealing = st
            .segments
            .values()
            .find(|s| s.indexes_dirty || s.log.is_none())
            .map(|s| s.base_offset);
        let reachable = |s: &&Segment| sealing.is_none_or(|b| s.base_offset < b);
        let sealed: Vec<SegmentView> = st
            .segments
            .values()
            .filter(|s| s.base_offset != active.base_offset)
            .filter(reachable)
            .filter_map(|s| {
                Some(SegmentView {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    size: s.written,
                    file: s.log.clone()?,
                    first_append_ms: s.first_append_ms,
                    max_timestamp: s.max_timestamp().map(|m| m.timestamp),
                    index_entries: s.indexes.offsets.len(),
                })
            })
            .collect();
        let mut infos: Vec<SegmentInfo> = sealed
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
                first_append_ms: s.first_append_ms,
            })
            .collect();
        let end = sealed.last().map_or(active.base_offset, |s| s.next_offset);
        // What lies past the reachable segments counts as the active segment does.
        infos.push(SegmentInfo {
            base_offset: end,
            next_offset: st.next_offset,
            size: 0,
            max_timestamp: None,
            first_append_ms: None,
        });
        let input = PolicyInput {
            now_ms: self.inner.clock.now_ms(),
            first_dirty: checkpoint.first_dirty,
            log_start_offset: st.log_start_offset,
            // Never at or past the last stable offset: records of undecided transactions can't
            // be cleaned (their fate decides whether they count), as in Kafka.
            high_watermark: st.last_stable_offset(),
            min_cleanable_dirty_ratio: config.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: config.min_compaction_lag_ms,
            max_compaction_lag_ms: config.max_compaction_lag_ms,
            earliest_tombstone_horizon: checkpoint.earliest_tombstone_horizon,
        };
        Some(Assessment {
            cleanable: policy::cleanable(&infos, &input),
            sealed,
        })
    }

    /// Runs one cleaning pass if the log needs one (see the module documentation). Returns
    /// what it did, `None` when no pass was due.
    pub async fn clean(&self, cleaner: &mut Cleaner) -> Result<Option<PassReport>, StorageError> {
        let Some(Assessment { cleanable, sealed }) = self.assess_compaction() else {
            return Ok(None);
        };
        let Some(trigger) = cleanable.trigger else {
            return Ok(None);
        };
        let config = self.config();
        let mut report = PassReport {
            trigger,
            dirty_ratio: cleanable.dirty_ratio,
            first_dirty: cleanable.first_dirty,
            segments_cleaned: 0,
            bytes_read: 0,
            bytes_written: 0,
            bytes_replaced: 0,
            records_removed: 0,
        };
        let map_end = self
            .build_offset_map(&sealed, &cleanable, cleaner, &mut report)
            .await?;
        let before = self.inner.compaction.borrow().checkpoint;
        self.save_cleaner_checkpoint(CleanerCheckpoint {
            compacted_below: before.compacted_below.max(map_end),
            ..before
        })
        .await?;
        let rules = FilterRules {
            now_ms: self.inner.clock.now_ms(),
            delete_retention_ms: config.delete_retention_ms,
            // Stored batches may have been accepted under a larger max.message.bytes.
            decompression_limit: batch::decompression_limit(usize::MAX),
        };
        let mut horizon = None;
        let mut all_swapped = true;
        let below: Vec<SegmentView> = sealed
            .into_iter()
            .filter(|s| s.base_offset < map_end)
            .collect();
        let clean_end = below.last().map_or(map_end, |s| s.next_offset);
        let mut txns = CleanedTxns::new(self.aborted_entries(i64::MIN, clean_end));
        for group in groups(
            &below,
            config.effective_segment_bytes(),
            config.max_index_entries(),
        ) {
            let cleaned = self
                .clean_group(group, &rules, cleaner, &mut txns, &mut report)
                .await?;
            horizon = min_option(horizon, cleaned.tombstone_horizon);
            if !cleaned.swapped {
                all_swapped = false;
                break;
            }
        }
        let after = self.inner.compaction.borrow().checkpoint;
        let checkpoint = if all_swapped {
            report.first_dirty = map_end;
            CleanerCheckpoint {
                first_dirty: map_end,
                earliest_tombstone_horizon: horizon,
                ..after
            }
        } else {
            report.first_dirty = after.first_dirty;
            CleanerCheckpoint {
                earliest_tombstone_horizon: min_option(after.earliest_tombstone_horizon, horizon),
                ..after
            }
        };
        self.save_cleaner_checkpoint(checkpoint).await?;
        let mut compaction = self.inner.compaction.borrow_mut();
        let stats = &mut compaction.stats;
        stats.runs += 1;
        stats.bytes_read += report.bytes_read;
        stats.bytes_written += report.bytes_written;
        stats.records_removed += report.records_removed;
        stats.last_clean_ms = Some(self.inner.clock.now_ms());
        drop(compaction);
        tracing::debug!(dir = %self.inner.dir.display(), ?report, "compacted");
        Ok(Some(report))
    }

    async fn save_cleaner_checkpoint(
        &self,
        checkpoint: CleanerCheckpoint,
    ) -> Result<(), StorageError> {
        checkpoint
            .write(&self.inner.dir)
            .await
            .map_err(|e| StorageError::io("writing the cleaner checkpoint", &e))?;
        self.inner.compaction.borrow_mut().checkpoint = checkpoint;
        Ok(())
    }

    /// Maps the dirty section's keys; returns the offset mapping stopped at (the section's
    /// end, or where the map filled up).
    async fn build_offset_map(
        &self,
        sealed: &[SegmentView],
        cleanable: &Cleanable,
        cleaner: &mut Cleaner,
        report: &mut PassReport,
    ) -> Result<i64, StorageError> {
        let (from, until) = (cleanable.first_dirty, cleanable.first_uncleanable);
        cleaner.map.clear();
        let mut txns = CleanedTxns::new(self.aborted_entries(from, until));
        let mut mapped_to = from;
        let limit = batch::decompression_limit(usize::MAX);
        for segment in sealed
            .iter()
            .filter(|s| s.next_offset > from && s.base_offset < until)
        {
            let mut reader = BatchReader::new(segment);
            while let Some((_, header, bytes)) = reader.next(cleaner).await? {
                if header.last_offset() < from {
                    continue;
                }
                if header.base_offset >= until {
                    break;
                }
                // A batch that doesn't fit waits for the next pass, unless the map is empty:
                // then what fits is mapped, and the pass stops at the first record that
                // didn't (never past a key it did not map).
                let records = header.records_count.max(0) as usize;
                if !cleaner.map.has_room_for(records) && cleaner.map.len() > 0 {
                    report.bytes_read += reader.bytes_read;
                    return Ok(header.base_offset.max(from));
                }
                // Aborted records never count: they must not supersede committed ones.
                let mapped = if header.is_control() {
                    txns.on_control(&header, marker_kind(bytes, &header));
                    false
                } else {
                    !txns.on_batch(&header)
                };
                if mapped {
                    let unmapped = map_batch(bytes, &header, from, limit, &mut cleaner.map)?;
                    if let Some(offset) = unmapped {
                        report.bytes_read += reader.bytes_read;
                        return Ok(offset.max(from));
                    }
                }
                mapped_to = header.last_offset().saturating_add(1);
            }
            report.bytes_read += reader.bytes_read;
            mapped_to = mapped_to.max(segment.next_offset.min(until));
        }
        Ok(mapped_to.max(from))
    }

    /// Cleans one group of segments into one and swaps it in.
    async fn clean_group(
        &self,
        group: &[SegmentView],
        rules: &FilterRules,
        cleaner: &mut Cleaner,
        txns: &mut CleanedTxns,
        report: &mut PassReport,
    ) -> Result<GroupCleaned, StorageError> {
        let dir = self.inner.dir.clone();
        let base = group[0].base_offset;
        let io = |what: &'static str| move |e: std::io::Error| StorageError::io(what, &e);
        let out = rt::fs::create_file(swap::cleaned_path(&dir, base, LOG_SUFFIX))
            .await
            .map_err(io("creating a cleaned segment"))?;
        let config = self.config();
        let mut writer = CleanedWriter::new(out, base, config.index_interval_bytes);
        let mut horizon = None;
        let mut removed = 0u64;
        for (i, segment) in group.iter().enumerate() {
            let last_segment = i + 1 == group.len();
            let mut reader = BatchReader::new(segment);
            while let Some((position, header, bytes)) = reader.next(cleaner).await? {
                let len = bytes.len() as u64;
                let group_end = last_segment && position + len == segment.size;
                let keep_batch = group_end || self.is_producers_last_batch(&header);
                let filtered = if header.is_control() {
                    let removable = txns.on_control(&header, marker_kind(bytes, &header));
                    filter::filter_marker(bytes, &header, removable, rules, keep_batch)
                } else if txns.on_batch(&header) {
                    filter::filter_aborted(bytes, &header, keep_batch)
                } else {
                    filter::filter_batch(bytes, &header, &cleaner.map, rules, keep_batch)
                };
                let filtered = filtered.map_err(|e| {
                    StorageError(format!("cleaning segment {}: {e}", segment.base_offset))
                })?;
                removed += u64::from(filtered.records_removed);
                horizon = min_option(horizon, filtered.tombstone_horizon);
                match filtered.outcome {
                    Outcome::Keep => writer.push(bytes, &header, cleaner).await?,
                    Outcome::Rewrite(new) => writer.push(&new, &header, cleaner).await?,
                    Outcome::Drop => {}
                }
            }
            report.bytes_read += reader.bytes_read;
        }
        let (out, size, indexes) = writer.finish(cleaner).await?;
        out.fdatasync()
            .await
            .map_err(io("syncing a cleaned segment"))?;
        let last = group.last().expect("a group has a segment");
        // The aborts whose markers stay because data of theirs did too (txns.rs): their
        // entries, unchanged (offsets don't change), make the cleaned segment's index.
        let aborted = std::mem::take(&mut txns.kept_entries);
        let mut segment = Segment {
            base_offset: base,
            log: Some(Rc::new(out)),
            size,
            written: size,
            next_offset: last.next_offset,
            indexes,
            first_append_ms: group[0].first_append_ms,
            indexes_dirty: false,
            preallocated_to: size,
            aborted,
        };
        segment
            .index_snapshot()
            .with_txn_file_always()
            .write_to(|suffix| swap::cleaned_path(&dir, base, suffix))
            .await
            .map_err(io("writing a cleaned segment's indexes"))?;
        let replaced_bytes: u64 = group.iter().map(|s| s.size).sum();
        let members = group.iter().map(|s| (s.base_offset, s.size)).collect();
        let swap = swap_in(self.inner.clone(), members, segment);
        let swapped = self.inner.spawn_background(swap).await?;
        if swapped {
            report.segments_cleaned += group.len();
            report.bytes_written += size;
            report.bytes_replaced += replaced_bytes;
            report.records_removed += removed;
        }
        Ok(GroupCleaned {
            swapped,
            tombstone_horizon: horizon,
        })
    }

    /// The aborted transactions overlapping `[from, until)`, from every segment's index.
    fn aborted_entries(&self, from: i64, until: i64) -> Vec<AbortedTxnEntry> {
        let st = self.inner.state.borrow();
        st.segments
            .values()
            .flat_map(|s| s.aborted.iter().copied())
            .filter(|a| a.last_offset >= from && a.first_offset < until)
            .collect()
    }

    /// Whether `header` is the last batch an idempotent producer this log knows wrote: kept
    /// (if need be empty) so its sequence survives a rebuild of the producers' state.
    fn is_producers_last_batch(&self, header: &BatchHeader) -> bool {
        if header.producer_id < 0 {
            return false;
        }
        let st = self.inner.state.borrow();
        st.producers
            .get(header.producer_id)
            .and_then(|p| p.last_offset())
            == Some(header.last_offset())
    }
}

/// What cleaning one group came to.
struct GroupCleaned {
    /// False when the group changed under the pass (its cleaned copy was discarded).
    swapped: bool,
    /// The earliest delete horizon of the tombstones it kept.
    tombstone_horizon: Option<i64>,
}

/// Replaces the segments `group` (base and size as the pass read them) with `segment`, whose
/// cleaned files are written and synced, on disk and in the log. Returns false, discarding
/// the cleaned files, when the group changed since the pass began (retention removed some of
/// it) or the log is closing or failed.
async fn swap_in(
    inner: Rc<Inner>,
    group: Vec<(i64, u64)>,
    segment: Segment,
) -> Result<bool, StorageError> {
    let dir = inner.dir.clone();
    let base = segment.base_offset;
    let _turn = inner.surgery.acquire().await;
    let intact = {
        let st = inner.state.borrow();
        // A closing log keeps the segments its close recorded.
        st.failed.is_none()
            && !st.closed
            && group.iter().all(|&(b, size)| {
                st.segments
                    .get(&b)
                    .is_some_and(|s| s.written == size && !s.indexes_dirty)
            })
    };
    if !intact {
        let discarding = dir.clone();
        rt::unblock(move || swap::discard_cleaned_blocking(&discarding, base))
            .await
            .map_err(|e| StorageError::io("discarding a cleaned segment", &e))?;
        return Ok(false);
    }
    let replaced: Vec<i64> = group.iter().map(|&(b, _)| b).collect();
    let committing = dir.clone();
    let committed = rt::unblock(move || swap::commit_blocking(&committing, &replaced)).await;
    if let Err(e) = committed {
        // The directory may be mid-swap; opening the log again finishes it.
        let error = StorageError::io("swapping in a cleaned segment", &e);
        tracing::error!(dir = %dir.display(), error = %error, "the log refuses appends until reopened");
        inner.fail(error.clone());
        return Err(error);
    }
    let mut st = inner.state.borrow_mut();
    for (old, _) in &group {
        st.segments.remove(old);
    }
    st.segments.insert(base, segment);
    Ok(true)
}

/// The marker a control batch is, if it is one that decodes (others are kept as they are).
fn marker_kind(bytes: &[u8], header: &BatchHeader) -> Option<MarkerKind> {
    marker::decode_marker(bytes, header)
        .ok()
        .flatten()
        .map(|m| m.kind)
}

/// Records each keyed record of a batch at or after `from` in the map. Returns the offset of
/// the first such record the map had no room for, if any.
fn map_batch(
    bytes: &[u8],
    header: &BatchHeader,
    from: i64,
    limit: usize,
    map: &mut super::offset_map::OffsetMap,
) -> Result<Option<i64>, StorageError> {
    let corrupt = |e: batch::BatchError| {
        StorageError(format!(
            "mapping batch at offset {}: {e}",
            header.base_offset
        ))
    };
    let records = filter::records_section(bytes, header, limit).map_err(corrupt)?;
    for record in records::walk(&records) {
        let record = record.map_err(corrupt)?;
        let offset = header
            .base_offset
            .saturating_add(i64::from(record.offset_delta));
        let Some(key) = record.key.filter(|_| offset >= from) else {
            continue;
        };
        if !map.put(key_hash(key), offset) {
            return Ok(Some(offset));
        }
    }
    Ok(None)
}

/// Consecutive segments merged into one output segment while it stays within `segment.bytes`
/// (counting their sizes before cleaning), the offsets an index can address and its entries.
fn groups(
    segments: &[SegmentView],
    max_bytes: u64,
    max_index_entries: usize,
) -> Vec<&[SegmentView]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let (mut bytes, mut entries) = (segments[start].size, segments[start].index_entries);
        let mut end = start + 1;
        while let Some(next) = segments.get(end) {
            let span = next.next_offset - segments[start].base_offset;
            if bytes + next.size > max_bytes.min(MAX_SEGMENT_BYTES)
                || span > i64::from(i32::MAX)
                || entries + next.index_entries > max_index_entries
            {
                break;
            }
            bytes += next.size;
            entries += next.index_entries;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Walks a sealed segment's batches in bounded windows, checking each (CRC, framing, and
/// offsets that increase within the segment's range: the base offset is outside the CRC): a
/// pass never maps or copies damage.
struct BatchReader<'a> {
    file: &'a File,
    size: u64,
    /// The next batch's offsets must start at or after this...
    next_offset: i64,
    /// ...and end before this (where the next segment begins).
    end_offset: i64,
    window: Vec<u8>,
    window_start: u64,
    at: usize,
    bytes_read: u64,
}

impl<'a> BatchReader<'a> {
    fn new(segment: &'a SegmentView) -> Self {
        BatchReader {
            file: &segment.file,
            size: segment.size,
            next_offset: segment.base_offset,
            end_offset: segment.next_offset,
            window: Vec::new(),
            window_start: 0,
            at: 0,
            bytes_read: 0,
        }
    }

    /// The next batch: its position, header and bytes.
    async fn next(
        &mut self,
        cleaner: &mut Cleaner,
    ) -> Result<Option<(u64, BatchHeader, &[u8])>, StorageError> {
        let damaged = |what: String| StorageError(format!("reading a segment to clean: {what}"));
        let (position, header, range) = loop {
            let position = self.window_start + self.at as u64;
            let available = &self.window[self.at..];
            let had = available.len();
            let mut need = READ_WINDOW;
            if available.len() >= LOG_OVERHEAD {
                let total = batch::declared_total_len(available)
                    .ok_or_else(|| damaged(format!("bad batch length at byte {position}")))?;
                if total <= available.len() {
                    let header = batch::validate(&available[..total], MAX_SEGMENT_BYTES as usize)
                        .map_err(|e| damaged(format!("batch at byte {position}: {e}")))?;
                    if header.base_offset < self.next_offset
                        || header.last_offset() >= self.end_offset
                    {
                        return Err(damaged(format!(
                            "batch at byte {position} has offsets {}..={} outside {}..{}",
                            header.base_offset,
                            header.last_offset(),
                            self.next_offset,
                            self.end_offset
                        )));
                    }
                    self.next_offset = header.last_offset().saturating_add(1);
                    let range = self.at..self.at + total;
                    self.at += total;
                    break (position, header, range);
                }
                need = need.max(total);
            }
            if position >= self.size {
                return Ok(None);
            }
            let len = need.min((self.size - position) as usize);
            let (result, bytes) = self
                .file
                .read_exact_at(Vec::with_capacity(len), position)
                .await;
            let read = result.map_err(|e| StorageError::io("reading a segment to clean", &e))?;
            // No more bytes than last time: a batch runs past the segment's end.
            if read < len || had >= len {
                return Err(damaged(format!(
                    "segment shorter than its size at byte {position}"
                )));
            }
            self.window = bytes;
            self.window_start = position;
            self.at = 0;
            self.bytes_read += read as u64;
            cleaner.throttle.pace(read as u64).await;
        };
        Ok(Some((position, header, &self.window[range])))
    }
}

/// Gathers a cleaned segment's batches and writes them in chunks, building its indexes.
struct CleanedWriter {
    file: File,
    buffer: Vec<u8>,
    flushed: u64,
    indexes: SegmentIndexes,
}

impl CleanedWriter {
    fn new(file: File, base: i64, index_interval_bytes: usize) -> Self {
        CleanedWriter {
            file,
            buffer: Vec::with_capacity(WRITE_CHUNK),
            flushed: 0,
            indexes: SegmentIndexes::new(base, index_interval_bytes),
        }
    }

    async fn push(
        &mut self,
        bytes: &[u8],
        header: &BatchHeader,
        cleaner: &mut Cleaner,
    ) -> Result<(), StorageError> {
        let position = self.flushed + self.buffer.len() as u64;
        self.indexes.add_batch(
            position as u32,
            header.last_offset(),
            header.max_timestamp,
            bytes.len(),
        );
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= WRITE_CHUNK {
            self.flush(cleaner).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, cleaner: &mut Cleaner) -> Result<(), StorageError> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_CHUNK));
        let len = chunk.len() as u64;
        let (result, _) = self.file.write_all_at(chunk, self.flushed).await;
        result.map_err(|e| StorageError::io("writing a cleaned segment", &e))?;
        self.flushed += len;
        cleaner.throttle.pace(len).await;
        Ok(())
    }

    /// Writes what is left; returns the file, its size and its indexes.
    async fn finish(
        mut self,
        cleaner: &mut Cleaner,
    ) -> Result<(File, u64, SegmentIndexes), StorageError> {
        if !self.buffer.is_empty() {
            self.flush(cleaner).await?;
        }
        Ok((self.file, self.flushed, self.indexes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(base: i64, next: i64, size: u64, entries: usize) -> (i64, i64, u64, usize) {
        (base, next, size, entries)
    }

    /// Group boundaries (as base offsets) for segments of `(base, next, size, entries)`.
    fn grouped(
        segments: &[(i64, i64, u64, usize)],
        max_bytes: u64,
        max_entries: usize,
    ) -> Vec<Vec<i64>> {
        let file = Rc::new(File::from_std(tempfile::tempfile().unwrap()));
        let views: Vec<SegmentView> = segments
            .iter()
            .map(|&(base, next, size, entries)| SegmentView {
                base_offset: base,
                next_offset: next,
                size,
                file: file.clone(),
                first_append_ms: None,
                max_timestamp: None,
                index_entries: entries,
            })
            .collect();
        groups(&views, max_bytes, max_entries)
            .into_iter()
            .map(|g| g.iter().map(|s| s.base_offset).collect())
            .collect()
    }

    #[test]
    fn small_segments_merge_within_the_limits() {
        let segs = [
            view(0, 10, 400, 1),
            view(10, 20, 400, 1),
            view(20, 30, 400, 1),
            view(30, 40, 900, 1),
        ];
        assert_eq!(
            grouped(&segs, 1000, 100),
            vec![vec![0, 10], vec![20], vec![30]]
        );
        assert_eq!(grouped(&segs, 1200, 100), vec![vec![0, 10, 20], vec![30]]);
        assert_eq!(
            grouped(&segs, 1200, 2),
            vec![vec![0, 10], vec![20], vec![30]]
        );
        let far = [
            view(0, 10, 1, 1),
            view(i64::from(i32::MAX), i64::from(i32::MAX) + 5, 1, 1),
        ];
        assert_eq!(
            grouped(&far, 1000, 100),
            vec![vec![0], vec![i64::from(i32::MAX)]]
        );
        assert!(grouped(&[], 1000, 100).is_empty());
    }
}
