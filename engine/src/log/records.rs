//! The records inside a RecordBatch v2 (uncompressed, or once decompressed), as Kafka's
//! DefaultRecord lays them out:
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused
//! timestampDelta  varlong
//! offsetDelta     varint   0, 1, 2, ... in order
//! keyLength       varint   -1 for null
//! key             bytes
//! valueLength     varint   -1 for null
//! value           bytes
//! headerCount     varint
//! headers         [keyLength varint (>= 0), key, valueLength varint (-1 for null), value]
//! ```
//!
//! [`check_records`] walks them without copying: framing that doesn't decode is `Corrupt`
//! (CORRUPT_MESSAGE), counts or offset deltas that disagree with the batch header are
//! `Invalid` (INVALID_RECORD).

use super::batch::BatchError;

/// Checks that `records` holds exactly `expected` well-framed records with offset deltas
/// 0..expected and nothing after them. Stops at the first record beyond `expected`, so a
/// header that undercounts costs no more than the records it claims.
pub fn check_records(records: &[u8], expected: i32) -> Result<(), BatchError> {
    let mut rest = Cursor(records);
    let mut count: i32 = 0;
    while !rest.is_empty() {
        let body = rest.take_record()?;
        let offset_delta = check_record_body(body)?;
        if count >= expected {
            return Err(BatchError::Invalid(
                "more records than the batch header counts",
            ));
        }
        if offset_delta != count {
            return Err(BatchError::Invalid(
                "record offset deltas are not 0, 1, 2, ...",
            ));
        }
        count += 1;
    }
    if count != expected {
        return Err(BatchError::Invalid(
            "fewer records than the batch header counts",
        ));
    }
    Ok(())
}

/// One record of a batch, as the cleaner and the append checks of compacted topics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The whole record, its length prefix included: what is copied when it is kept as is.
    pub bytes: &'a [u8],
    pub attributes: u8,
    pub timestamp_delta: i64,
    /// The record's fields after its timestamp delta (offset delta, key, value, headers):
    /// what a record re-based on another batch timestamp keeps unchanged.
    pub after_timestamp: &'a [u8],
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// A null value: a tombstone when the record has a key.
    pub value_is_null: bool,
}

/// The records of a batch's records section (decompressed), in order; stops at the first
/// framing error, which it yields.
pub fn walk(records: &[u8]) -> impl Iterator<Item = Result<RecordView<'_>, BatchError>> {
    let mut rest = Cursor(records);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let before = rest.0;
        let view = rest.take_record().and_then(|body| {
            let bytes = &before[..before.len() - rest.0.len()];
            let mut fields = Cursor(body);
            let attributes = fields.skip(1)?[0];
            let timestamp_delta = fields.varlong()?;
            let after_timestamp = fields.0;
            let offset_delta = fields.varint()?;
            let key = match fields.varint()? {
                -1 => None,
                len => Some(fields.skip_len(len)?),
            };
            let value = match fields.varint()? {
                -1 => None,
                len => Some(fields.skip_len(len)?),
            };
            Ok(RecordView {
                bytes,
                attributes,
                timestamp_delta,
                after_timestamp,
                offset_delta,
                key,
                value,
                value_is_null: value.is_none(),
            })
        });
        failed = view.is_err();
        Some(view)
    })
}

/// Checks one record's fields (everything after its length) fill it exactly; returns its
/// offset delta.
fn check_record_body(body: &[u8]) -> Result<i32, BatchError> {
    let mut fields = Cursor(body);
    fields.skip(1)?; // attributes: unused by v2 records
    fields.varlong()?; // timestamp delta: any value is a timestamp
    let offset_delta = fields.varint()?;
    fields.nullable_bytes()?; // key
    fields.nullable_bytes()?; // value
    let headers = fields.varint()?;
    if headers < 0 {
        return Err(BatchError::Corrupt("negative record header count"));
    }
    for _ in 0..headers {
        // Each header takes at least two bytes, so a huge count fails on the bytes, fast.
        let key_len = fields.varint()?;
        if key_len < 0 {
            return Err(BatchError::Corrupt("negative record header key length"));
        }
        fields.skip_len(key_len)?;
        fields.nullable_bytes()?;
    }
    if !fields.is_empty() {
        return Err(BatchError::Corrupt(
            "record length disagrees with its fields",
        ));
    }
    Ok(offset_delta)
}

/// A read position in a byte slice; every read is bounds-checked and fails as `Corrupt`.
struct Cursor<'a>(&'a [u8]);

const TRUNCATED: BatchError = BatchError::Corrupt("record truncated");

impl<'a> Cursor<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.0.len() {
            return Err(TRUNCATED);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    /// Skips a length read from the wire, which must not be negative.
    fn skip_len(&mut self, len: i32) -> Result<&'a [u8], BatchError> {
        let len = usize::try_from(len).map_err(|_| BatchError::Corrupt("negative length"))?;
        self.skip(len)
    }

    /// A length-prefixed record; returns the bytes after its length field.
    fn take_record(&mut self) -> Result<&'a [u8], BatchError> {
        let len = self.varint()?;
        self.skip_len(len)
    }

    /// Bytes with a varint length, -1 meaning null.
    fn nullable_bytes(&mut self) -> Result<(), BatchError> {
        match self.varint()? {
            -1 => Ok(()),
            len => self.skip_len(len).map(drop),
        }
    }

    /// A zig-zag varint of at most 5 bytes that fits an i32 (Kafka's `readVarint`).
    fn varint(&mut self) -> Result<i32, BatchError> {
        // Most lengths and deltas in a record fit one byte: decode those without the loop.
        if let Some(&byte) = self.0.first() {
            if byte & 0x80 == 0 {
                self.0 = &self.0[1..];
                return Ok(i32::from(byte >> 1) ^ -i32::from(byte & 1));
            }
        }
        let raw = self.raw_varint(5)?;
        let raw =
            u32::try_from(raw).map_err(|_| BatchError::Corrupt("varint overflows 32 bits"))?;
        Ok((raw >> 1) as i32 ^ -((raw & 1) as i32))
    }

    /// A zig-zag varint of at most 10 bytes (Kafka's `readVarlong`).
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.raw_varint(10)?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    fn raw_varint(&mut self, max_bytes: usize) -> Result<u64, BatchError> {
        let mut raw: u64 = 0;
        for (i, &byte) in self.0.iter().enumerate().take(max_bytes) {
            raw |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(raw);
            }
        }
        if self.0.len() < max_bytes {
            Err(TRUNCATED)
        } else {
            Err(BatchError::Corrupt("varint too long"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::HEADER_LEN;
    use crate::log::builder::{put_varint, BatchBuilder, Record};
    use proptest::prelude::*;

    fn records_of(n: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        for i in 0..n {
            builder.push(&Record {
                key: (i % 2 == 0).then(|| vec![1; i]),
                value: Some(vec![2; 3 * i]),
                headers: vec![("h".into(), None), ("k".into(), Some(vec![3; i]))],
                timestamp: 1000 - i as i64,
            });
        }
        builder.build()[HEADER_LEN..].to_vec()
    }

    /// One record with the given fields, framing computed.
    fn record(offset_delta: i64, tail: &[u8]) -> Vec<u8> {
        let mut body = vec![0];
        put_varint(&mut body, 0);
        put_varint(&mut body, offset_delta);
        body.extend_from_slice(tail);
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
        out
    }

    const NULL_KEY_VALUE_NO_HEADERS: &[u8] = &[1, 1, 0];

    #[test]
    fn built_records_pass() {
        for n in [1, 2, 50] {
            check_records(&records_of(n), n as i32).unwrap();
        }
    }

    #[test]
    fn counts_must_match() {
        let records = records_of(3);
        assert!(matches!(
            check_records(&records, 4),
            Err(BatchError::Invalid(_))
        ));
        assert!(matches!(
            check_records(&records, 2),
            Err(BatchError::Invalid(_))
        ));
        assert!(matches!(
            check_records(&records, i32::MAX),
            Err(BatchError::Invalid(_))
        ));
        assert!(matches!(check_records(&[], 1), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn offset_deltas_must_run_in_order() {
        let set = [
            record(0, NULL_KEY_VALUE_NO_HEADERS),
            record(2, NULL_KEY_VALUE_NO_HEADERS),
        ]
        .concat();
        assert!(matches!(
            check_records(&set, 2),
            Err(BatchError::Invalid(_))
        ));
        let starts_at_one = record(1, NULL_KEY_VALUE_NO_HEADERS);
        assert!(matches!(
            check_records(&starts_at_one, 1),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn framing_errors_are_corrupt() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("field past the record", record(0, &[1, 4, 9, 0])),
            ("bytes left in the record", record(0, &[1, 1, 0, 7])),
            ("negative key length", record(0, &[3, 1, 0])),
            ("negative header count", record(0, &[1, 1, 1])),
            ("negative header key length", record(0, &[1, 1, 2, 1, 1])),
            (
                "header count beyond the record",
                record(0, &[1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f]),
            ),
            (
                "six-byte varint",
                record(0, &[0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 0]),
            ),
            ("record length past the end", vec![40, 0, 0, 0]),
            ("negative record length", vec![3, 0]),
            (
                "trailing garbage",
                [record(0, NULL_KEY_VALUE_NO_HEADERS), vec![0x80]].concat(),
            ),
        ];
        for (what, bytes) in cases {
            let result = check_records(bytes, 1);
            assert!(
                matches!(result, Err(BatchError::Corrupt(_))),
                "{what}: {result:?}"
            );
        }
    }

    #[test]
    fn a_well_framed_extra_record_is_invalid() {
        let set = [records_of(2), record(2, NULL_KEY_VALUE_NO_HEADERS)].concat();
        assert!(matches!(
            check_records(&set, 2),
            Err(BatchError::Invalid(_))
        ));
        check_records(&set, 3).unwrap();
    }

    #[test]
    fn walk_sees_keys_values_and_deltas() {
        let records = records_of(4);
        let views: Vec<_> = walk(&records).collect::<Result<_, _>>().unwrap();
        assert_eq!(views.len(), 4);
        assert_eq!(
            views.iter().map(|v| v.bytes.len()).sum::<usize>(),
            records.len()
        );
        for (i, view) in views.iter().enumerate() {
            assert_eq!(view.offset_delta, i as i32);
            assert_eq!(view.key, (i % 2 == 0).then_some(&[1u8; 8][..i]));
            assert!(!view.value_is_null);
            assert_eq!(view.timestamp_delta, -(i as i64));
        }
        let tombstone = record(0, &[2, 7, 1, 0]);
        let view = walk(&tombstone).next().unwrap().unwrap();
        assert_eq!((view.key, view.value_is_null), (Some(&[7u8][..]), true));
        let bad: Vec<_> = walk(&[40, 0, 0]).collect();
        assert!(matches!(bad[..], [Err(BatchError::Corrupt(_))]));
    }

    proptest! {
        /// Any bytes: an answer, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), n in any::<i32>()) {
            let _ = check_records(&bytes, n);
            let _ = walk(&bytes).count();
        }

        /// Every strict prefix of valid records is refused.
        #[test]
        fn prefixes_are_refused(n in 1usize..10, cut in any::<prop::sample::Index>()) {
            let records = records_of(n);
            let len = cut.index(records.len());
            prop_assert!(check_records(&records[..len], n as i32).is_err());
        }
    }
}
