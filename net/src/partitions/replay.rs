//! Reading a partition's log from its start, batch by batch, decoded: how a coordinator takes
//! over a partition of its internal topic (`__consumer_offsets`, `__transaction_state`) and
//! rebuilds its state from the records.
//!
//! Reads go in bounded windows ([`WINDOW`]); a batch cut off at a window's end is read again
//! from its start in the next. Records below the log start offset (in the first batch, after
//! DeleteRecords) are left out. A batch that can't be decoded stops the replay with an error
//! once everything before it was visited: a coordinator must not serve from a state it
//! couldn't finish reading.

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use runnel_engine::log::batch::{declared_total_len, BatchHeader, HEADER_LEN};
use runnel_engine::log::Log;

/// Bytes read at a time.
const WINDOW: u64 = 1 << 20;

/// Why a replay stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the log at offset {offset}: {reason}")]
    Read { offset: i64, reason: String },
    #[error("the batch at offset {offset} can't be decoded")]
    Undecodable { offset: i64 },
}

/// What a replay went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub batches: u64,
    pub records: u64,
}

/// Visits every batch of `log` from its log start offset to the end of what is written, in
/// log order, with its decoded records (those at or above the log start offset). A new leader
/// loads what it holds past the high watermark too, as Kafka's coordinators read to the log
/// end: that is the log its followers are about to copy.
pub async fn replay(
    log: &Log,
    mut visit: impl FnMut(&BatchHeader, Vec<Record>),
) -> Result<Replayed, ReplayError> {
    let start = log.log_start_offset();
    let end = log.written_end();
    let mut offset = start;
    let mut replayed = Replayed::default();
    while offset < end {
        let failed = |e: &dyn std::fmt::Display| ReplayError::Read {
            offset,
            reason: e.to_string(),
        };
        let read = log
            .read_replica(offset, WINDOW)
            .await
            .map_err(|e| failed(&e))?;
        let bytes = Bytes::from(read.copy_out().await.map_err(|e| failed(&e))?);
        let mut at = 0;
        let mut next = offset;
        while let Some(len) = whole_batch_len(&bytes[at..]) {
            let Ok(header) = BatchHeader::parse(&bytes[at..]) else {
                return Err(ReplayError::Undecodable { offset: next });
            };
            let mut batch = bytes.slice(at..at + len);
            at += len;
            let Ok(set) = RecordBatchDecoder::decode(&mut batch) else {
                return Err(ReplayError::Undecodable {
                    offset: header.base_offset,
                });
            };
            // Compaction keeps a batch's offsets while removing its records (a batch may even
            // be left empty): resume after the batch, not after its last record.
            next = next.max(header.last_offset().saturating_add(1));
            let records: Vec<Record> = set
                .records
                .into_iter()
                .filter(|r| r.offset >= start)
                .collect();
            replayed.batches += 1;
            replayed.records += records.len() as u64;
            visit(&header, records);
        }
        if next <= offset {
            // Not even one whole batch in a window that must hold one (reads return at least
            // one whole batch): the log is not what it claims.
            return Err(ReplayError::Undecodable { offset });
        }
        offset = next;
    }
    Ok(replayed)
}

/// The length of the batch at the start of `bytes` when the whole batch is there; a read cut
/// off by its byte limit ends with part of one, read again from its start next time.
fn whole_batch_len(bytes: &[u8]) -> Option<usize> {
    declared_total_len(bytes).filter(|&len| len >= HEADER_LEN && len <= bytes.len())
}
