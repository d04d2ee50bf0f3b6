//! Rebuilding producer state when a log opens: the newest snapshot, then every batch after it
//! replayed from the segments (only headers are looked at, and the one record of each control
//! batch). Recovery has already checked and truncated the segments, so what is read here is
//! the log as it will be served.
//!
//! Replay also rebuilds the transaction state: transactional batches open transactions,
//! markers close them, and each ABORT marker replayed gets its entry in its segment's
//! transaction index again (Kafka rebuilds `.txnindex` the same way, replaying producer state
//! through a recovered segment). Entries of markers below the snapshot come from the index
//! files as they were read: each was written, with the other indexes, before any snapshot
//! past it (a seal writes indexes then the snapshot; so does a close). An index file lost or
//! damaged below the snapshot is not rebuilt: its trusted entries are all there is.

use std::collections::BTreeMap;
use std::path::Path;

use super::snapshot;
use super::state::ProducerStates;
use crate::log::batch::{BatchHeader, HEADER_LEN};
use crate::log::error::StorageError;
use crate::log::leader_epochs::LeaderEpochCache;
use crate::log::segment::Segment;
use crate::log::txn::{marker, AbortedTxnEntry, CompletedTxn, EndTxnMarker};

/// Bytes read per step: many small batches' headers per read, one read per large batch.
const WINDOW: usize = 1 << 20;

/// What rebuilding found, for the operator's log and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The offset of the snapshot loaded, if one was.
    pub snapshot_offset: Option<i64>,
    /// Batches replayed after it.
    pub batches_replayed: u64,
    /// Transaction markers among them.
    pub markers_replayed: u64,
    /// Control batches whose record didn't decode (skipped: they end no transaction).
    pub unreadable_control_batches: u64,
}

/// Applies one batch already in the log to `states`, without checks: a batch replayed when a
/// log opens, or one a follower wrote verbatim from its leader (the log is the truth). A data
/// batch updates its producer; a transaction marker (`marker`, decoded by the caller from a
/// control batch) ends the producer's open transaction. Returns the transaction it ended and,
/// for an abort, its entry in the aborted transaction index. One path for both uses, so a
/// follower holds the state reopening its log would rebuild.
pub(crate) fn apply_stored_batch(
    states: &mut ProducerStates,
    header: &BatchHeader,
    marker: Option<EndTxnMarker>,
    now_ms: i64,
) -> Option<(CompletedTxn, Option<AbortedTxnEntry>)> {
    let Some(marker) = marker else {
        // Control batches that are not markers end nothing.
        if !header.is_control() {
            states.replay(header, now_ms);
        }
        return None;
    };
    let done = states.replay_marker(header, marker, now_ms)?;
    let entry = done.aborted.then(|| AbortedTxnEntry {
        producer_id: done.producer_id,
        first_offset: done.first_offset,
        last_offset: done.last_offset,
        last_stable_offset: states.last_stable_offset_after(&done),
    });
    Some((done, entry))
}

/// The producer state of the log whose recovered segments are `segments`, ending at
/// `log_end`. `now_ms` stands for replayed batches' append time (their expiry counts from
/// the restart). With `epochs` (a replicated log's leader epoch cache), replayed batches'
/// partition leader epochs are assigned to it too, as Kafka's recovery does: the cache file
/// is written lazily, so the batches past the last snapshot may know epochs it lost.
pub(crate) async fn rebuild(
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
    log_end: i64,
    now_ms: i64,
    mut epochs: Option<&mut LeaderEpochCache>,
) -> Result<(ProducerStates, RebuildReport), StorageError> {
    let loaded = snapshot::load(dir, log_end)
        .await
        .map_err(|e| StorageError::io("loading the producer snapshot", &e))?;
    let (from, mut states) = loaded.unwrap_or((i64::MIN, ProducerStates::default()));
    let mut report = RebuildReport {
        snapshot_offset: (from != i64::MIN).then_some(from),
        ..RebuildReport::default()
    };
    for segment in segments.values_mut().filter(|s| s.next_offset > from) {
        let Some(file) = segment.log.clone() else {
            continue;
        };
        // The entries from replayed markers are made again below.
        let indexed = std::mem::take(&mut segment.aborted);
        segment.aborted = indexed
            .iter()
            .copied()
            .filter(|a| a.last_offset < from)
            .collect();
        let mut position = u64::from(segment.indexes.offsets.lookup(from).position);
        while position + HEADER_LEN as u64 <= segment.size {
            let window = WINDOW.min((segment.size - position) as usize);
            let (result, bytes) = file
                .read_exact_at(Vec::with_capacity(window), position)
                .await;
            result.map_err(|e| StorageError::io("reading batches for producer state", &e))?;
            let mut at = 0;
            while at + HEADER_LEN <= bytes.len() {
                let Ok(header) = BatchHeader::parse(&bytes[at..]) else {
                    break;
                };
                let Some(len) = header.total_len() else {
                    return Err(StorageError(format!(
                        "impossible batch length at position {} of segment {}",
                        position + at as u64,
                        segment.base_offset
                    )));
                };
                if header.base_offset >= from {
                    let mut marker = None;
                    if header.is_control() {
                        let whole = match bytes.get(at..at + len) {
                            Some(whole) => whole.to_vec(),
                            None => read_batch(&file, position + at as u64, len).await?,
                        };
                        match marker::decode_marker(&whole, &header) {
                            Ok(found) => {
                                report.markers_replayed += u64::from(found.is_some());
                                marker = found;
                            }
                            Err(_) => report.unreadable_control_batches += 1,
                        }
                    }
                    let applied = apply_stored_batch(&mut states, &header, marker, now_ms);
                    if let Some((_, Some(entry))) = applied {
                        segment.aborted.push(entry);
                    }
                    if let Some(epochs) = epochs.as_deref_mut() {
                        epochs.observe_batch(header.partition_leader_epoch, header.base_offset);
                    }
                    report.batches_replayed += 1;
                }
                at += len;
            }
            // `at` may point past this window (a batch larger than what was read): the next
            // read starts at the next batch either way.
            position += at as u64;
        }
        if segment.aborted != indexed {
            segment.indexes_dirty = true;
        }
    }
    Ok((states, report))
}

/// The `len` bytes of the batch at `position` of `file`.
async fn read_batch(
    file: &crate::rt::File,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let (result, bytes) = file.read_exact_at(Vec::with_capacity(len), position).await;
    let read = result.map_err(|e| StorageError::io("reading a control batch", &e))?;
    if read < len {
        return Err(StorageError(format!(
            "a control batch at position {position} runs past its segment"
        )));
    }
    Ok(bytes)
}
