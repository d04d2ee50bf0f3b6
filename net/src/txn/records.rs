//! The records of `__transaction_state`, in Kafka's own formats (the `TransactionLogKey` and
//! `TransactionLogValue` message specs of Kafka's transaction coordinator), so Kafka's tools
//! could read a Runnel transaction log and the other way round.
//!
//! - Key: int16 version 0, then the transactional id as a non-flexible string (int16 length).
//! - Value: int16 version, then `TransactionLogValue` at that version.
//!   - v0 (non-flexible): producer_id i64, producer_epoch i16, transaction_timeout_ms i32,
//!     transaction_status i8, transaction_partitions (nullable int32-counted array of
//!     {topic: int16-length string, partition_ids: int32-counted array of i32}),
//!     transaction_last_update_timestamp_ms i64, transaction_start_timestamp_ms i64.
//!   - v1 (flexible, KIP-890's `transaction.version` 1+): the same fields with compact
//!     encodings (unsigned varint length + 1, 0 for null), a tagged-field section after each
//!     struct, and three tagged fields at the top level, written only when not at their
//!     default: tag 0 previous_producer_id (i64, default -1), tag 1 next_producer_id (i64,
//!     default -1), tag 2 client_transaction_version (i16, default 0).
//! - A null value is a tombstone: the transactional id expired.
//!
//! Kafka writes v0 unless the cluster's `transaction.version` feature is 1 or more (Kafka 4.0
//! with transactions v2 enabled), and every 3.x broker writes v0: [`VALUE_VERSION`] is 0. Both
//! versions are read. Kafka writes a null partition list for an `Empty` transaction and a
//! (possibly empty) list otherwise; so do we.
//!
//! Decoding never panics and never reserves memory by a length read from the input: a short or
//! garbled record is a [`RecordError`].

use bytes::BufMut;

/// The value version written by default (Kafka 3.x, and 4.x without transactions v2).
pub const VALUE_VERSION: i16 = 0;
/// The only key version.
const KEY_VERSION: i16 = 0;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// One topic's partitions in a transaction, as the record groups them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A `TransactionLogValue`: a transactional id's state as written to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 tag 0: the producer id before the last rotation (-1 when none, and always in v0).
    pub previous_producer_id: i64,
    /// v1 tag 1: the producer id handed out next (transactions v2 epoch overflow; -1).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// Kafka's `TransactionState` id (see `metadata::TxnState`).
    pub status: i8,
    /// `None` is Kafka's null (written for `Empty`).
    pub partitions: Option<Vec<TopicPartitions>>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// v1 tag 2: the client's transaction version (0 in v0).
    pub client_transaction_version: i16,
}

impl Default for TxnLogValue {
    fn default() -> Self {
        TxnLogValue {
            producer_id: -1,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            timeout_ms: 0,
            status: 0,
            partitions: None,
            last_update_timestamp_ms: -1,
            start_timestamp_ms: -1,
            client_transaction_version: 0,
        }
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("varint too long")]
    BadVarint,
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
    #[error("tagged field {tag} has size {size}")]
    BadTaggedField { tag: u32, size: usize },
    #[error("string too long for the record format")]
    StringTooLong,
}

/// The key of `transactional_id`'s records.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out
}

/// The transactional id of a key; `UnknownVersion` for keys of another version (Kafka skips
/// those when loading).
pub fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != KEY_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "transaction log key",
            version,
        });
    }
    r.string()
}

/// `value` at `version` (0 or 1; anything else is written as 1).
pub fn encode_value(value: &TxnLogValue, version: i16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    if version <= 0 {
        out.put_i16(0);
        out.put_i64(value.producer_id);
        out.put_i16(value.producer_epoch);
        out.put_i32(value.timeout_ms);
        out.put_i8(value.status);
        match &value.partitions {
            None => out.put_i32(-1),
            Some(topics) => {
                out.put_i32(topics.len() as i32);
                for t in topics {
                    put_string(&mut out, &t.topic);
                    out.put_i32(t.partitions.len() as i32);
                    for p in &t.partitions {
                        out.put_i32(*p);
                    }
                }
            }
        }
        out.put_i64(value.last_update_timestamp_ms);
        out.put_i64(value.start_timestamp_ms);
        return out;
    }
    out.put_i16(1);
    out.put_i64(value.producer_id);
    out.put_i16(value.producer_epoch);
    out.put_i32(value.timeout_ms);
    out.put_i8(value.status);
    match &value.partitions {
        None => put_uvarint(&mut out, 0),
        Some(topics) => {
            put_uvarint(&mut out, topics.len() as u32 + 1);
            for t in topics {
                put_compact_string(&mut out, &t.topic);
                put_uvarint(&mut out, t.partitions.len() as u32 + 1);
                for p in &t.partitions {
                    out.put_i32(*p);
                }
                put_uvarint(&mut out, 0); // the struct's tagged fields: none
            }
        }
    }
    out.put_i64(value.last_update_timestamp_ms);
    out.put_i64(value.start_timestamp_ms);
    // Tagged fields, in tag order, each only when not at its default.
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if value.previous_producer_id != -1 {
        tags.push((
            TAG_PREVIOUS_PRODUCER_ID,
            value.previous_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if value.next_producer_id != -1 {
        tags.push((
            TAG_NEXT_PRODUCER_ID,
            value.next_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if value.client_transaction_version != 0 {
        tags.push((
            TAG_CLIENT_TRANSACTION_VERSION,
            value.client_transaction_version.to_be_bytes().to_vec(),
        ));
    }
    put_uvarint(&mut out, tags.len() as u32);
    for (tag, data) in tags {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, data.len() as u32);
        out.put_slice(&data);
    }
    out
}

/// A value record (not a tombstone: the caller tells those by their null value).
pub fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        version => {
            return Err(RecordError::UnknownVersion {
                what: "transaction log value",
                version,
            })
        }
    };
    let mut value = TxnLogValue {
        producer_id: r.i64()?,
        producer_epoch: r.i16()?,
        timeout_ms: r.i32()?,
        status: r.i8()?,
        ..TxnLogValue::default()
    };
    if !(0..=7).contains(&value.status) {
        return Err(RecordError::UnknownStatus(value.status));
    }
    let topic_count = if flexible {
        r.compact_count()?
    } else {
        r.count()?
    };
    if let Some(count) = topic_count {
        // Each entry takes at least 3 bytes (v1) or 6 (v0): no allocation past the input.
        let mut topics = Vec::with_capacity(count.min(r.0.len() / 3));
        for _ in 0..count {
            let topic = if flexible {
                r.compact_string()?
            } else {
                r.string()?
            };
            let n = if flexible {
                r.compact_count()?
            } else {
                r.count()?
            }
            .ok_or(RecordError::NegativeLength(-1))?;
            let mut partitions = Vec::with_capacity(n.min(r.0.len() / 4));
            for _ in 0..n {
                partitions.push(r.i32()?);
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
            topics.push(TopicPartitions { topic, partitions });
        }
        value.partitions = Some(topics);
    }
    value.last_update_timestamp_ms = r.i64()?;
    value.start_timestamp_ms = r.i64()?;
    if flexible {
        let count = r.uvarint()?;
        for _ in 0..count {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            let data = r.take(size)?;
            let bad = || RecordError::BadTaggedField { tag, size };
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    value.previous_producer_id =
                        i64::from_be_bytes(data.try_into().map_err(|_| bad())?);
                }
                TAG_NEXT_PRODUCER_ID => {
                    value.next_producer_id =
                        i64::from_be_bytes(data.try_into().map_err(|_| bad())?);
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    value.client_transaction_version =
                        i16::from_be_bytes(data.try_into().map_err(|_| bad())?);
                }
                _ => {} // a newer writer's field: skipped, as Kafka does
            }
        }
    }
    Ok(value)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Transactional ids and topic names are far below 32 KiB (the handlers refuse longer).
    let len = s.len().min(i16::MAX as usize);
    out.put_i16(len as i16);
    out.put_slice(&s.as_bytes()[..len]);
}

fn put_compact_string(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u32 + 1);
    out.put_slice(s.as_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A bounds-checked reader: every read past the end is `Truncated`.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.take(1)?[0];
            if i == 4 && byte > 0x0f {
                return Err(RecordError::BadVarint);
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::BadVarint)
    }
    /// An int32 array count; `None` for null (-1).
    fn count(&mut self) -> Result<Option<usize>, RecordError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(RecordError::NegativeLength(n)),
            n => Ok(Some(n as usize)),
        }
    }
    /// A compact array count; `None` for null (0).
    fn compact_count(&mut self) -> Result<Option<usize>, RecordError> {
        Ok(self.uvarint()?.checked_sub(1).map(|n| n as usize))
    }
    fn utf8(bytes: &[u8]) -> Result<String, RecordError> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| RecordError::NotUtf8)
    }
    fn string(&mut self) -> Result<String, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(RecordError::NegativeLength(len.into()));
        }
        Self::utf8(self.take(len as usize)?)
    }
    fn compact_string(&mut self) -> Result<String, RecordError> {
        let len = self
            .compact_count()?
            .ok_or(RecordError::NegativeLength(-1))?;
        Self::utf8(self.take(len)?)
    }
    fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: 1,
            partitions: Some(vec![
                TopicPartitions {
                    topic: "a".into(),
                    partitions: vec![0, 2],
                },
                TopicPartitions {
                    topic: "b".into(),
                    partitions: vec![1],
                },
            ]),
            last_update_timestamp_ms: 1_700_000_000_500,
            start_timestamp_ms: 1_700_000_000_000,
            ..TxnLogValue::default()
        }
    }

    #[test]
    fn key_is_version_0_and_the_id() {
        let bytes = encode_key("tx");
        assert_eq!(bytes, [0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&bytes).unwrap(), "tx");
        assert_eq!(
            decode_key(&[0, 1, 0, 0]),
            Err(RecordError::UnknownVersion {
                what: "transaction log key",
                version: 1
            })
        );
    }

    #[test]
    fn value_v0_matches_bytes_written_from_the_spec() {
        let value = TxnLogValue {
            producer_id: 7,
            producer_epoch: 2,
            timeout_ms: 1000,
            status: 2, // PrepareCommit
            partitions: Some(vec![TopicPartitions {
                topic: "t".into(),
                partitions: vec![0, 5],
            }]),
            last_update_timestamp_ms: 300,
            start_timestamp_ms: 200,
            ..TxnLogValue::default()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 0,                               // version 0
            0, 0, 0, 0, 0, 0, 0, 7,             // producer_id
            0, 2,                               // producer_epoch
            0, 0, 0x03, 0xe8,                   // transaction_timeout_ms 1000
            2,                                  // transaction_status
            0, 0, 0, 1,                         // 1 topic
            0, 1, b't',                         //   topic "t"
            0, 0, 0, 2,                         //   2 partitions
            0, 0, 0, 0,                         //     0
            0, 0, 0, 5,                         //     5
            0, 0, 0, 0, 0, 0, 0x01, 0x2c,       // last update 300
            0, 0, 0, 0, 0, 0, 0, 0xc8,          // start 200
        ];
        assert_eq!(encode_value(&value, 0), expected);
        assert_eq!(decode_value(&expected).unwrap(), value);
        // Empty: a null partition list.
        let empty = TxnLogValue {
            producer_id: 7,
            producer_epoch: 0,
            timeout_ms: 1000,
            status: 0,
            partitions: None,
            last_update_timestamp_ms: 300,
            start_timestamp_ms: -1,
            ..TxnLogValue::default()
        };
        let bytes = encode_value(&empty, 0);
        assert_eq!(&bytes[17..21], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&bytes[29..], &[0xff; 8]);
        assert_eq!(decode_value(&bytes).unwrap(), empty);
    }

    #[test]
    fn value_v1_matches_bytes_written_from_the_spec() {
        let value = TxnLogValue {
            producer_id: 7,
            previous_producer_id: 6,
            producer_epoch: 2,
            timeout_ms: 1000,
            status: 4, // CompleteCommit
            partitions: Some(vec![TopicPartitions {
                topic: "t".into(),
                partitions: vec![5],
            }]),
            last_update_timestamp_ms: 300,
            start_timestamp_ms: 200,
            client_transaction_version: 2,
            ..TxnLogValue::default()
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 1,                               // version 1
            0, 0, 0, 0, 0, 0, 0, 7,             // producer_id
            0, 2,                               // producer_epoch
            0, 0, 0x03, 0xe8,                   // transaction_timeout_ms
            4,                                  // transaction_status
            2,                                  // compact array: 1 topic
            2, b't',                            //   compact string "t"
            2,                                  //   compact array: 1 partition
            0, 0, 0, 5,                         //     5
            0,                                  //   no tagged fields
            0, 0, 0, 0, 0, 0, 0x01, 0x2c,       // last update 300
            0, 0, 0, 0, 0, 0, 0, 0xc8,          // start 200
            2,                                  // 2 tagged fields
            0, 8, 0, 0, 0, 0, 0, 0, 0, 6,       //   tag 0 previous_producer_id 6
            2, 2, 0, 2,                         //   tag 2 client_transaction_version 2
        ];
        assert_eq!(encode_value(&value, 1), expected);
        assert_eq!(decode_value(&expected).unwrap(), value);
    }

    #[test]
    fn values_round_trip_in_both_versions() {
        let mut all_tags = ongoing();
        all_tags.previous_producer_id = 999;
        all_tags.next_producer_id = 1001;
        all_tags.client_transaction_version = 2;
        for value in [ongoing(), all_tags.clone()] {
            assert_eq!(decode_value(&encode_value(&value, 1)).unwrap(), value);
        }
        assert_eq!(
            decode_value(&encode_value(&ongoing(), 0)).unwrap(),
            ongoing()
        );
        // v0 has no tagged fields: they read back as their defaults.
        let read = decode_value(&encode_value(&all_tags, 0)).unwrap();
        assert_eq!(read, ongoing());
        // v1 with a null partition list, and an unknown tag skipped.
        let empty = TxnLogValue {
            producer_id: 5,
            producer_epoch: 0,
            status: 0,
            ..TxnLogValue::default()
        };
        let mut bytes = encode_value(&empty, 1);
        assert_eq!(bytes[17], 0);
        *bytes.last_mut().unwrap() = 1; // one tagged field...
        bytes.extend_from_slice(&[9, 3, 1, 2, 3]); // ...tag 9, three bytes
        assert_eq!(decode_value(&bytes).unwrap(), empty);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let mut all_tags = ongoing();
        all_tags.previous_producer_id = 1;
        for version in [0, 1] {
            let bytes = encode_value(&all_tags, version);
            for cut in 0..bytes.len() {
                assert!(decode_value(&bytes[..cut]).is_err(), "v{version} cut {cut}");
            }
        }
        let key = encode_key("abc");
        for cut in 0..key.len() {
            assert!(decode_key(&key[..cut]).is_err());
        }
        assert!(matches!(
            decode_value(&[0, 2]),
            Err(RecordError::UnknownVersion { version: 2, .. })
        ));
        // A huge claimed count must not allocate: it runs out of input instead.
        let mut huge = encode_value(&ongoing(), 0);
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value(&huge), Err(RecordError::Truncated));
        let mut huge = encode_value(&ongoing(), 1);
        huge[17..22].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_value(&huge).is_err());
        // A varint of more than five bytes, an unknown status, a bad tag size.
        let mut long = encode_value(&ongoing(), 1);
        long[17..23].copy_from_slice(&[0xff; 6]);
        assert!(decode_value(&long).is_err());
        let mut status = encode_value(&ongoing(), 0);
        status[16] = 8;
        assert_eq!(decode_value(&status), Err(RecordError::UnknownStatus(8)));
        let mut tag = encode_value(&TxnLogValue::default(), 1);
        *tag.last_mut().unwrap() = 1;
        tag.extend_from_slice(&[0, 1, 5]);
        assert!(matches!(
            decode_value(&tag),
            Err(RecordError::BadTaggedField { tag: 0, size: 1 })
        ));
        // A negative v0 string length, invalid UTF-8.
        assert!(decode_key(&[0, 0, 0xff, 0xfe]).is_err());
        assert_eq!(decode_key(&[0, 0, 0, 1, 0xff]), Err(RecordError::NotUtf8));
    }
}
