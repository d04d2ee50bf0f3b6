//! Read planning: where an offset or a timestamp lives in the segment files, and what a read
//! hands to the network layer.
//!
//! Reads never copy record bytes: they return byte ranges of segment files, which the fetch
//! path sends with splice or sendfile. Only batch headers are read here, to find where an
//! offset or a timestamp starts. Reads see only what is written (below the high watermark),
//! so they never wait for appends in flight; read_committed reads only what is stable (below
//! the last stable offset, see [`super::txn`]).

use std::io;
use std::rc::Rc;

use super::batch::{self, BatchHeader, Compression, TimestampType, HEADER_LEN};
use super::error::{ReadError, StorageError};
use super::index::TimestampOffset;
use super::partition::Log;
use super::txn::Isolation;
use crate::rt::File;

/// Bytes read per step when walking batch headers: covers `index.interval.bytes` (4 KiB by
/// default) of small batches in one read.
const HEADER_WINDOW: usize = 8192;

/// Where a read stops.
#[derive(Debug, Clone, Copy)]
enum ReadEnd {
    /// Consumers reading uncommitted.
    HighWatermark,
    /// Consumers reading committed.
    LastStable,
    /// Followers.
    WrittenEnd,
}

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
    /// As of the read: what a Fetch reports as the partition's last stable offset.
    pub last_stable_offset: i64,
    /// No record the read returns is at or past this offset: the end of the last segment it
    /// reads from (the read's own offset when it returns nothing). What bounds the aborted
    /// transactions a read_committed fetch reports, as Kafka bounds them by segment.
    pub upper_bound_offset: i64,
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

impl Log {
    /// Plans a read from `offset`: byte ranges of segment files holding whole batches, the
    /// first being the batch that contains `offset`, up to `max_bytes` (the last range may end
    /// inside a batch) and never past the high watermark. With `min_one_batch` the first
    /// batch is returned whole even when it is larger than `max_bytes` (KIP-74).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadResult, ReadError> {
        self.read_isolated(offset, max_bytes, min_one_batch, Isolation::ReadUncommitted)
            .await
    }

    /// [`read`](Self::read) under an isolation level. Under
    /// [`ReadCommitted`](Isolation::ReadCommitted) the read stops at the last stable offset:
    /// an offset at it reads nothing, and one past it (but within the high watermark) is not
    /// out of range either, as in Kafka: it also reads nothing, until the LSO moves. Likewise
    /// an offset past the high watermark but within the
    /// [written end](Self::written_end) (written here, not yet replicated enough) reads
    /// nothing; only offsets past the written end are out of range.
    pub async fn read_isolated(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<ReadResult, ReadError> {
        let end = match isolation {
            Isolation::ReadUncommitted => ReadEnd::HighWatermark,
            Isolation::ReadCommitted => ReadEnd::LastStable,
        };
        self.plan_read(offset, max_bytes, min_one_batch, end).await
    }

    /// A follower's fetch from this log (as leader): up to the [written end](Self::written_end),
    /// past the high watermark (followers must fetch what is not yet replicated for it to
    /// become so) and whatever the isolation. The first batch comes whole even past
    /// `max_bytes`, as in Kafka's replica fetches. The result's `high_watermark` is the
    /// consumers' one, which the follower adopts.
    pub async fn read_replica(&self, offset: i64, max_bytes: u64) -> Result<ReadResult, ReadError> {
        self.plan_read(offset, max_bytes, true, ReadEnd::WrittenEnd)
            .await
    }

    /// The one read planner: from `offset` up to the chosen `end`.
    async fn plan_read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
        end: ReadEnd,
    ) -> Result<ReadResult, ReadError> {
        struct View {
            file: Rc<File>,
            start: u64,
            readable: u64,
            /// The segment's offsets end here.
            next_offset: i64,
            base_offset: i64,
            /// `readable` was cut where the batch holding the read's end begins.
            cut: bool,
        }
        let (mut views, mut result, cut) = {
            let st = self.inner.state.borrow();
            let result = ReadResult {
                high_watermark: st.high_watermark(),
                log_start_offset: st.log_start_offset,
                last_stable_offset: st.last_stable_offset(),
                upper_bound_offset: offset,
                ..ReadResult::default()
            };
            if offset < st.log_start_offset || offset > st.written_end {
                return Err(st.out_of_range(offset, st.written_end));
            }
            let end = match end {
                ReadEnd::HighWatermark => result.high_watermark,
                ReadEnd::LastStable => result.last_stable_offset,
                ReadEnd::WrittenEnd => st.written_end,
            };
            if offset >= end {
                return Ok(result);
            }
            let views: Vec<View> = st
                .segments
                .range(..=offset)
                .next_back()
                .into_iter()
                .map(|(_, s)| (s, s.indexes.offsets.lookup(offset).position.into()))
                .chain(st.segments.range(offset + 1..).map(|(_, s)| (s, 0)))
                // Nothing from segments that start at or past the end.
                .filter(|(s, _)| s.base_offset < end)
                // A segment without its file yet has nothing written.
                .filter_map(|(s, start)| {
                    Some(View {
                        file: s.log.clone()?,
                        start,
                        readable: s.written,
                        next_offset: s.next_offset,
                        base_offset: s.base_offset,
                        cut: false,
                    })
                })
                .collect();
            // Below the written end, the end is the start of a batch (the first of an
            // undecided transaction, or the first the replicated high watermark holds back):
            // where it starts is found in its segment below.
            let cut = st
                .segments
                .range(..=end)
                .next_back()
                .filter(|_| end < st.written_end)
                .map(|(_, s)| {
                    let position = u64::from(s.indexes.offsets.lookup(end).position);
                    (s.base_offset, position, end)
                });
            (views, result, cut)
        };
        if let Some((segment_base, from, end)) = cut {
            // The view of the segment holding the end ends where the end's batch begins.
            if let Some(view) = views
                .iter_mut()
                .rev()
                .find(|v| v.base_offset == segment_base)
            {
                let found = find_batch(&view.file, from, view.readable, |h| h.last_offset() >= end)
                    .await
                    .map_err(|e| StorageError::io("reading a segment", &e))?;
                view.readable = found.map_or(view.readable, |(position, _)| position);
                view.cut = true;
            }
        }
        let mut remaining = max_bytes;
        let mut first_batch_len = None;
        for view in views {
            let mut from = view.start;
            if first_batch_len.is_none() {
                let found = find_batch(&view.file, from, view.readable, |h| {
                    h.last_offset() >= offset
                })
                .await
                .map_err(|e| StorageError::io("reading a segment", &e))?;
                let Some((position, header)) = found else {
                    if view.cut {
                        // `offset` is in the batch holding the end (a replicated high
                        // watermark inside a batch): nothing of it is readable yet.
                        break;
                    }
                    if offset < view.next_offset {
                        // Below the end and inside this segment: the data must be
                        // there. Skipping to the next segment would hide records.
                        let what = format!("offset {offset} missing from its segment");
                        return Err(StorageError(what).into());
                    }
                    continue;
                };
                from = position;
                first_batch_len = header.total_len().map(|l| l as u64);
            }
            let available = view.readable.saturating_sub(from);
            let mut take = available.min(remaining);
            if result.ranges.is_empty() && min_one_batch {
                take = take.max(first_batch_len.unwrap_or(0).min(available));
            }
            if take == 0 {
                break;
            }
            result.ranges.push(FileRange {
                file: view.file,
                position: from,
                len: take,
            });
            result.upper_bound_offset = view.next_offset;
            result.bytes += take;
            remaining = remaining.saturating_sub(take);
            if remaining == 0 || take < available {
                break;
            }
        }
        Ok(result)
    }

    /// The first record at or after `timestamp` (ListOffsets by time): its offset and
    /// timestamp, or `None` when every record below the high watermark is older. Exact for
    /// uncompressed batches; within compressed ones, the batch's base offset.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, ReadError> {
        let high_watermark = self.high_watermark();
        let (candidates, log_start) = {
            let st = self.inner.state.borrow();
            let candidates: Vec<(Rc<File>, u64, u64)> = st
                .segments
                .values()
                .filter(|s| s.next_offset > st.log_start_offset)
                .filter(|s| s.max_timestamp().is_some_and(|m| m.timestamp >= timestamp))
                .filter_map(|s| {
                    let from = s.indexes.times.lookup(timestamp).offset;
                    let position = s.indexes.offsets.lookup(from).position;
                    Some((s.log.clone()?, u64::from(position), s.written))
                })
                .collect();
            (candidates, st.log_start_offset)
        };
        for (file, position, readable) in candidates {
            let found = find_batch(&file, position, readable, |h| {
                h.max_timestamp >= timestamp && h.last_offset() >= log_start
            })
            .await
            .map_err(|e| StorageError::io("reading a segment", &e))?;
            let Some((position, header)) = found else {
                continue;
            };
            let len = header.total_len().expect("a length find_batch accepted");
            if position + len as u64 > readable {
                return Err(StorageError("a batch runs past its segment's data".into()).into());
            }
            let (result, bytes) = file.read_exact_at(Vec::with_capacity(len), position).await;
            result.map_err(|e| StorageError::io("reading a segment", &e))?;
            let (offset, ts) = first_record_at_or_after(&bytes, &header, timestamp);
            let offset = offset.max(log_start);
            // Nothing past the high watermark is found, as in Kafka: consumers can't read it
            // yet, and it may be truncated away.
            if offset >= high_watermark {
                return Ok(None);
            }
            return Ok(Some(TimestampOffset {
                timestamp: ts,
                offset,
            }));
        }
        Ok(None)
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
