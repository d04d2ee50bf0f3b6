//! Rebuilding producer state when a log opens: the newest snapshot, then every batch after it
//! replayed from the segments (only headers are looked at). Recovery has already checked and
//! truncated the segments, so what is read here is the log as it will be served.

use std::collections::BTreeMap;
use std::path::Path;

use super::snapshot;
use super::state::ProducerStates;
use crate::log::batch::{BatchHeader, HEADER_LEN};
use crate::log::error::StorageError;
use crate::log::segment::Segment;

/// Bytes read per step: many small batches' headers per read, one read per large batch.
const WINDOW: usize = 1 << 20;

/// What rebuilding found, for the operator's log and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The offset of the snapshot loaded, if one was.
    pub snapshot_offset: Option<i64>,
    /// Batches replayed after it.
    pub batches_replayed: u64,
}

/// The producer state of the log whose recovered segments are `segments`, ending at
/// `log_end`. `now_ms` stands for replayed batches' append time (their expiry counts from
/// the restart).
pub(crate) async fn rebuild(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_end: i64,
    now_ms: i64,
) -> Result<(ProducerStates, RebuildReport), StorageError> {
    let loaded = snapshot::load(dir, log_end)
        .await
        .map_err(|e| StorageError::io("loading the producer snapshot", &e))?;
    let (from, mut states) = loaded.unwrap_or((i64::MIN, ProducerStates::default()));
    let mut report = RebuildReport {
        snapshot_offset: (from != i64::MIN).then_some(from),
        batches_replayed: 0,
    };
    for segment in segments.values().filter(|s| s.next_offset > from) {
        let Some(file) = &segment.log else { continue };
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
                    states.replay(&header, now_ms);
                    report.batches_replayed += 1;
                }
                at += len;
            }
            // `at` may point past this window (a batch larger than what was read): the next
            // read starts at the next batch either way.
            position += at as u64;
        }
    }
    Ok((states, report))
}
