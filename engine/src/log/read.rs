//! Finding batches in segment files, and what a read hands to the network layer.
//!
//! Reads never copy record bytes: they return byte ranges of segment files, which the fetch
//! path sends with splice or sendfile. Only batch headers are read here, to find where an
//! offset or a timestamp starts.

use std::io;
use std::rc::Rc;

use super::batch::{self, BatchHeader, Compression, TimestampType, HEADER_LEN};
use crate::rt::File;

/// Bytes read per step when walking batch headers: covers `index.interval.bytes` (4 KiB by
/// default) of small batches in one read.
const HEADER_WINDOW: usize = 8192;

/// A run of record bytes in a segment file.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Rc<File>,
    pub position: u64,
    pub len: u64,
}

/// The outcome of [`Log::read`](super::Log::read).
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Whole batches, in order, except that the last may be cut short by `max_bytes` (as in
    /// Kafka; clients drop a trailing partial batch and fetch it again).
    pub ranges: Vec<FileRange>,
    /// Sum of the ranges' lengths.
    pub bytes: u64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl ReadResult {
    /// The planned bytes, copied into memory: the copy path (TLS, tests, tools), where the
    /// fetch path proper sends the ranges with splice or sendfile.
    pub async fn copy_out(&self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.bytes as usize);
        for range in &self.ranges {
            let (result, chunk) = range
                .file
                .read_exact_at(Vec::with_capacity(range.len as usize), range.position)
                .await;
            if result? as u64 != range.len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a segment is shorter than its planned range",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// Walks the batches of `file` from `position` (a batch boundary) up to `limit`, returning the
/// first whose header satisfies `wanted`, with its position.
pub(crate) async fn find_batch(
    file: &File,
    mut position: u64,
    limit: u64,
    wanted: impl Fn(&BatchHeader) -> bool,
) -> io::Result<Option<(u64, BatchHeader)>> {
    while position + (HEADER_LEN as u64) <= limit {
        let window = HEADER_WINDOW.min((limit - position) as usize);
        let (result, bytes) = file
            .read_exact_at(Vec::with_capacity(window), position)
            .await;
        result?;
        let mut at = 0usize;
        while at + HEADER_LEN <= bytes.len() {
            let header = BatchHeader::parse(&bytes[at..]).map_err(invalid_data)?;
            let len = header
                .total_len()
                .ok_or_else(|| invalid_data("batch length out of range in a segment"))?;
            if wanted(&header) {
                return Ok(Some((position + at as u64, header)));
            }
            at += len;
        }
        if at == 0 && bytes.len() < HEADER_LEN {
            return Err(invalid_data("segment shorter than its written size"));
        }
        position += at as u64;
    }
    Ok(None)
}

/// The first record in an uncompressed batch (its bytes) with a timestamp at or after
/// `timestamp`: `(offset, timestamp)`. Compressed batches, whose records can't be read
/// without decompressing, and LogAppendTime batches answer with the batch's base offset and
/// maximum timestamp.
pub(crate) fn first_record_at_or_after(
    batch_bytes: &[u8],
    header: &BatchHeader,
    timestamp: i64,
) -> (i64, i64) {
    let whole_batch = (header.base_offset, header.max_timestamp);
    if header.compression() != Some(Compression::None)
        || header.timestamp_type() == TimestampType::LogAppendTime
    {
        return whole_batch;
    }
    batch::record_timestamps(batch_bytes)
        .find(|&(_, ts)| ts >= timestamp)
        .map(|(delta, ts)| (header.base_offset + delta, ts))
        .unwrap_or(whole_batch)
}

fn invalid_data(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
