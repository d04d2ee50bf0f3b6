//! Producer state snapshots: `<20-digit offset>.snapshot` files in the partition directory, as
//! Kafka names them, each holding every producer's state as of that offset (all batches below
//! it applied). Opening a log loads the newest snapshot at or below the log's end and replays
//! only the batches after it, instead of the whole log.
//!
//! The contents are Runnel's own (Kafka's format keeps only each producer's last batch; this
//! keeps all [`RETAINED_BATCHES`](super::RETAINED_BATCHES), so retries of any in-flight batch
//! are still recognised after a restart). Big-endian, version 2:
//!
//! ```text
//! version u16 | crc32c u32 (of everything after it) | producers u32 |
//!   { producer_id i64 | epoch i16 | last_append_ms i64 |
//!     current_txn_first_offset i64 (-1: no open transaction) | coordinator_epoch i32 |
//!     batches u8 |
//!     { first_seq i32 | last_seq i32 | first_offset i64 | last_offset i64 | max_timestamp i64 }* }*
//! ```
//!
//! Version 1 (before transactions) lacks the two transaction fields; it is still read, as
//! producers without an open transaction or a coordinator epoch.
//!
//! Transactions completed but not yet stable (marker above the high watermark) are not kept:
//! a snapshot describes durable data and a log opens with its high watermark at its end, so
//! none are left then.
//!
//! A snapshot is written only once the log is durable up to its offset (after a segment's
//! seal, or at close), so recovery never finds the log ending below the newest snapshot unless
//! the disk lost synced data; then the snapshot is discarded and an older one (or a full
//! replay) is used.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use super::state::{BatchMetadata, ProducerEntry, ProducerStates, RETAINED_BATCHES};
use crate::log::segment;
use crate::rt;

pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
const VERSION: u16 = 2;
const VERSION_1: u16 = 1;
const HEADER_LEN: usize = 2 + 4 + 4;
/// A version 1 entry's fixed part: the smallest an entry can be.
const ENTRY_HEADER_LEN: usize = 8 + 2 + 8 + 1;
const TXN_FIELDS_LEN: usize = 8 + 4;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// Snapshots kept: the newest, and one before it in case the newest turns out unreadable.
const KEPT: usize = 2;

/// Why a snapshot file can't be used (recovery then falls back to an older one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("producer snapshot: {0}")]
pub struct SnapshotError(&'static str);

pub fn encode(states: &ProducerStates) -> Vec<u8> {
    let mut body =
        Vec::with_capacity(4 + states.len() * (ENTRY_HEADER_LEN + TXN_FIELDS_LEN + BATCH_LEN));
    body.extend_from_slice(&(states.len() as u32).to_be_bytes());
    let mut entries: Vec<_> = states.iter().collect();
    // Deterministic files: the same state always writes the same bytes.
    entries.sort_unstable_by_key(|(id, _)| *id);
    for (producer_id, entry) in entries {
        body.extend_from_slice(&producer_id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&entry.last_append_ms.to_be_bytes());
        let txn_first = entry.current_txn_first_offset.unwrap_or(-1);
        body.extend_from_slice(&txn_first.to_be_bytes());
        body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        body.push(entry.batches.len() as u8);
        for b in &entry.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
            body.extend_from_slice(&b.max_timestamp.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if self.0.len() < N {
            return Err(SnapshotError("truncated"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

pub fn decode(bytes: &[u8]) -> Result<ProducerStates, SnapshotError> {
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotError("shorter than its header"));
    }
    let mut r = Reader(bytes);
    let version = r.i16()? as u16;
    if version != VERSION && version != VERSION_1 {
        return Err(SnapshotError("unknown version"));
    }
    let crc = r.u32()?;
    if crc32c::crc32c(r.0) != crc {
        return Err(SnapshotError("CRC mismatch"));
    }
    let count = r.u32()? as usize;
    // Every entry takes at least its header: a count the file can't hold is corrupt, and is
    // refused before anything is allocated for it.
    if count > r.0.len() / ENTRY_HEADER_LEN {
        return Err(SnapshotError("more producers than the file holds"));
    }
    let mut states = ProducerStates::default();
    for _ in 0..count {
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let last_append_ms = r.i64()?;
        let (txn_first, coordinator_epoch) = if version == VERSION_1 {
            (-1, -1)
        } else {
            (r.i64()?, r.i32()?)
        };
        if txn_first < -1 {
            return Err(SnapshotError("a negative transaction offset"));
        }
        let batches = usize::from(r.u8()?);
        if batches > RETAINED_BATCHES {
            return Err(SnapshotError("more batches than a producer keeps"));
        }
        let mut entry = ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(batches),
            last_append_ms,
            current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
            coordinator_epoch,
        };
        for _ in 0..batches {
            entry.batches.push_back(BatchMetadata {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
                max_timestamp: r.i64()?,
            });
        }
        states.insert(producer_id, entry);
    }
    if !r.0.is_empty() {
        return Err(SnapshotError("trailing bytes"));
    }
    Ok(states)
}

fn file_name(offset: i64) -> String {
    format!("{offset:020}.{SNAPSHOT_SUFFIX}")
}

/// The offsets of the snapshot files in `dir`, oldest first.
fn list_blocking(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(offset) = name
            .to_str()
            .and_then(|n| segment::parse_segment_name(n, SNAPSHOT_SUFFIX))
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot of `states` as of `offset` (durably, replacing atomically), then
/// removes all but the newest [`KEPT`].
pub async fn write(dir: &Path, offset: i64, states: Vec<u8>) -> io::Result<()> {
    rt::fs::replace_atomically(dir, &file_name(offset), states).await?;
    let dir = dir.to_path_buf();
    rt::unblock(move || {
        let offsets = list_blocking(&dir)?;
        let excess = offsets.len().saturating_sub(KEPT);
        for old in &offsets[..excess] {
            // Two seals close together (tiny segments) can both clean up the same old one.
            match std::fs::remove_file(dir.join(file_name(*old))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
    .await
}

/// Removes every snapshot (the log was emptied and restarted elsewhere: none describes it).
pub async fn remove_all(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    rt::unblock(move || {
        for offset in list_blocking(&dir)? {
            match std::fs::remove_file(dir.join(file_name(offset))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
    .await
}

/// The newest usable snapshot at or below `log_end`: its offset and states. Snapshots past
/// the end (the log lost data they describe) and unreadable ones are removed.
pub async fn load(dir: &Path, log_end: i64) -> io::Result<Option<(i64, ProducerStates)>> {
    let dir = dir.to_path_buf();
    rt::unblock(move || {
        let mut offsets = list_blocking(&dir)?;
        while let Some(offset) = offsets.pop() {
            let path = dir.join(file_name(offset));
            if offset <= log_end {
                match decode(&std::fs::read(&path)?) {
                    Ok(states) => return Ok(Some((offset, states))),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable producer snapshot");
                    }
                }
            }
            std::fs::remove_file(&path)?;
        }
        Ok(None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::BatchHeader;

    fn sample() -> ProducerStates {
        let mut states = ProducerStates::default();
        for (pid, epoch, batches) in [(7, 0, 5), (9, 3, 1), (11, 1, 0)] {
            let mut offset = 0;
            for seq in 0..batches {
                let header = BatchHeader {
                    base_offset: offset,
                    batch_length: 100,
                    partition_leader_epoch: 0,
                    magic: 2,
                    crc: 0,
                    attributes: 0,
                    last_offset_delta: 1,
                    base_timestamp: 5,
                    max_timestamp: 6,
                    producer_id: pid,
                    producer_epoch: epoch,
                    base_sequence: seq * 2,
                    records_count: 2,
                };
                states.replay(&header, 42);
                offset += 2;
            }
            if batches == 0 {
                states.insert(
                    pid,
                    ProducerEntry {
                        epoch,
                        batches: VecDeque::new(),
                        last_append_ms: 1,
                        current_txn_first_offset: Some(40),
                        coordinator_epoch: 6,
                    },
                );
            }
        }
        states
    }

    /// `states` in version 1 (what Runnel wrote before transactions).
    fn encode_v1(states: &ProducerStates) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(states.len() as u32).to_be_bytes());
        let mut entries: Vec<_> = states.iter().collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        for (producer_id, entry) in entries {
            body.extend_from_slice(&producer_id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_append_ms.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                for v in [b.first_seq, b.last_seq] {
                    body.extend_from_slice(&v.to_be_bytes());
                }
                for v in [b.first_offset, b.last_offset, b.max_timestamp] {
                    body.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        let mut out = VERSION_1.to_be_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn version_1_is_read_as_producers_without_transactions() {
        let mut states = sample();
        let mut v1 = ProducerStates::default();
        for (pid, entry) in states.iter() {
            let mut entry = entry.clone();
            entry.current_txn_first_offset = None;
            entry.coordinator_epoch = -1;
            v1.insert(pid, entry);
        }
        assert_eq!(decode(&encode_v1(&states)).unwrap(), v1);
        assert_eq!(v1.first_open_txn_offset(), None);
        // And version 2 keeps the open transaction, indexed.
        states = decode(&encode(&states)).unwrap();
        assert_eq!(states.first_open_txn_offset(), Some(40));
        assert_eq!(states.get(11).unwrap().coordinator_epoch, 6);
    }

    #[test]
    fn encode_then_decode_is_the_same_state() {
        let states = sample();
        assert_eq!(decode(&encode(&states)).unwrap(), states);
        assert_eq!(
            decode(&encode(&ProducerStates::default())).unwrap(),
            ProducerStates::default()
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "truncated to {len} accepted"
            );
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "flipped byte {at} accepted");
        }
    }

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        let body = u32::MAX.to_be_bytes();
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        assert!(decode(&bytes).is_err());
    }
}
