//! The durable form of [`QuorumStorage`]: pure encoding and decoding, the driver does the I/O.
//!
//! # Files
//! - `snapshot`: [`encode_snapshot`] — `[magic "RNLQSNP1"][crc32c u32][meta_len u32]`
//!   `[prost SnapshotMetadata][state machine bytes]`, the CRC covering everything after
//!   itself. Always written as `snapshot.tmp`, fsynced, renamed over `snapshot`, directory
//!   fsynced, so a reader sees the old snapshot or the new one, never half of one.
//! - `wal-<first index, 20 digits>`: an append-only sequence of frames
//!   `[len u32][crc32c u32][kind u8][payload]` (big-endian; `len` counts kind + payload, the
//!   CRC covers kind + payload). Kinds: [`KIND_ENTRIES`] (length-delimited prost `Entry`s,
//!   contiguous; appending at index i drops every entry >= i, as a follower whose log conflicts
//!   with the leader's must), [`KIND_HARD_STATE`], [`KIND_CONF_STATE`] (prost messages).
//!
//! # Rotation (after a snapshot is taken or installed)
//! 1. Write the snapshot file (tmp, fsync, rename, fsync dir).
//! 2. Write the new WAL's head ([`encode_head`]: conf state, entries after the snapshot, hard
//!    state) to `wal-<snapshot index + 1>.tmp`, fsync, rename, fsync dir; appends go there.
//! 3. Remove older `wal-*` files.
//!
//! Recovery reads `snapshot` (if any) and the `wal-*` with the highest first index, ignoring
//! `*.tmp`. A crash between 1 and 2 leaves the new snapshot with the old WAL: its entries up to
//! the snapshot index are skipped, the rest still follows on (nothing is appended to a WAL
//! between a snapshot and its rotation) — unless the old WAL does not hold the snapshot's last
//! entry with its term: then the snapshot was the leader's, installed because our log
//! diverged, and the old WAL's entries after it are dropped. A crash before 1 completes leaves
//! the old pair. Since the old WAL's entries after the snapshot are judged by how it meets
//! the snapshot, nothing may be appended to it either: a restart that found it finishes the
//! rotation (step 2 and 3) before writing anything else ([`Recovered::wal_predates_snapshot`]).
//!
//! # Damage
//! [`recover`] keeps frames up to the first one that is torn (runs past the end), fails its
//! CRC, has an unknown kind or a payload that does not decode, and reports `valid_len`, where
//! the driver truncates the file, as our partition logs do. Valid-looking frames *after* a bad
//! one are cut too: we cannot tell a bit flip in the middle from a torn write that later
//! appends overwrote, and what follows a lost record may depend on it (an entry batch after a
//! missing one would leave a gap). Only unacknowledged writes can be torn, so the cut loses
//! nothing Raft counted; a flip in acknowledged data is a disk fault Raft repairs from peers
//! (the node rejoins with a shorter log). Allocation is bounded by the input: every length is
//! checked against the bytes present before anything is read.

use prost::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};

use super::storage::QuorumStorage;

/// A frame holding a contiguous batch of entries.
pub const KIND_ENTRIES: u8 = 1;
/// A frame holding a `HardState`.
pub const KIND_HARD_STATE: u8 = 2;
/// A frame holding a `ConfState`.
pub const KIND_CONF_STATE: u8 = 3;

const FRAME_HEADER: usize = 8;
const SNAPSHOT_MAGIC: &[u8; 8] = b"RNLQSNP1";

/// The snapshot file's name in the quorum's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// The name of the WAL file whose first entry is `first_index` (sorts by index).
pub fn wal_file_name(first_index: u64) -> String {
    format!("wal-{first_index:020}")
}

/// Why a snapshot or WAL could not be recovered at all (a damaged WAL tail is not an error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalError {
    #[error("snapshot file is damaged: {0}")]
    BadSnapshot(&'static str),
    #[error("wal entries resume at {found} but the log ends at {last}: a record is missing")]
    Gap { last: u64, found: u64 },
}

/// What recovery rebuilt, and how much of the WAL file is sound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    pub storage: QuorumStorage,
    /// Bytes of the WAL that hold whole, valid frames; the driver truncates the file here
    /// before appending.
    pub valid_len: usize,
    /// The WAL is from before the snapshot (a crash between the rotation's two steps): its
    /// log is read only up to the snapshot, so nothing may be appended to it. [`Quorum`]
    /// finishes the rotation with its first output.
    ///
    /// [`Quorum`]: super::Quorum
    pub wal_predates_snapshot: bool,
}

fn frame(kind: u8, payload_len: usize, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&((payload_len + 1) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    write(out);
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Appends an entries frame (nothing for an empty batch).
pub fn encode_entries(entries: &[Entry], out: &mut Vec<u8>) {
    if entries.is_empty() {
        return;
    }
    let len = entries
        .iter()
        .map(|e| {
            let n = e.encoded_len();
            prost::length_delimiter_len(n) + n
        })
        .sum();
    frame(KIND_ENTRIES, len, out, |out| {
        for e in entries {
            e.encode_length_delimited(out)
                .expect("a Vec<u8> grows as needed, so prost cannot run out of room");
        }
    });
}

/// Appends a hard state frame.
pub fn encode_hard_state(hs: &HardState, out: &mut Vec<u8>) {
    frame(KIND_HARD_STATE, hs.encoded_len(), out, |out| {
        hs.encode(out).expect("a Vec<u8> grows as needed");
    });
}

/// Appends a conf state frame.
pub fn encode_conf_state(cs: &ConfState, out: &mut Vec<u8>) {
    frame(KIND_CONF_STATE, cs.encoded_len(), out, |out| {
        cs.encode(out).expect("a Vec<u8> grows as needed");
    });
}

/// The first bytes of a new WAL file after a snapshot: everything the log holds beyond it.
pub fn encode_head(storage: &QuorumStorage) -> Vec<u8> {
    let mut out = Vec::new();
    encode_conf_state(storage.conf_state(), &mut out);
    encode_entries(storage.log_entries(), &mut out);
    encode_hard_state(storage.hard_state(), &mut out);
    out
}

/// The snapshot file's bytes.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let meta = snapshot.metadata.clone().unwrap_or_default();
    let mut out = Vec::with_capacity(16 + meta.encoded_len() + snapshot.data.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(meta.encoded_len() as u32).to_be_bytes());
    meta.encode(&mut out).expect("a Vec<u8> grows as needed");
    out.extend_from_slice(&snapshot.data);
    let crc = crc32c::crc32c(&out[12..]);
    out[8..12].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Reads a snapshot file, checking magic, CRC and metadata.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, WalError> {
    if bytes.len() < 16 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(WalError::BadSnapshot("no snapshot header"));
    }
    let crc = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[12..]) != crc {
        return Err(WalError::BadSnapshot("CRC mismatch"));
    }
    let meta_len = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let rest = &bytes[16..];
    if meta_len > rest.len() {
        return Err(WalError::BadSnapshot("metadata runs past the end"));
    }
    let meta = SnapshotMetadata::decode(&rest[..meta_len])
        .map_err(|_| WalError::BadSnapshot("metadata does not decode"))?;
    if meta.index == 0 || meta.conf_state.as_ref().is_none_or(|c| c.voters.is_empty()) {
        return Err(WalError::BadSnapshot("metadata lacks index or voters"));
    }
    Ok(Snapshot {
        data: rest[meta_len..].to_vec(),
        metadata: Some(meta),
    })
}

enum Record {
    Entries(Vec<Entry>),
    HardState(HardState),
    ConfState(ConfState),
}

/// Reads the frame at the start of `buf`: `Some((record, frame length))`, or `None` when it
/// is torn, corrupt or unknown.
fn read_frame(buf: &[u8]) -> Option<(Record, usize)> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(buf.get(4..8)?.try_into().ok()?);
    let body = buf.get(FRAME_HEADER..FRAME_HEADER.checked_add(len)?)?;
    if len == 0 || crc32c::crc32c(body) != crc {
        return None;
    }
    let payload = &body[1..];
    let record = match body[0] {
        KIND_ENTRIES => Record::Entries(decode_entries(payload)?),
        KIND_HARD_STATE => Record::HardState(HardState::decode(payload).ok()?),
        KIND_CONF_STATE => Record::ConfState(ConfState::decode(payload).ok()?),
        _ => return None,
    };
    Some((record, FRAME_HEADER + len))
}

/// A non-empty contiguous batch of entries with known types.
fn decode_entries(mut payload: &[u8]) -> Option<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    while !payload.is_empty() {
        let e = Entry::decode_length_delimited(&mut payload).ok()?;
        EntryType::from_i32(e.entry_type)?;
        if let Some(prev) = entries.last() {
            if e.index != prev.index.checked_add(1)? || e.term < prev.term {
                return None;
            }
        }
        entries.push(e);
    }
    (!entries.is_empty()).then_some(entries)
}

/// Rebuilds the log from the snapshot file (if any) and the current WAL file.
pub fn recover(snapshot: Option<&[u8]>, wal: &[u8]) -> Result<Recovered, WalError> {
    let mut storage = QuorumStorage::default();
    if let Some(bytes) = snapshot {
        storage
            .apply_snapshot(decode_snapshot(bytes)?)
            .map_err(|_| WalError::BadSnapshot("snapshot does not apply"))?;
    }
    let (snap_index, snap_term) = storage
        .latest_snapshot()
        .metadata
        .as_ref()
        .map_or((0, None), |m| (m.index, Some(m.term)));
    // Whether the WAL's log runs through the snapshot's last entry. A WAL that started after
    // the snapshot never touches it; the WAL from before a snapshot either holds that entry
    // (we compacted our own log) or diverges there (the leader's snapshot replaced our log).
    let mut continues_snapshot = true;
    let mut wal_predates_snapshot = false;
    let mut pos = 0;
    while let Some((record, len)) = read_frame(&wal[pos..]) {
        match record {
            Record::Entries(ents) => {
                if snap_index > 0 && ents[0].index <= snap_index {
                    wal_predates_snapshot = true;
                    continues_snapshot = ents
                        .iter()
                        .find(|e| e.index == snap_index)
                        .is_some_and(|e| Some(e.term) == snap_term);
                }
                let last = storage.last();
                if let Some(first) = ents.iter().find(|e| e.index > storage.first() - 1) {
                    if first.index > last + 1 {
                        return Err(WalError::Gap {
                            last,
                            found: first.index,
                        });
                    }
                }
                storage
                    .append(&ents)
                    .expect("contiguous entries without a gap always append");
            }
            Record::HardState(hs) => storage.set_hard_state(hs),
            Record::ConfState(cs) => storage.set_conf_state(cs),
        }
        pos += len;
    }
    if !continues_snapshot {
        // Entries after an installed snapshot in the WAL from before it are the old,
        // divergent log (nothing is appended between a snapshot and its rotation).
        storage.truncate(snap_index + 1);
    }
    // A WAL older than the snapshot (crash between its two rotation steps) may hold a hard
    // state from before it, and a torn write may keep a batch of entries but lose the hard
    // state written after it. Raft's term is never below its log's (raft-rs even panics
    // answering a vote at term 0), so raise it; the vote goes, since a vote is sent only
    // once durable and none was for that term.
    let mut hs = storage.hard_state().clone();
    let last_term = storage.log_entries().last().map(|e| e.term).or(snap_term);
    if let Some(term) = last_term.filter(|t| *t > hs.term) {
        hs.term = term;
        hs.vote = 0;
    }
    hs.commit = hs.commit.clamp(storage.first() - 1, storage.last());
    storage.set_hard_state(hs);
    Ok(Recovered {
        storage,
        valid_len: pos,
        wal_predates_snapshot,
    })
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
