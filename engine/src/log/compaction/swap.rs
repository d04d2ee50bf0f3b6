//! Replacing segments with their cleaned copy so that a crash at any step leaves either the
//! old segments or the cleaned one, never a mix and never neither (Kafka's `.cleaned` and
//! `.swap` files).
//!
//! A pass writes a group of segments' cleaned copy to `<first base>.log.cleaned` and syncs
//! it; then:
//! 1. renames it to `<first base>.log.swap` and syncs the directory: the commit point;
//! 2. removes the group's index files and its other segments' files;
//! 3. renames the swap file over `<first base>.log` and syncs the directory;
//! 4. writes the new segment's indexes.
//!
//! Opening a log finishes what a crash interrupted: a `.cleaned` file is an uncommitted
//! pass, deleted; a `.swap` file is a committed one, finished from step 2 (the segments it
//! replaces are those whose base lies within its offsets: a cleaned group keeps its last
//! batch, so the swap file's offsets end where the group's did). Missing indexes are
//! rebuilt by recovery's scan.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::batch::{declared_total_len, BatchHeader, HEADER_LEN};
use crate::log::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

pub(crate) const CLEANED_SUFFIX: &str = "log.cleaned";
pub(crate) const SWAP_SUFFIX: &str = "log.swap";

pub(crate) fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    segment::segment_path(dir, base, CLEANED_SUFFIX)
}

fn swap_path(dir: &Path, base: i64) -> PathBuf {
    segment::segment_path(dir, base, SWAP_SUFFIX)
}

/// Steps 1 to 3 for the group `replaced` (ascending, starting with the cleaned copy's base),
/// whose cleaned copy is written and synced. Blocking: run it on the pool, as one job, since
/// the steps only make sense in order.
pub(crate) fn commit_blocking(dir: &Path, replaced: &[i64]) -> io::Result<()> {
    let base = replaced[0];
    std::fs::rename(cleaned_path(dir, base), swap_path(dir, base))?;
    sync_dir(dir)?;
    finish_blocking(dir, base, replaced)
}

/// Steps 2 and 3: the swap file at `base` replaces the segments `replaced`.
fn finish_blocking(dir: &Path, base: i64, replaced: &[i64]) -> io::Result<()> {
    for &old in replaced {
        // The base's own log file is replaced by the rename, atomically; its indexes would
        // be stale, and the others' files are superseded.
        let suffixes: &[&str] = if old == base {
            &[INDEX_SUFFIX, TIME_INDEX_SUFFIX]
        } else {
            &[LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]
        };
        for suffix in suffixes {
            match std::fs::remove_file(segment::segment_path(dir, old, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    std::fs::rename(
        swap_path(dir, base),
        segment::segment_path(dir, base, LOG_SUFFIX),
    )?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// What finishing interrupted swaps did, for the recovery report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finished {
    pub swaps_completed: usize,
    pub cleaned_discarded: usize,
}

/// Finishes or discards what a crash interrupted in `dir`, before its segments are listed.
/// Blocking: run it on the pool.
pub(crate) fn finish_interrupted_blocking(dir: &Path) -> io::Result<Finished> {
    let mut finished = Finished::default();
    let mut swaps = Vec::new();
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if segment::parse_segment_name(name, CLEANED_SUFFIX).is_some() {
            std::fs::remove_file(dir.join(name))?;
            finished.cleaned_discarded += 1;
        } else if let Some(base) = segment::parse_segment_name(name, SWAP_SUFFIX) {
            swaps.push(base);
        } else if let Some(base) = segment::parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        }
    }
    if finished.cleaned_discarded > 0 && swaps.is_empty() {
        sync_dir(dir)?;
    }
    swaps.sort_unstable();
    for base in swaps {
        let path = swap_path(dir, base);
        match offsets_end(&path)? {
            Some(end) => {
                let replaced: Vec<i64> = bases
                    .iter()
                    .copied()
                    .filter(|&b| b >= base && b < end)
                    .chain(std::iter::once(base))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                finish_blocking(dir, base, &replaced)?;
                bases.retain(|b| !replaced.contains(b));
                bases.push(base);
                finished.swaps_completed += 1;
            }
            None => {
                // A committed swap is synced before its rename, so this is damage: keep the
                // old segments (if the crash left them) rather than nothing.
                tracing::error!(path = %path.display(), "a committed cleaned segment holds no batch; discarded");
                std::fs::remove_file(&path)?;
                sync_dir(dir)?;
            }
        }
    }
    Ok(finished)
}

/// The offset after the last whole batch of a segment file, walking batch headers; `None`
/// when it holds none.
fn offsets_end(path: &Path) -> io::Result<Option<i64>> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut position = 0u64;
    let mut end = None;
    let mut header = [0u8; HEADER_LEN];
    while position + HEADER_LEN as u64 <= size {
        file.read_exact_at(&mut header, position)?;
        let Some(len) = declared_total_len(&header) else {
            break;
        };
        if position + len as u64 > size {
            break;
        }
        let parsed = BatchHeader::parse(&header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        end = Some(parsed.last_offset().saturating_add(1));
        position += len as u64;
    }
    Ok(end)
}
