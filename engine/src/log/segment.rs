//! One segment: a `.log` file of record batches and its two sparse indexes, named by the
//! segment's 20-digit base offset as in Kafka (`00000000000000001234.log`).
//!
//! The log file is written as batches are appended. The index files are written whole when
//! the segment is sealed (rolled) or the log closes; until then the indexes live in memory,
//! and after a crash recovery rebuilds them from the log (it scans every segment past the
//! last checkpoint anyway), so index writes never sit on the append path.
//!
//! The aborted transaction index (`.txnindex`, [`crate::log::txn::index`]) follows the same
//! rule: its entries live in memory ([`Segment::aborted`]) and are written whole with the
//! other indexes; the file exists only when the segment holds an ABORT marker, as in Kafka.
//!
//! Files are created, opened and removed through [`rt::fs`](crate::rt::fs), off the shard
//! thread. A roll can't wait for that (offsets are assigned when an append is called), so a
//! rolled segment exists in memory before its files do: see [`Segment::pending`].

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::index::{OffsetIndex, SegmentIndexes, TimeIndex, TimestampOffset};
use super::txn::{index as txn_index, AbortedTxnEntry};
use crate::rt::{self, File};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
pub const TXN_INDEX_SUFFIX: &str = "txnindex";

/// `dir/<20-digit base>.<suffix>`.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The base offset a segment file name stands for, if it is one of ours with `suffix`.
pub fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A segment's files and in-memory state. Owned by its log, on the log's shard.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    /// Shared with reads in flight, so a deleted segment stays readable until they finish.
    /// `None` while a roll's creation of the file is under way: nothing in the segment is
    /// written (readable, syncable) before it exists.
    pub log: Option<Rc<File>>,
    /// Bytes assigned to appends (some may still be in flight).
    pub size: u64,
    /// Bytes from the start whose writes have all completed: what readers may see.
    pub written: u64,
    /// Offset after the last batch assigned to this segment.
    pub next_offset: i64,
    pub indexes: SegmentIndexes,
    /// When the first batch was appended (for `segment.ms`); `None` while empty.
    pub first_append_ms: Option<i64>,
    /// The index files lag the in-memory indexes.
    pub indexes_dirty: bool,
    /// fallocate'd up to here (beyond `size`).
    pub preallocated_to: u64,
    /// The transactions aborted by markers in this segment, in marker order: its
    /// `.txnindex`. Changing it sets `indexes_dirty`.
    pub aborted: Vec<AbortedTxnEntry>,
}

impl Segment {
    /// Creates a new, empty segment with its files.
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: usize,
    ) -> io::Result<Self> {
        let log = Self::create_files(dir, base_offset).await?;
        Ok(Segment {
            log: Some(Rc::new(log)),
            ..Self::pending(base_offset, index_interval_bytes)
        })
    }

    /// A new, empty segment whose files are still to be made with
    /// [`create_files`](Self::create_files).
    pub fn pending(base_offset: i64, index_interval_bytes: usize) -> Self {
        Segment {
            base_offset,
            log: None,
            size: 0,
            written: 0,
            next_offset: base_offset,
            indexes: SegmentIndexes::new(base_offset, index_interval_bytes),
            first_append_ms: None,
            indexes_dirty: false,
            preallocated_to: 0,
            aborted: Vec::new(),
        }
    }

    /// Creates a segment's three files (replacing leftovers of a deleted one); returns the log
    /// file. Not durable until the directory is synced.
    pub async fn create_files(dir: &Path, base_offset: i64) -> io::Result<File> {
        let log = rt::fs::create_file(segment_path(dir, base_offset, LOG_SUFFIX)).await?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            rt::fs::create_file(segment_path(dir, base_offset, suffix)).await?;
        }
        Ok(log)
    }

    /// Opens an existing segment's log file for reading and appending.
    pub async fn open_log(dir: &Path, base_offset: i64) -> io::Result<File> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true);
        rt::fs::open_file(segment_path(dir, base_offset, LOG_SUFFIX), options).await
    }

    /// Reads the index files; `None` when either is missing or malformed (rebuild them).
    /// Blocking: run it on the pool.
    pub fn read_indexes(dir: &Path, base_offset: i64) -> Option<(OffsetIndex, TimeIndex)> {
        let offsets = std::fs::read(segment_path(dir, base_offset, INDEX_SUFFIX)).ok()?;
        let times = std::fs::read(segment_path(dir, base_offset, TIME_INDEX_SUFFIX)).ok()?;
        Some((
            OffsetIndex::decode(base_offset, &offsets).ok()?,
            TimeIndex::decode(base_offset, &times).ok()?,
        ))
    }

    /// Reads the aborted transaction index: its trusted entries and how many bytes past them
    /// were damaged (cut off when the index is next written). A missing file is an empty
    /// index. Blocking: run it on the pool.
    pub fn read_txn_index(dir: &Path, base_offset: i64) -> io::Result<txn_index::Decoded> {
        match std::fs::read(segment_path(dir, base_offset, TXN_INDEX_SUFFIX)) {
            Ok(bytes) => Ok(txn_index::decode(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(txn_index::Decoded::default()),
            Err(e) => Err(e),
        }
    }

    /// The next range to fallocate once an append passed the reserved space: `step` bytes at a
    /// time, never past `limit` (segment.bytes) unless the data already is.
    pub fn next_preallocation(&mut self, step: u64, limit: u64) -> Option<(u64, u64)> {
        if step == 0 || self.size <= self.preallocated_to {
            return None;
        }
        let from = self.preallocated_to;
        let until = (from + step).min(limit).max(self.size);
        self.preallocated_to = until;
        Some((from, until - from))
    }

    /// The segment's newest timestamp and where it was seen.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        self.indexes.max_timestamp
    }

    /// Encodes both indexes, the time index sealed with the segment's maximum, to be written
    /// without holding the log's state.
    pub fn index_snapshot(&mut self) -> IndexSnapshot {
        self.indexes.note_max_in_time_index();
        IndexSnapshot {
            base_offset: self.base_offset,
            offsets: self.indexes.offsets.encode(),
            times: self.indexes.times.encode(),
            txns: txn_index::encode(&self.aborted),
            txn_file_always: false,
        }
    }
}

/// Encoded index files of one segment, ready to write without holding the log's state.
#[derive(Debug)]
pub(crate) struct IndexSnapshot {
    pub base_offset: i64,
    offsets: Vec<u8>,
    times: Vec<u8>,
    /// The `.txnindex`; empty: no file, unless `txn_file_always`.
    txns: Vec<u8>,
    txn_file_always: bool,
}

impl IndexSnapshot {
    /// Writes the transaction index even when it is empty (a cleaned segment's: see
    /// [`swap`](crate::log::compaction::swap)).
    pub fn with_txn_file_always(mut self) -> Self {
        self.txn_file_always = true;
        self
    }

    /// Writes and syncs both index files.
    pub async fn write(self, dir: &Path) -> io::Result<()> {
        let base = self.base_offset;
        self.write_to(|suffix| segment_path(dir, base, suffix))
            .await
    }

    /// Writes and syncs the index files where `path_of` their suffix says. An empty
    /// transaction index is no file: one left from before (a truncation removed its
    /// entries) is removed.
    pub async fn write_to(self, path_of: impl Fn(&str) -> PathBuf) -> io::Result<()> {
        let keep_txns = self.txn_file_always || !self.txns.is_empty();
        if !keep_txns {
            match rt::fs::remove_file(path_of(TXN_INDEX_SUFFIX)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let txns = keep_txns.then_some((TXN_INDEX_SUFFIX, self.txns));
        for (suffix, bytes) in [
            (INDEX_SUFFIX, self.offsets),
            (TIME_INDEX_SUFFIX, self.times),
        ]
        .into_iter()
        .chain(txns)
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true);
            let file = rt::fs::open_file(path_of(suffix), options).await?;
            let len = bytes.len() as u64;
            let (result, _) = file.write_all_at(bytes, 0).await;
            result?;
            file.set_len(len)?;
            file.fdatasync().await?;
            file.close().await?;
        }
        Ok(())
    }
}

/// Gives back the blocks fallocate reserved past a segment's data.
pub(crate) async fn release_preallocation(file: &File, size: u64, preallocated_to: u64) {
    if preallocated_to > size {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // Best effort: the space is only wasted, never wrong.
        let _ = file.fallocate(mode, size, preallocated_to - size).await;
    }
}

/// Removes a segment's files, its transaction index included (missing ones are fine). Not
/// durable until the directory is synced.
pub(crate) async fn remove_segment_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        match rt::fs::remove_file(segment_path(dir, base_offset, suffix)).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let path = segment_path(Path::new("/d"), 1234, LOG_SUFFIX);
        assert_eq!(path, Path::new("/d/00000000000000001234.log"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_segment_name(name, LOG_SUFFIX), Some(1234));
        assert_eq!(parse_segment_name(name, INDEX_SUFFIX), None);
        assert_eq!(parse_segment_name("1234.log", LOG_SUFFIX), None);
        assert_eq!(
            parse_segment_name("0000000000000000123x.log", LOG_SUFFIX),
            None
        );
        assert_eq!(
            parse_segment_name("99999999999999999999.log", LOG_SUFFIX),
            None,
            "beyond i64"
        );
    }
}
