//! Opening a partition directory: finding its segments, trusting what was synced and sealed,
//! checking the rest.
//!
//! After a clean shutdown every segment's indexes were written and synced, so they are read
//! back as they are (a missing or malformed index is rebuilt); only the tail of the last
//! segment past its last index entry is read, to find the next offset. Otherwise every
//! segment from the one holding the checkpoint's recovery point on is scanned batch by batch:
//! its indexes are rebuilt, a torn or corrupt tail is truncated, and the segments after a
//! damaged one are removed (their offsets would no longer follow on). What was changed is
//! reported.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::checkpoint::Checkpoint;
use super::compaction::swap;
use super::compaction::CleanerCheckpoint;
use super::config::{LogConfig, MAX_SEGMENT_BYTES};
use super::index::SegmentIndexes;
use super::scan::{Feed, ScanResult, SegmentScanner};
use super::segment::{self, Segment, LOG_SUFFIX};
use crate::rt::{self, File};

/// Bytes read per step while scanning a segment.
const SCAN_WINDOW: usize = 1 << 20;

/// What opening a log found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The data directory was shut down cleanly: nothing was scanned beyond tails.
    pub clean_shutdown: bool,
    pub segments: usize,
    /// Segments checked batch by batch.
    pub segments_scanned: usize,
    pub bytes_scanned: u64,
    /// Bytes cut from torn or corrupt tails.
    pub bytes_truncated: u64,
    /// Segments removed because an earlier one was damaged.
    pub segments_removed: usize,
    /// Segments whose index files were rebuilt.
    pub indexes_rebuilt: usize,
    /// What was found at each truncation, for the operator's log.
    pub problems: Vec<String>,
    /// How idempotent producers' state was rebuilt.
    pub producers: crate::log::producers::RebuildReport,
    /// Compaction swaps a crash interrupted after their commit, finished now.
    pub swaps_completed: usize,
    /// Cleaned segments a crash left before their commit, discarded.
    pub cleaned_discarded: usize,
}

/// A directory's segments, ready for the log to use.
pub(crate) struct Loaded {
    pub segments: BTreeMap<i64, Segment>,
    pub log_start_offset: i64,
    /// Everything below this is known to be on stable storage.
    pub durable_offset: i64,
    pub report: RecoveryReport,
    pub cleaner: CleanerCheckpoint,
}

/// Loads (and if need be recovers) the log in `dir`.
pub(crate) async fn load(
    dir: &Path,
    config: &LogConfig,
    clean_shutdown: bool,
    checkpoint: Option<Checkpoint>,
) -> io::Result<Loaded> {
    let listed = dir.to_path_buf();
    let (bases, finished, cleaner) = rt::unblock(move || {
        let finished = swap::finish_interrupted_blocking(&listed)?;
        let cleaner = read_cleaner_checkpoint(&listed)?;
        Ok::<_, io::Error>((list_segments(&listed)?, finished, cleaner))
    })
    .await?;
    let clean_shutdown = clean_shutdown && checkpoint.is_some_and(|c| c.closed_cleanly);
    let mut report = RecoveryReport {
        clean_shutdown,
        swaps_completed: finished.swaps_completed,
        cleaned_discarded: finished.cleaned_discarded,
        ..RecoveryReport::default()
    };
    // Segments below the first dirty offset may have been compacted: gaps between their
    // batches are expected there. An unreadable cleaner checkpoint allows them everywhere
    // (a compacted segment must not be cut as damaged) and the next pass starts over.
    let (cleaner, gaps_below) = match cleaner {
        Some(c) => (c, c.compacted_below),
        None => {
            let everywhere = CleanerCheckpoint {
                compacted_below: i64::MAX,
                ..CleanerCheckpoint::default()
            };
            (everywhere, i64::MAX)
        }
    };
    let start = checkpoint.map_or(0, |c| c.log_start_offset);
    if bases.is_empty() {
        return empty_log(dir, config, start, report, cleaner).await;
    }
    let scan = ScanRules { config, gaps_below };
    // Scan from the segment holding the recovery point (all of them without a checkpoint).
    let scan_from = if clean_shutdown {
        None
    } else {
        let recovery_point = checkpoint.map_or(i64::MIN, |c| c.recovery_point);
        Some(
            bases
                .iter()
                .copied()
                .take_while(|&b| b <= recovery_point)
                .last()
                .unwrap_or(i64::MIN),
        )
    };
    let mut segments = BTreeMap::new();
    let mut damaged = false;
    let mut dir_changed = false;
    for (i, &base) in bases.iter().enumerate() {
        if damaged {
            segment::remove_segment_files(dir, base).await?;
            report.segments_removed += 1;
            dir_changed = true;
            continue;
        }
        let next_base = bases.get(i + 1).copied();
        let must_scan = scan_from.is_some_and(|from| base >= from);
        let (segment, was_damaged) =
            load_segment(dir, &scan, base, next_base, must_scan, &mut report).await?;
        damaged = was_damaged;
        segments.insert(base, segment);
    }
    // Offsets of a trusted segment end where the next begins.
    let bases: Vec<i64> = segments.keys().copied().collect();
    for pair in bases.windows(2) {
        let next_base = pair[1];
        let segment = segments.get_mut(&pair[0]).expect("listed");
        if segment.next_offset == segment.base_offset && segment.size > 0 {
            segment.next_offset = next_base;
        }
    }
    // Scanned data may exist only in the page cache (a crashed process): make the sealed
    // segments durable before a checkpoint claims them. The active one is synced by the
    // first flush, which covers everything from its base.
    let active_base = *segments.keys().last().expect("at least one segment");
    for segment in segments.values().filter(|s| s.indexes_dirty) {
        if let Some(file) = segment
            .log
            .as_ref()
            .filter(|_| segment.base_offset != active_base)
        {
            file.fdatasync().await?;
        }
    }
    if dir_changed {
        rt::fs::open_dir(dir).await?.fsync().await?;
    }
    // DeleteRecords may have moved the start past data a crash then lost: nothing below the
    // start is readable anyway, so begin again with an empty segment there (as Kafka does).
    let end = segments[&active_base].next_offset;
    if start > end {
        report.problems.push(format!(
            "log start offset {start} is past the recovered end {end}; starting an empty segment there"
        ));
        for base in segments.into_keys() {
            segment::remove_segment_files(dir, base).await?;
        }
        return empty_log(dir, config, start, report, cleaner).await;
    }
    let first_base = *segments.keys().next().expect("at least one segment");
    let durable_offset = if clean_shutdown {
        segments[&active_base].next_offset
    } else {
        active_base
    };
    report.segments = segments.len();
    Ok(Loaded {
        segments,
        log_start_offset: start.max(first_base),
        durable_offset,
        report,
        cleaner,
    })
}

/// A log with one empty segment at `start`: a new partition, or one whose data all lies below
/// its start.
async fn empty_log(
    dir: &Path,
    config: &LogConfig,
    start: i64,
    mut report: RecoveryReport,
    cleaner: CleanerCheckpoint,
) -> io::Result<Loaded> {
    let segment = Segment::create(dir, start, config.index_interval_bytes).await?;
    rt::fs::open_dir(dir).await?.fsync().await?;
    report.segments = 1;
    Ok(Loaded {
        segments: BTreeMap::from([(start, segment)]),
        log_start_offset: start,
        durable_offset: start,
        report,
        cleaner,
    })
}

/// How segments are checked: the log's settings, and below which base offset a segment
/// may have been compacted.
struct ScanRules<'a> {
    config: &'a LogConfig,
    gaps_below: i64,
}

/// The cleaner checkpoint; `None` when it is unreadable (reported).
fn read_cleaner_checkpoint(dir: &Path) -> io::Result<Option<CleanerCheckpoint>> {
    match CleanerCheckpoint::read_blocking(dir) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!(dir = %dir.display(), "unreadable cleaner checkpoint; compaction starts over");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Base offsets of the segments in `dir`, in order; removes files that belong to no segment.
/// Blocking (a directory walk and removals): run it on the pool.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = segment::parse_segment_name(name, segment::INDEX_SUFFIX)
            .or_else(|| segment::parse_segment_name(name, segment::TIME_INDEX_SUFFIX))
            .or_else(|| segment::parse_segment_name(name, segment::TXN_INDEX_SUFFIX))
        {
            others.push((base, name.to_owned()));
        } else if name.ends_with(".tmp") {
            std::fs::remove_file(dir.join(name))?;
        }
    }
    bases.sort_unstable();
    for (base, name) in others {
        if bases.binary_search(&base).is_err() {
            std::fs::remove_file(dir.join(name))?;
        }
    }
    Ok(bases)
}

/// Loads one segment; the flag says it was damaged (truncated) and later ones must go.
async fn load_segment(
    dir: &Path,
    scan: &ScanRules<'_>,
    base: i64,
    next_base: Option<i64>,
    must_scan: bool,
    report: &mut RecoveryReport,
) -> io::Result<(Segment, bool)> {
    let is_last = next_base.is_none();
    let config = scan.config;
    let gaps = base < scan.gaps_below;
    let file = Rc::new(Segment::open_log(dir, base).await?);
    let size = file.len()?;
    let (indexes, birth_ms, txns) = {
        let dir = dir.to_path_buf();
        let read_indexes = !must_scan;
        rt::unblock(move || {
            let indexes = read_indexes
                .then(|| Segment::read_indexes(&dir, base))
                .flatten();
            let birth_ms = (size > 0).then(|| segment_birth_ms(&dir, base)).flatten();
            // Read even for a segment that is rescanned: rebuilding producer state replays
            // only the batches after its snapshot, and regenerates only their entries
            // (`producers::rebuild`).
            (indexes, birth_ms, Segment::read_txn_index(&dir, base))
        })
        .await
    };
    let txns = txns?;
    // An index must point inside the log, and a non-empty segment always has an entry for its
    // first batch (empty files are what a roll creates before sealing).
    let trusted = indexes
        .filter(|(offsets, _)| offsets.last().is_none_or(|e| u64::from(e.position) < size))
        .filter(|(offsets, _)| size == 0 || !offsets.is_empty());
    let mut segment = Segment {
        base_offset: base,
        log: Some(file.clone()),
        size,
        written: size,
        next_offset: base,
        indexes: SegmentIndexes::new(base, config.index_interval_bytes),
        first_append_ms: birth_ms,
        indexes_dirty: false,
        preallocated_to: size,
        aborted: txns.entries,
    };
    if txns.damaged_bytes > 0 {
        // Kafka rebuilds a corrupt transaction index by recovering the segment; here the
        // trusted entries stay, the damaged tail is cut when the index is rewritten, and
        // the entries of markers after the producer snapshot are regenerated by replay.
        report.problems.push(format!(
            "segment {base}: {} damaged bytes at the end of its transaction index; cut",
            txns.damaged_bytes
        ));
        segment.indexes_dirty = true;
    }
    let mut outcome = None;
    if let Some((offsets, times)) = trusted {
        let interval = config.index_interval_bytes;
        segment.indexes = SegmentIndexes::from_parts(offsets, times, interval);
        if !is_last {
            return Ok((segment, false));
        }
        // The tail from the last index entry on tells the next offset; it must agree with the
        // entry, or the index is stale and the segment is rescanned.
        let last_entry = segment.indexes.offsets.last();
        let from = last_entry.map_or(0, |e| u64::from(e.position));
        let tail = scan_file(&file, base, from, size, ScanFrom::Resume, gaps).await?;
        report.bytes_scanned += size - from;
        let first_batch_end = tail.offset_index.last().map(|e| e.offset);
        let agrees = last_entry.is_none_or(|e| first_batch_end == Some(e.offset));
        if tail.stop.is_none() && agrees {
            segment.next_offset = tail.next_offset.unwrap_or(base);
            if let Some(max) = tail.max_timestamp {
                let known = segment.indexes.max_timestamp;
                if known.is_none_or(|m| max.timestamp > m.timestamp) {
                    segment.indexes.max_timestamp = Some(max);
                }
            }
            outcome = Some((size, None));
        } else {
            report.problems.push(format!(
                "segment {base}: its tail disagrees with its index after a clean shutdown; rescanned"
            ));
        }
    }
    let (valid_len, stop) = match outcome {
        Some(outcome) => outcome,
        None => {
            let interval = config.index_interval_bytes;
            let scanned = scan_file(&file, base, 0, size, ScanFrom::Start(interval), gaps).await?;
            report.segments_scanned += 1;
            report.bytes_scanned += size;
            report.indexes_rebuilt += 1;
            segment.next_offset = scanned.next_offset.unwrap_or(base);
            segment.indexes =
                SegmentIndexes::from_parts(scanned.offset_index, scanned.time_index, interval);
            segment.indexes_dirty = true;
            (scanned.valid_len, scanned.stop)
        }
    };
    let mut damaged = stop.is_some();
    if let Some(stop) = stop {
        report.problems.push(format!(
            "segment {base}: {stop:?} at byte {valid_len} of {size}; truncated"
        ));
    }
    // A scanned segment must end where the next begins. One that ends short lost writes that
    // were in flight when the next segment was created (a roll), and nothing after them can
    // have been acknowledged: drop the later segments so offsets stay dense.
    if let Some(next_base) = next_base.filter(|_| must_scan) {
        if segment.next_offset != next_base {
            report.problems.push(format!(
                "segment {base}: offsets end at {}, the next segment starts at {next_base}",
                segment.next_offset
            ));
            damaged = true;
        }
    }
    // Aborts whose marker a truncation removed are no longer in the log.
    let end = segment.next_offset;
    if segment.aborted.iter().any(|a| a.last_offset >= end) {
        segment.aborted.retain(|a| a.last_offset < end);
        segment.indexes_dirty = true;
    }
    if valid_len < size {
        file.set_len(valid_len)?;
        file.fdatasync().await?;
        report.bytes_truncated += size - valid_len;
        segment.size = valid_len;
        segment.written = valid_len;
        segment.preallocated_to = valid_len;
    }
    Ok((segment, damaged && !is_last))
}

/// Where a scan starts: at the segment's start, building indexes every so many bytes, or at a
/// batch boundary in the middle (only the first batch is indexed then).
enum ScanFrom {
    Start(usize),
    Resume,
}

/// Scans `file` (`size` bytes) from `from` in windows. Positions in the result are relative to
/// `from`. Any batch up to a segment's size is believable: CRCs catch damage, and bounding by
/// today's max.message.bytes would cut batches accepted under an older, larger limit.
async fn scan_file(
    file: &File,
    base: i64,
    from: u64,
    size: u64,
    mode: ScanFrom,
    gaps_allowed: bool,
) -> io::Result<ScanResult> {
    let max_batch = MAX_SEGMENT_BYTES as usize;
    let scanner = match mode {
        ScanFrom::Start(interval) => SegmentScanner::new(base, interval, max_batch),
        ScanFrom::Resume => SegmentScanner::resumed(base, usize::MAX, max_batch),
    };
    let mut scanner = scanner.allowing_gaps(gaps_allowed);
    let mut need = 0usize;
    loop {
        let position = from + scanner.position();
        let len = (size - position).min(SCAN_WINDOW.max(need) as u64) as usize;
        let (result, bytes) = file.read_exact_at(Vec::with_capacity(len), position).await;
        let read = result?;
        let at_eof = read < len || position + read as u64 >= size;
        match scanner.feed(&bytes[..read], at_eof) {
            Feed::Done => return Ok(scanner.finish()),
            Feed::NeedMore(n) => need = n,
        }
    }
}

/// When a segment's file was created (its modification time where the filesystem doesn't
/// record creation), so `segment.ms` keeps counting across restarts. Blocking (a stat).
fn segment_birth_ms(dir: &Path, base: i64) -> Option<i64> {
    let meta = std::fs::metadata(segment::segment_path(dir, base, LOG_SUFFIX)).ok()?;
    let time = meta.created().or_else(|_| meta.modified()).ok()?;
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}
