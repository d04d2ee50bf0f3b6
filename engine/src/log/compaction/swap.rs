//! Replacing segments with their cleaned copy so that a crash at any step leaves either the
//! old segments or the cleaned one, never a mix and never neither (Kafka's `.cleaned` and
//! `.swap` files).
//!
//! A pass writes a group of segments' cleaned copy, its log and its indexes, to
//! `<first base>.{log,index,timeindex,txnindex}.cleaned` and syncs them; then:
//! 1. renames the indexes to `.swap`, then the log (the commit point), and syncs the
//!    directory;
//! 2. removes the group's other segments' files;
//! 3. renames the indexes, then the log, over `<first base>.*`, and syncs the directory.
//!
//! Opening a log finishes what a crash interrupted: `.cleaned` files are an uncommitted pass,
//! deleted, as are index `.swap` files without a log `.swap`; a log `.swap` file is a
//! committed pass, finished from step 2. The segments it replaces are those whose base lies
//! within its offsets: a cleaned group keeps its last batch, so the swap file's offsets end
//! where the group's did. An index missing its `.swap` then (already renamed, or never) is
//! removed if stale and rebuilt by recovery's scan.
//!
//! The transaction index can't be rebuilt by a scan (an abort's entry needs the producer
//! state of its time), so a pass always writes one, empty if need be: a missing `.swap` of it
//! then means it was already renamed, and the file in place is kept. (A swap left by a
//! version that wrote none keeps the first segment's own, still true of its offsets.)

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::batch::{declared_total_len, BatchHeader, HEADER_LEN};
use crate::log::segment::{self, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX};

const CLEANED: &str = "cleaned";
const SWAP: &str = "swap";
const INDEXES: [&str; 3] = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX];
const ALL: [&str; 4] = [
    LOG_SUFFIX,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
];

/// `<base>.<suffix>.cleaned`: where a pass writes the cleaned copy of a segment's file.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    segment::segment_path(dir, base, &format!("{suffix}.{CLEANED}"))
}

fn swap_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    segment::segment_path(dir, base, &format!("{suffix}.{SWAP}"))
}

/// Removes the cleaned files of an abandoned group at `base` (missing ones are fine).
pub(crate) fn discard_cleaned_blocking(dir: &Path, base: i64) -> io::Result<()> {
    for suffix in ALL {
        remove_if_present(&cleaned_path(dir, base, suffix))?;
    }
    Ok(())
}

/// Steps 1 to 3 for the group `replaced` (ascending, starting with the cleaned copy's base),
/// whose cleaned files are written and synced. Blocking: run it on the pool, as one job,
/// since the steps only make sense in order.
pub(crate) fn commit_blocking(dir: &Path, replaced: &[i64]) -> io::Result<()> {
    let base = replaced[0];
    for suffix in INDEXES {
        match std::fs::rename(
            cleaned_path(dir, base, suffix),
            swap_path(dir, base, suffix),
        ) {
            Ok(()) => {}
            // Written by every pass, but a cleaned copy without one stays usable.
            Err(e) if e.kind() == io::ErrorKind::NotFound && suffix == TXN_INDEX_SUFFIX => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::rename(
        cleaned_path(dir, base, LOG_SUFFIX),
        swap_path(dir, base, LOG_SUFFIX),
    )?;
    sync_dir(dir)?;
    finish_blocking(dir, base, replaced)
}

/// Steps 2 and 3: the swap files at `base` replace the segments `replaced`.
fn finish_blocking(dir: &Path, base: i64, replaced: &[i64]) -> io::Result<()> {
    for &old in replaced.iter().filter(|&&old| old != base) {
        for suffix in ALL {
            remove_if_present(&segment::segment_path(dir, old, suffix))?;
        }
    }
    for suffix in INDEXES {
        let target = segment::segment_path(dir, base, suffix);
        match std::fs::rename(swap_path(dir, base, suffix), &target) {
            Ok(()) => {}
            // The transaction index was renamed by an earlier attempt (see above).
            Err(e) if e.kind() == io::ErrorKind::NotFound && suffix == TXN_INDEX_SUFFIX => {}
            // Renamed by an earlier attempt, or lost: whatever is there may describe the old
            // log; recovery rebuilds a missing index.
            Err(e) if e.kind() == io::ErrorKind::NotFound => remove_if_present(&target)?,
            Err(e) => return Err(e),
        }
    }
    std::fs::rename(
        swap_path(dir, base, LOG_SUFFIX),
        segment::segment_path(dir, base, LOG_SUFFIX),
    )?;
    sync_dir(dir)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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
    let mut log_swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{CLEANED}")) {
            std::fs::remove_file(dir.join(name))?;
            finished.cleaned_discarded += 1;
        } else if let Some(base) =
            segment::parse_segment_name(name, &format!("{LOG_SUFFIX}.{SWAP}"))
        {
            log_swaps.push(base);
        } else if name.ends_with(&format!(".{SWAP}")) {
            index_swaps.push(name.to_owned());
        } else if let Some(base) = segment::parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        }
    }
    // Index swaps without their log's: the commit never happened.
    for name in index_swaps {
        let committed = INDEXES.iter().any(|suffix| {
            segment::parse_segment_name(&name, &format!("{suffix}.{SWAP}"))
                .is_some_and(|base| log_swaps.contains(&base))
        });
        if !committed {
            std::fs::remove_file(dir.join(&name))?;
            finished.cleaned_discarded += 1;
        }
    }
    if finished.cleaned_discarded > 0 && log_swaps.is_empty() {
        sync_dir(dir)?;
    }
    log_swaps.sort_unstable();
    for base in log_swaps {
        let end = offsets_end(&swap_path(dir, base, LOG_SUFFIX))?;
        let mut replaced: Vec<i64> = bases
            .iter()
            .copied()
            .filter(|&b| b > base && b < end)
            .collect();
        replaced.insert(0, base);
        finish_blocking(dir, base, &replaced)?;
        bases.retain(|b| !replaced.contains(b));
        bases.push(base);
        finished.swaps_completed += 1;
    }
    Ok(finished)
}

/// The offset after the last batch of a committed swap file, walking its batch headers. It
/// was synced before its commit, so anything but whole batches to its end is damage: refused
/// (the partition stays offline for the operator) rather than guessed at, since a wrong end
/// would keep replaced segments beside the one that replaces them.
fn offsets_end(path: &Path) -> io::Result<i64> {
    let damaged = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("committed cleaned segment {}: {what}", path.display()),
        )
    };
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut position = 0u64;
    let mut end = None;
    let mut header = [0u8; HEADER_LEN];
    while position < size {
        if position + HEADER_LEN as u64 > size {
            return Err(damaged("a torn batch header at its end"));
        }
        file.read_exact_at(&mut header, position)?;
        let len = declared_total_len(&header).ok_or_else(|| damaged("a bad batch length"))?;
        if position + len as u64 > size {
            return Err(damaged("a batch runs past its end"));
        }
        let parsed = BatchHeader::parse(&header).map_err(|e| damaged(&e.to_string()))?;
        end = Some(parsed.last_offset().saturating_add(1));
        position += len as u64;
    }
    end.ok_or_else(|| damaged("no batch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::set_base_offset;
    use crate::log::builder::sample_batch;

    /// Two batches of 10 records at `base` and `base + 10`.
    fn log_bytes(base: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        for at in [base, base + 10] {
            let mut batch = sample_batch(10, 10, 1_000);
            set_base_offset(&mut batch, at);
            bytes.extend_from_slice(&batch);
        }
        bytes
    }

    fn put(path: PathBuf, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    /// Segments 0 and 20, each with its files and a `.txnindex` saying which it is.
    fn old_segments(dir: &Path) {
        for base in [0, 20] {
            put(
                segment::segment_path(dir, base, LOG_SUFFIX),
                &log_bytes(base),
            );
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                put(segment::segment_path(dir, base, suffix), &[]);
            }
            let old = format!("old{base}");
            put(
                segment::segment_path(dir, base, TXN_INDEX_SUFFIX),
                old.as_bytes(),
            );
        }
    }

    fn txn_index(dir: &Path, base: i64) -> Option<Vec<u8>> {
        std::fs::read(segment::segment_path(dir, base, TXN_INDEX_SUFFIX)).ok()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect()
    }

    #[test]
    fn the_cleaned_transaction_index_replaces_the_groups() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        old_segments(dir);
        let mut cleaned = log_bytes(0);
        cleaned.extend_from_slice(&log_bytes(20));
        put(cleaned_path(dir, 0, LOG_SUFFIX), &cleaned);
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            put(cleaned_path(dir, 0, suffix), &[]);
        }
        put(cleaned_path(dir, 0, TXN_INDEX_SUFFIX), b"new");
        commit_blocking(dir, &[0, 20]).unwrap();
        assert_eq!(txn_index(dir, 0).as_deref(), Some(&b"new"[..]));
        assert_eq!(txn_index(dir, 20), None, "the merged segment's went");
        assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
    }

    #[test]
    fn a_finish_after_the_transaction_index_was_renamed_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        old_segments(dir);
        let mut cleaned = log_bytes(0);
        cleaned.extend_from_slice(&log_bytes(20));
        // Committed; the indexes were renamed into place before the crash.
        put(swap_path(dir, 0, LOG_SUFFIX), &cleaned);
        put(segment::segment_path(dir, 0, TXN_INDEX_SUFFIX), b"new");
        let finished = finish_interrupted_blocking(dir).unwrap();
        assert_eq!(finished.swaps_completed, 1);
        assert_eq!(txn_index(dir, 0).as_deref(), Some(&b"new"[..]));
        assert_eq!(txn_index(dir, 20), None);
        assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
    }

    #[test]
    fn an_uncommitted_transaction_index_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        old_segments(dir);
        put(cleaned_path(dir, 0, LOG_SUFFIX), &log_bytes(0));
        put(swap_path(dir, 0, TXN_INDEX_SUFFIX), b"new");
        let finished = finish_interrupted_blocking(dir).unwrap();
        assert_eq!(finished.swaps_completed, 0);
        assert_eq!(txn_index(dir, 0).as_deref(), Some(&b"old0"[..]));
        assert_eq!(txn_index(dir, 20).as_deref(), Some(&b"old20"[..]));
        assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
    }
}
