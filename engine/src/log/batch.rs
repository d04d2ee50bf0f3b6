//! Kafka RecordBatch v2: the unit the log stores, byte for byte as producers send it.
//!
//! ```text
//! offset  field                 type   covered by CRC
//!  0      base_offset           i64    no  (assigned by the broker)
//!  8      batch_length          i32    no  (bytes after this field)
//! 12      partition_leader_epoch i32   no
//! 16      magic                 i8     no  (must be 2)
//! 17      crc                   u32    -   (CRC-32C of bytes 21..end)
//! 21      attributes            i16    yes (compression 0-2, timestamp type 3, txn 4, control 5)
//! 23      last_offset_delta     i32    yes
//! 27      base_timestamp        i64    yes
//! 35      max_timestamp         i64    yes
//! 43      producer_id           i64    yes
//! 51      producer_epoch        i16    yes
//! 53      base_sequence         i32    yes
//! 57      records_count         i32    yes
//! 61      records               ...    yes
//! ```
//!
//! Appending rewrites only the base offset (and, for LogAppendTime topics, the timestamp type,
//! max timestamp and CRC), so fetches can hand the stored bytes to consumers unchanged.

use super::{codec, records};

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batch_length` counts from: base offset and the length field itself.
pub const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub const TRANSACTIONAL_BIT: i16 = 0x10;
pub const CONTROL_BIT: i16 = 0x20;
/// KIP-534: the batch's base timestamp is the delete horizon of its tombstones, set by the
/// cleaner (record timestamps are re-based on it, so they read the same).
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why a batch was refused. Each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Lengths, magic or CRC don't add up: CORRUPT_MESSAGE.
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    /// The batch exceeds max.message.bytes: MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// Well-formed but not acceptable (empty, inconsistent counts): INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
}

/// Compression codec of a batch (stored as sent, unless the topic's `compression.type` names
/// another codec: see [`super::recompress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec Kafka defines, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The attributes bits that name this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Which timestamp the batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when appending.
    LogAppendTime,
}

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` (which must hold at least [`HEADER_LEN`]
    /// bytes). Checks nothing beyond the length.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Corrupt("shorter than a batch header"));
        }
        Ok(BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: i32_at(buf, LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(buf[CRC_OFFSET..CRC_OFFSET + 4].try_into().expect("4 bytes")),
            attributes: i16_at(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(buf, PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(buf, BASE_SEQUENCE_OFFSET),
            records_count: i32_at(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Bytes the whole batch occupies, header included; `None` if `batch_length` is impossible.
    pub fn total_len(&self) -> Option<usize> {
        total_from_batch_length(self.batch_length)
    }

    /// Offset of the batch's last record.
    /// Saturates instead of overflowing: the base offset is not covered by the CRC, so a
    /// corrupt one read from disk must not panic (scans reject such batches as out of order).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// When the cleaner may remove this batch's tombstones (KIP-534), if it has set that.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// The whole size (header included) a `batch_length` field declares; `None` when it can't be a
/// batch (negative, or shorter than a header).
fn total_from_batch_length(batch_length: i32) -> Option<usize> {
    let len = usize::try_from(batch_length).ok()?;
    (len >= HEADER_LEN - LOG_OVERHEAD).then_some(len + LOG_OVERHEAD)
}

/// The whole size the batch at the start of `buf` declares, read from its length field alone.
/// `None` when `buf` is too short to hold that field or the length is impossible; whether `buf`
/// holds the whole batch is the caller's question (a torn write, or a truncated request).
pub fn declared_total_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    total_from_batch_length(i32_at(buf, BATCH_LENGTH_OFFSET))
}

/// CRC-32C over the part of a batch the CRC covers (attributes to end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Checks one complete batch (`batch` is exactly its bytes): magic, lengths, CRC, counts, size,
/// and the framing of an uncompressed batch's records. What recovery checks of stored batches;
/// the append path checks more ([`validate_for_append`]).
///
/// A stored batch may hold fewer records than its offsets span, none at all even: compaction
/// keeps a batch's offsets (base and last) when it removes records from it (as Kafka does,
/// KAFKA-5443), and keeps some batches with no records left.
pub fn validate(batch: &[u8], max_message_bytes: usize) -> Result<BatchHeader, BatchError> {
    let header = validate_header(batch, max_message_bytes, Counts::Compacted)?;
    if header.compression() == Some(Compression::None) {
        check_uncompressed_records(&batch[HEADER_LEN..], header.records_count)?;
    }
    Ok(header)
}

/// Checks a batch a producer sends, as Kafka's broker does before writing it: the header (as
/// [`validate`]), then every record, compressed batches decompressed first (within
/// [`decompression_limit`]). See [`check_batch_records`].
pub fn validate_for_append(
    batch: &[u8],
    max_message_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    let header = validate_header(batch, max_message_bytes, Counts::Exact)?;
    check_batch_records(batch, &header, decompression_limit(max_message_bytes))?;
    Ok(header)
}

/// Most bytes a compressed batch may inflate to: 64 times `max.message.bytes`, at least
/// 16 MiB, at most 256 MiB (64 MiB for the default 1 MiB limit).
///
/// Why: Kafka itself streams records out of a compressed batch and has no such bound, so ours
/// must sit above anything a real producer makes. librdkafka caps a batch's *uncompressed*
/// size at its message.max.bytes (1 MB by default); the Java producer fills `batch.size`
/// (16 KiB by default) by *estimated compressed* size, so very compressible data can make a
/// batch of a few MiB; either is far under 64x the broker's limit, a ratio only a degenerate
/// payload (long runs of one byte) reaches. The floor keeps topics with a small
/// max.message.bytes usable with compressible data; the cap bounds what one batch can make a
/// shard allocate (the buffer grows with the output, so only a batch that gets that far pays
/// for it) and how long inflating it holds the shard. A zip bomb stops at the bound.
pub fn decompression_limit(max_message_bytes: usize) -> usize {
    const FACTOR: usize = 64;
    const FLOOR: usize = 16 << 20;
    const CAP: usize = 256 << 20;
    max_message_bytes.saturating_mul(FACTOR).clamp(FLOOR, CAP)
}

/// Checks the records of a batch whose header passed [`validate_header`]: decompressed into at
/// most `decompression_limit` bytes when compressed (an undecodable payload, or one that
/// inflates past the bound, is `Corrupt`), then walked record by record (see
/// [`records::check_records`]). An uncompressed batch is walked in place, without a copy.
pub fn check_batch_records(
    batch: &[u8],
    header: &BatchHeader,
    decompression_limit: usize,
) -> Result<(), BatchError> {
    let payload = batch
        .get(HEADER_LEN..)
        .ok_or(BatchError::Corrupt("shorter than a batch header"))?;
    let codec = header
        .compression()
        .ok_or(BatchError::Invalid("unknown compression codec"))?;
    if codec == Compression::None {
        return records::check_records(payload, header.records_count);
    }
    let inflated = codec::decompress(codec, payload, decompression_limit)?;
    records::check_records(&inflated, header.records_count)
}

/// How a batch's record count must relate to its offsets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// As a producer sends it: one record per offset, at least one.
    Exact,
    /// As the log may store it after compaction: at most one per offset, maybe none.
    Compacted,
}

/// The checks of a batch that need no look at its records: magic, lengths, CRC, size, codec,
/// and a record count consistent with the last offset delta.
fn validate_header(
    batch: &[u8],
    max_message_bytes: usize,
    counts: Counts,
) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != 2 {
        return Err(BatchError::Corrupt(
            "magic is not 2 (only RecordBatch v2 is accepted)",
        ));
    }
    let total = header
        .total_len()
        .ok_or(BatchError::Corrupt("batch length out of range"))?;
    if total != batch.len() {
        return Err(BatchError::Corrupt(
            "batch length disagrees with the bytes received",
        ));
    }
    if header.crc != compute_crc(batch) {
        return Err(BatchError::Corrupt("CRC-32C mismatch"));
    }
    if total > max_message_bytes {
        return Err(BatchError::TooLarge {
            size: total,
            max: max_message_bytes,
        });
    }
    if header.compression().is_none() {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    match counts {
        Counts::Exact => {
            if header.records_count <= 0 {
                return Err(BatchError::Invalid("batch holds no records"));
            }
            if header.last_offset_delta != header.records_count - 1 {
                return Err(BatchError::Invalid(
                    "last offset delta disagrees with the record count",
                ));
            }
        }
        Counts::Compacted => {
            if header.records_count < 0
                || header.last_offset_delta < 0
                || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
            {
                return Err(BatchError::Invalid(
                    "record count disagrees with the last offset delta",
                ));
            }
        }
    }
    Ok(header)
}

/// Walks the length-prefixed records of an uncompressed batch: their framing must cover the
/// record bytes exactly and their number must match the header. Recovery's check: looser than
/// [`records::check_records`] on purpose, so batches stored before the append path checked
/// every record are not cut from the log at restart.
fn check_uncompressed_records(mut records: &[u8], expected: i32) -> Result<(), BatchError> {
    let mut count = 0i32;
    while !records.is_empty() {
        let (len, used) =
            read_varint(records).ok_or(BatchError::Corrupt("bad record length varint"))?;
        let len =
            usize::try_from(len).map_err(|_| BatchError::Corrupt("negative record length"))?;
        let end = used.checked_add(len).filter(|&end| end <= records.len());
        let end = end.ok_or(BatchError::Corrupt("record runs past the end of the batch"))?;
        records = &records[end..];
        count += 1;
        if count > expected {
            break;
        }
    }
    if count != expected {
        return Err(BatchError::Invalid(
            "record count disagrees with the records present",
        ));
    }
    Ok(())
}

/// `(offset delta, timestamp)` of each record of an uncompressed batch (`batch` is exactly its
/// bytes), stopping early at any malformed record.
pub fn record_timestamps(batch: &[u8]) -> impl Iterator<Item = (i64, i64)> + '_ {
    let base_timestamp = if batch.len() >= HEADER_LEN {
        i64_at(batch, BASE_TIMESTAMP_OFFSET)
    } else {
        0
    };
    records_timestamps(base_timestamp, batch.get(HEADER_LEN..).unwrap_or_default())
}

/// `(offset delta, timestamp)` of each record in `records`, a batch's records section (for a
/// compressed batch, once decompressed) whose header has `base_timestamp`; stops early at any
/// malformed record.
pub fn records_timestamps(
    base_timestamp: i64,
    mut records: &[u8],
) -> impl Iterator<Item = (i64, i64)> + '_ {
    std::iter::from_fn(move || {
        let (len, used) = read_varint(records)?;
        let end = used.checked_add(usize::try_from(len).ok()?)?;
        let record = records.get(used..end)?;
        records = &records[end..];
        // attributes (int8), timestampDelta (varlong), offsetDelta (varint), ...
        let fields = record.get(1..)?;
        let (timestamp_delta, used) = read_varint(fields)?;
        let (offset_delta, _) = read_varint(&fields[used..])?;
        Some((offset_delta, base_timestamp.wrapping_add(timestamp_delta)))
    })
}

/// Decodes a zig-zag varint (Kafka's record framing); returns (value, bytes used).
fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits a produce request's record set into its batches, validating each as an append must
/// ([`validate_for_append`]). Refuses a record set with trailing bytes that don't form a whole
/// batch.
pub fn split_and_validate(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    split_with(records, |batch| {
        validate_for_append(batch, max_message_bytes)
    })
}

/// Splits a record set of stored batches (a leader's, fetched by a follower) into its batches,
/// checking each as recovery checks stored ones ([`validate`]): a compacted leader's batches
/// may hold fewer records than their offsets span, which a producer's may not.
pub fn split_and_validate_stored(
    records: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    split_with(records, |batch| validate(batch, max_batch_bytes))
}

fn split_with(
    records: &[u8],
    check: impl Fn(&[u8]) -> Result<BatchHeader, BatchError>,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Corrupt(
                "truncated batch at the end of the record set",
            ));
        }
        let total = declared_total_len(rest)
            .filter(|&t| t <= rest.len())
            .ok_or(BatchError::Corrupt("batch length out of range"))?;
        let header = check(&rest[..total])?;
        batches.push((at, header));
        at += total;
    }
    if batches.is_empty() {
        return Err(BatchError::Invalid("empty record set"));
    }
    Ok(batches)
}

/// The partition leader epoch a follower-less broker leaves in a batch: Kafka's
/// `RecordBatch.NO_PARTITION_LEADER_EPOCH`.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Stamps the partition leader epoch (KIP-101) into the batch at the start of `batch`. The
/// field is outside the CRC (Kafka keeps it there so a leader can stamp without recomputing
/// it), so the CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites the base offset of the batch at the start of `batch`. The base offset is outside
/// the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// The batch `batch` (a whole, validated batch) with its records section replaced by `payload`
/// in `codec`: every header field is kept (base offset, leader epoch, timestamps, producer id,
/// epoch and sequence, the transactional and control bits); the codec bits, the batch length
/// and the CRC are set for the new payload.
pub fn with_payload(
    batch: &[u8],
    codec: Compression,
    payload: &[u8],
) -> Result<Vec<u8>, BatchError> {
    let header = batch
        .get(..HEADER_LEN)
        .ok_or(BatchError::Corrupt("shorter than a batch header"))?;
    let total = HEADER_LEN + payload.len();
    let batch_length = i32::try_from(total - LOG_OVERHEAD)
        .map_err(|_| BatchError::Invalid("recompressed batch is too large"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    let attributes =
        (i16_at(header, ATTRIBUTES_OFFSET) & !COMPRESSION_MASK) | codec.attribute_bits();
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The batch `batch` (a whole, stored batch) as the cleaner rewrites it: its records section
/// replaced by `payload` (`records_count` records, in `codec`), and with `delete_horizon`,
/// the KIP-534 flag set and the base timestamp replaced by the horizon (the caller re-based
/// the records' timestamp deltas on it). Base offset, last offset delta, max timestamp and
/// the producer fields are kept; length and CRC are set for the new contents.
pub fn rewritten(
    batch: &[u8],
    codec: Compression,
    payload: &[u8],
    records_count: i32,
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>, BatchError> {
    let mut out = with_payload(batch, codec, payload)?;
    out[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4]
        .copy_from_slice(&records_count.to_be_bytes());
    if let Some(horizon) = delete_horizon {
        let attributes = i16_at(&out, ATTRIBUTES_OFFSET) | DELETE_HORIZON_BIT;
        out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        out[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&horizon.to_be_bytes());
    }
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Stamps a batch for a LogAppendTime topic: sets the timestamp type and the max timestamp to
/// `now_ms`, then recomputes the CRC (both fields are covered by it).
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_timestamps_walk_every_record() {
        let mut builder = crate::log::builder::BatchBuilder::new();
        for (i, ts) in [(0, 500), (1, 450), (2, 900)] {
            builder.push(&crate::log::builder::Record {
                value: Some(vec![i as u8; 10]),
                timestamp: ts,
                ..Default::default()
            });
        }
        let batch = builder.build();
        let seen: Vec<_> = record_timestamps(&batch).collect();
        assert_eq!(seen, vec![(0, 500), (1, 450), (2, 900)]);
        assert_eq!(record_timestamps(&batch[..HEADER_LEN + 3]).count(), 0);
        assert_eq!(record_timestamps(&[]).count(), 0);
    }
    use crate::log::builder::{sample_batch, BatchBuilder, Record};
    use proptest::prelude::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn built_batches_validate_and_decode() {
        let batch = sample_batch(5, 100, 1_700_000_000_000);
        let header = validate(&batch, MAX).unwrap();
        assert_eq!(header.records_count, 5);
        assert_eq!(header.last_offset_delta, 4);
        assert_eq!(header.base_timestamp, 1_700_000_000_000);
        assert_eq!(header.max_timestamp, 1_700_000_000_004);
        assert_eq!(header.compression(), Some(Compression::None));
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(header.total_len(), Some(batch.len()));
        assert!(!header.is_transactional() && !header.is_control());
    }

    #[test]
    fn null_keys_values_and_headers_round_trip_framing() {
        let mut builder = BatchBuilder::new().producer(7, 1, 0);
        builder.push(&Record {
            key: None,
            value: None,
            headers: vec![("k".into(), None)],
            timestamp: 5,
        });
        builder.push(&Record {
            key: Some(vec![]),
            value: Some(vec![1; 300]),
            headers: vec![],
            timestamp: 3,
        });
        let header = validate(&builder.build(), MAX).unwrap();
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (7, 1, 0)
        );
        assert_eq!(header.max_timestamp, 5);
    }

    #[test]
    fn base_offset_rewrite_keeps_the_crc() {
        let mut batch = sample_batch(3, 10, 1);
        set_base_offset(&mut batch, 123_456);
        let header = validate(&batch, MAX).unwrap();
        assert_eq!(header.base_offset, 123_456);
        assert_eq!(header.last_offset(), 123_458);
    }

    #[test]
    fn log_append_time_stamp_keeps_the_batch_valid() {
        let mut batch = sample_batch(3, 10, 1);
        stamp_log_append_time(&mut batch, 99_999);
        let header = validate(&batch, MAX).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 99_999);
    }

    #[test]
    fn refusals_map_to_the_right_error() {
        let batch = sample_batch(10, 100, 1);
        assert_eq!(
            validate(&batch, 100),
            Err(BatchError::TooLarge {
                size: batch.len(),
                max: 100
            })
        );

        let mut bad_magic = batch.clone();
        bad_magic[16] = 1;
        assert!(matches!(
            validate(&bad_magic, MAX),
            Err(BatchError::Corrupt(_))
        ));

        // A count that disagrees with the records present (CRC fixed up, so only the count is wrong).
        let mut miscounted = batch.clone();
        miscounted[57..61].copy_from_slice(&11i32.to_be_bytes());
        miscounted[23..27].copy_from_slice(&10i32.to_be_bytes());
        let crc = compute_crc(&miscounted);
        miscounted[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&miscounted, MAX),
            Err(BatchError::Invalid(_))
        ));

        let mut unknown_codec = batch.clone();
        unknown_codec[22] |= 0x07;
        let crc = compute_crc(&unknown_codec);
        unknown_codec[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&unknown_codec, MAX),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn record_sets_split_into_batches() {
        let (a, b) = (sample_batch(2, 10, 1), sample_batch(3, 20, 5));
        let set = [a.clone(), b.clone()].concat();
        let batches = split_and_validate(&set, MAX).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].0, a.len());
        assert_eq!(batches[1].1.records_count, 3);
        assert!(split_and_validate(&[], MAX).is_err());
        assert!(split_and_validate(&set[..set.len() - 1], MAX).is_err());
        assert!(split_and_validate(&[set.clone(), vec![0; 5]].concat(), MAX).is_err());
    }

    mod append_checks {
        use super::*;
        use crate::log::builder::{compressed_zeros, raw_batch, sample_builder};
        use crate::log::codec;
        use std::time::{Duration, Instant};
        /// The default max.message.bytes.
        const DEFAULT_MAX: usize = 1_048_588;

        fn records_of(n: usize) -> Vec<u8> {
            sample_batch(n, 20, 1)[HEADER_LEN..].to_vec()
        }

        /// A batch of `codec` whose (uncompressed) records are `records`, claiming `count`.
        fn compressed(codec: Compression, records: &[u8], count: i32) -> Vec<u8> {
            raw_batch(codec, &codec::compress(codec, records).unwrap(), count)
        }

        fn is_corrupt(r: &Result<BatchHeader, BatchError>) -> bool {
            matches!(r, Err(BatchError::Corrupt(_)))
        }

        fn is_invalid(r: &Result<BatchHeader, BatchError>) -> bool {
            matches!(r, Err(BatchError::Invalid(_)))
        }

        #[test]
        fn valid_batches_of_every_codec_pass() {
            let builder = sample_builder(1000, 1024, 1_700_000_000_000);
            for codec in Compression::ALL {
                let batch = builder.build_compressed(codec).unwrap();
                let header = validate_for_append(&batch, 2 << 20).unwrap();
                assert_eq!(header.compression(), Some(codec));
                assert_eq!(header.records_count, 1000);
                assert_eq!(split_and_validate(&batch, 2 << 20).unwrap().len(), 1);
            }
        }

        #[test]
        fn a_payload_that_is_not_gzip_is_corrupt() {
            let plain = sample_batch(3, 10, 1);
            let marked_gzip = {
                let mut b = plain.clone();
                b[22] |= 1;
                let crc = compute_crc(&b);
                b[17..21].copy_from_slice(&crc.to_be_bytes());
                b
            };
            assert!(
                validate(&marked_gzip, MAX).is_ok(),
                "the header alone looks fine"
            );
            assert!(is_corrupt(&validate_for_append(&marked_gzip, MAX)));
            assert!(is_corrupt(
                &split_and_validate(&marked_gzip, MAX).map(|v| v[0].1)
            ));
        }

        #[test]
        fn truncated_compressed_data_is_corrupt() {
            let builder = sample_builder(20, 100, 1);
            for codec in &Compression::ALL[1..] {
                let batch = builder.build_compressed(*codec).unwrap();
                let payload = &batch[HEADER_LEN..];
                for cut in [1, payload.len() / 2, payload.len() - 1] {
                    let cut_batch = raw_batch(*codec, &payload[..cut], 20);
                    let result = validate_for_append(&cut_batch, MAX);
                    assert!(is_corrupt(&result), "{codec:?} cut at {cut}: {result:?}");
                }
            }
        }

        #[test]
        fn one_record_claiming_many_is_invalid() {
            for codec in Compression::ALL {
                for claim in [1_000_000, i32::MAX] {
                    let batch = compressed(codec, &records_of(1), claim);
                    let result = validate_for_append(&batch, MAX);
                    assert!(
                        is_invalid(&result),
                        "{codec:?} claiming {claim}: {result:?}"
                    );
                }
                // A count of 1 with a last offset delta of 999,999 fails on the header.
                let mut batch = compressed(codec, &records_of(1), 1);
                batch[23..27].copy_from_slice(&999_999i32.to_be_bytes());
                let crc = compute_crc(&batch);
                batch[17..21].copy_from_slice(&crc.to_be_bytes());
                assert!(is_invalid(&validate_for_append(&batch, MAX)), "{codec:?}");
            }
        }

        #[test]
        fn out_of_order_offset_deltas_are_invalid() {
            // Two one-record batches' records put together: deltas 0, 0.
            let records = [records_of(1), records_of(1)].concat();
            for codec in Compression::ALL {
                let batch = compressed(codec, &records, 2);
                let result = validate_for_append(&batch, MAX);
                assert!(is_invalid(&result), "{codec:?}: {result:?}");
            }
        }

        #[test]
        fn bytes_after_the_last_record_are_refused() {
            for codec in Compression::ALL {
                let garbage = [records_of(2), vec![0xff, 0x01]].concat();
                let result = validate_for_append(&compressed(codec, &garbage, 2), MAX);
                assert!(is_corrupt(&result), "{codec:?} garbage: {result:?}");
                // A whole extra record: the count is what's wrong.
                let extra = records_of(3);
                let result = validate_for_append(&compressed(codec, &extra, 2), MAX);
                assert!(is_invalid(&result), "{codec:?} extra record: {result:?}");
            }
        }

        #[test]
        fn bomb_builders_make_real_streams() {
            let small = 3 << 20;
            for codec in [Compression::Gzip, Compression::Zstd] {
                let payload = compressed_zeros(codec, small).unwrap();
                let out = codec::decompress(codec, &payload, small).unwrap();
                assert!(
                    out.len() == small && out.iter().all(|&b| b == 0),
                    "{codec:?}"
                );
            }
        }

        #[test]
        fn zip_bombs_are_refused_quickly() {
            let limit = decompression_limit(DEFAULT_MAX);
            for codec in [Compression::Gzip, Compression::Zstd] {
                let batch = raw_batch(codec, &compressed_zeros(codec, 1 << 30).unwrap(), 1);
                let header = validate_header(&batch, 2 << 20, Counts::Exact).unwrap();
                let started = Instant::now();
                let result = check_batch_records(&batch, &header, limit);
                assert_eq!(
                    result,
                    Err(BatchError::Corrupt(
                        "decompressed records exceed the broker's bound"
                    )),
                    "{codec:?}"
                );
                // Stopping at the 64 MiB bound takes a fraction of inflating 1 GiB (which
                // an unoptimized test build would take minutes for).
                assert!(started.elapsed() < Duration::from_secs(30), "{codec:?}");
            }
        }

        #[test]
        fn the_bound_scales_with_max_message_bytes_within_limits() {
            assert_eq!(decompression_limit(DEFAULT_MAX), DEFAULT_MAX * 64);
            assert_eq!(decompression_limit(1000), 16 << 20);
            assert_eq!(decompression_limit(usize::MAX), 256 << 20);
        }
    }

    fn arb_batch() -> impl Strategy<Value = Vec<u8>> {
        (1usize..20, 0usize..300, 0i64..1 << 40).prop_map(|(n, len, ts)| sample_batch(n, len, ts))
    }

    proptest! {
        /// Every byte the format protects (length, magic, CRC and everything it covers) is
        /// checked: changing any of them is refused.
        #[test]
        fn corrupting_any_protected_byte_is_detected(batch in arb_batch(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let protected: Vec<usize> = (8..12).chain(16..batch.len()).collect();
            let at = protected[pos.index(protected.len())];
            let mut corrupt = batch.clone();
            corrupt[at] ^= flip;
            prop_assert!(validate(&corrupt, MAX).is_err());
            prop_assert!(split_and_validate(&corrupt, MAX).is_err());
        }

        /// Any prefix of a batch is refused, never panics.
        #[test]
        fn truncated_batches_are_refused(batch in arb_batch(), cut in any::<prop::sample::Index>()) {
            let len = cut.index(batch.len());
            prop_assert!(split_and_validate(&batch[..len], MAX).is_err());
        }

        /// Arbitrary bytes never panic the validator.
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = split_and_validate(&bytes, MAX);
            let _ = validate(&bytes, MAX);
        }
    }
}
