//! What a cleaning pass keeps of one batch (pure): Kafka's `LogCleaner.shouldRetainRecord`
//! and `MemoryRecords.filterTo` for RecordBatch v2.
//!
//! A record goes when a newer record of its key exists (the offset map says so), when it has
//! no key (a compacted topic can't say what it would supersede), or when it is a tombstone
//! whose delete horizon has passed. A tombstone that stays gets a horizon the first time a
//! pass sees it (`now + delete.retention.ms`, KIP-534), stored in its batch, so it survives
//! restarts and later passes count from the first sighting.
//!
//! A batch with records removed keeps its base offset and last offset delta, so offsets and
//! what consumers fetch next stay as they were; a batch left with no records is dropped,
//! unless the caller needs it kept (then it stays, empty): the last batch of each idempotent
//! producer (its sequence state must survive a rebuild) and the last batch of each output
//! segment (so the segment's offsets still end where the next one begins).
//!
//! Transactions (txns.rs decides which batches are aborted and which markers may go): a batch
//! of an aborted transaction loses all its records ([`filter_aborted`]); a marker that may go
//! gets a delete horizon the first time, as a tombstone does, and goes once it has passed
//! ([`filter_marker`]). Other control batches are kept whole.

use std::borrow::Cow;

use super::offset_map::{key_hash, OffsetMap};
use crate::log::batch::{self, BatchError, BatchHeader, Compression, HEADER_LEN};
use crate::log::builder::put_varint;
use crate::log::{codec, records};

/// The pass-wide facts a batch is filtered by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterRules {
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// The most a compressed batch may inflate to.
    pub decompression_limit: usize,
}

/// What becomes of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Copied as it is.
    Keep,
    /// Replaced by these bytes.
    Rewrite(Vec<u8>),
    /// Gone.
    Drop,
}

/// The outcome and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filtered {
    pub outcome: Outcome,
    pub records_removed: u32,
    /// The delete horizon of the tombstones the batch still holds.
    pub tombstone_horizon: Option<i64>,
}

/// Filters `bytes`, one whole stored batch with `header`. `keep_batch`: keep it (empty if
/// need be) even when no record stays.
pub(crate) fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    map: &OffsetMap,
    rules: &FilterRules,
    keep_batch: bool,
) -> Result<Filtered, BatchError> {
    let keep_whole = Filtered {
        outcome: Outcome::Keep,
        records_removed: 0,
        tombstone_horizon: None,
    };
    if header.is_control() {
        return Ok(keep_whole);
    }
    if header.records_count == 0 {
        // Kept empty by an earlier pass: it goes once nothing needs it any more (segments
        // merged, the producer wrote again).
        let outcome = if keep_batch {
            Outcome::Keep
        } else {
            Outcome::Drop
        };
        return Ok(Filtered {
            outcome,
            ..keep_whole
        });
    }
    let codec = header
        .compression()
        .ok_or(BatchError::Invalid("unknown compression codec"))?;
    let records = records_section(bytes, header, rules.decompression_limit)?;
    let horizon = header.delete_horizon();
    let horizon_passed = horizon.is_some_and(|h| h <= rules.now_ms);
    let mut kept = Vec::new();
    let mut removed = 0u32;
    let mut has_tombstones = false;
    for record in records::walk(&records) {
        let record = record?;
        let offset = header
            .base_offset
            .saturating_add(i64::from(record.offset_delta));
        let retain = match record.key {
            None => false,
            Some(key) => {
                let superseded = map.get(key_hash(key)).is_some_and(|newest| newest > offset);
                let expired_tombstone = record.value_is_null && horizon_passed;
                !superseded && !expired_tombstone
            }
        };
        if retain {
            has_tombstones |= record.value_is_null;
            kept.push(record);
        } else {
            removed += 1;
        }
    }
    let needs_horizon = has_tombstones && horizon.is_none();
    let tombstone_horizon = has_tombstones.then(|| horizon.unwrap_or_else(|| new_horizon(rules)));
    if removed == 0 && !needs_horizon {
        return Ok(Filtered {
            tombstone_horizon,
            ..keep_whole
        });
    }
    if kept.is_empty() && !keep_batch {
        return Ok(Filtered {
            outcome: Outcome::Drop,
            records_removed: removed,
            tombstone_horizon: None,
        });
    }
    let new_base_timestamp = tombstone_horizon.filter(|_| needs_horizon);
    let section = records_rebased(&kept, header, new_base_timestamp);
    let (codec, payload) = if kept.is_empty() || codec == Compression::None {
        (Compression::None, section)
    } else {
        let compressed = codec::compress(codec, &section)
            .map_err(|_| BatchError::Corrupt("recompressing a cleaned batch failed"))?;
        (codec, compressed)
    };
    let count = i32::try_from(kept.len()).expect("fewer records than the batch had");
    let rewritten = batch::rewritten(bytes, codec, &payload, count, new_base_timestamp)?;
    Ok(Filtered {
        outcome: Outcome::Rewrite(rewritten),
        records_removed: removed,
        tombstone_horizon,
    })
}

/// When a tombstone or marker first found removable may go: `delete.retention.ms` from now.
fn new_horizon(rules: &FilterRules) -> i64 {
    rules.now_ms.saturating_add(rules.delete_retention_ms)
}

/// The records section of `kept`. Records keep their bytes, except when the batch gets a
/// horizon (`new_base`): its base timestamp becomes the horizon and each record's delta is
/// re-based so its timestamp reads the same.
fn records_rebased(
    kept: &[records::RecordView<'_>],
    header: &BatchHeader,
    new_base: Option<i64>,
) -> Vec<u8> {
    let mut section = Vec::with_capacity(kept.iter().map(|r| r.bytes.len() + 4).sum());
    for record in kept {
        match new_base {
            None => section.extend_from_slice(record.bytes),
            Some(base) => {
                let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
                let mut body = Vec::with_capacity(record.bytes.len() + 8);
                body.push(record.attributes);
                put_varint(&mut body, timestamp.wrapping_sub(base));
                body.extend_from_slice(record.after_timestamp);
                put_varint(&mut section, body.len() as i64);
                section.extend_from_slice(&body);
            }
        }
    }
    section
}

/// A batch of an aborted transaction: all its records go; the batch itself stays, empty,
/// only when `keep_batch`.
pub(crate) fn filter_aborted(
    bytes: &[u8],
    header: &BatchHeader,
    keep_batch: bool,
) -> Result<Filtered, BatchError> {
    let removed = u32::try_from(header.records_count.max(0)).unwrap_or(0);
    let outcome = match (keep_batch, header.records_count) {
        (false, _) => Outcome::Drop,
        (true, 0) => Outcome::Keep,
        (true, _) => Outcome::Rewrite(batch::rewritten(bytes, Compression::None, &[], 0, None)?),
    };
    Ok(Filtered {
        outcome,
        records_removed: removed,
        tombstone_horizon: None,
    })
}

/// A control batch: kept unless `removable` (txns.rs) and not `keep_batch`; a removable one
/// gets a delete horizon first and goes once it has passed.
pub(crate) fn filter_marker(
    bytes: &[u8],
    header: &BatchHeader,
    removable: bool,
    rules: &FilterRules,
    keep_batch: bool,
) -> Result<Filtered, BatchError> {
    let keep_whole = Filtered {
        outcome: Outcome::Keep,
        records_removed: 0,
        tombstone_horizon: None,
    };
    if !removable || keep_batch {
        return Ok(keep_whole);
    }
    match header.delete_horizon() {
        Some(horizon) if horizon <= rules.now_ms => Ok(Filtered {
            outcome: Outcome::Drop,
            records_removed: u32::try_from(header.records_count.max(0)).unwrap_or(0),
            tombstone_horizon: None,
        }),
        Some(horizon) => Ok(Filtered {
            tombstone_horizon: Some(horizon),
            ..keep_whole
        }),
        None => {
            let horizon = new_horizon(rules);
            let records = records_section(bytes, header, rules.decompression_limit)?;
            let kept = records::walk(&records).collect::<Result<Vec<_>, _>>()?;
            let section = records_rebased(&kept, header, Some(horizon));
            let codec = header
                .compression()
                .ok_or(BatchError::Invalid("unknown compression codec"))?;
            let payload = if codec == Compression::None {
                section
            } else {
                codec::compress(codec, &section)
                    .map_err(|_| BatchError::Corrupt("recompressing a marker failed"))?
            };
            let count = header.records_count;
            let rewritten = batch::rewritten(bytes, codec, &payload, count, Some(horizon))?;
            Ok(Filtered {
                outcome: Outcome::Rewrite(rewritten),
                records_removed: 0,
                tombstone_horizon: Some(horizon),
            })
        }
    }
}

/// The records section of a whole batch: in place when uncompressed, otherwise inflated
/// into at most `limit` bytes.
pub(crate) fn records_section<'a>(
    bytes: &'a [u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<Cow<'a, [u8]>, BatchError> {
    let codec = header
        .compression()
        .ok_or(BatchError::Invalid("unknown compression codec"))?;
    let payload = bytes
        .get(HEADER_LEN..)
        .ok_or(BatchError::Corrupt("shorter than a batch header"))?;
    Ok(match codec {
        Compression::None => Cow::Borrowed(payload),
        codec => Cow::Owned(codec::decompress(codec, payload, limit)?),
    })
}

/// Refuses a batch for a compacted topic that holds a record without a key (INVALID_RECORD,
/// as Kafka does): the cleaner could never tell what it supersedes. Control batches carry
/// no client records and pass.
pub(crate) fn check_keys(
    bytes: &[u8],
    header: &BatchHeader,
    decompression_limit: usize,
) -> Result<(), BatchError> {
    if header.is_control() {
        return Ok(());
    }
    let records = records_section(bytes, header, decompression_limit)?;
    for record in records::walk(&records) {
        if record?.key.is_none() {
            return Err(BatchError::Invalid(
                "compacted topic cannot accept a record without a key",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{set_base_offset, validate};
    use crate::log::builder::{BatchBuilder, Record};

    const RULES: FilterRules = FilterRules {
        now_ms: 10_000,
        delete_retention_ms: 1_000,
        decompression_limit: 1 << 20,
    };

    fn rec(key: Option<&str>, value: Option<&str>, timestamp: i64) -> Record {
        Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: vec![("h".into(), Some(b"x".to_vec()))],
            timestamp,
        }
    }

    /// A stored batch at `base` holding `records`, in `codec`.
    fn stored(base: i64, records: &[Record], codec: Compression) -> (Vec<u8>, BatchHeader) {
        let mut builder = BatchBuilder::new().producer(7, 0, 0);
        for r in records {
            builder.push(r);
        }
        let mut bytes = if codec == Compression::None {
            builder.build()
        } else {
            builder.build_compressed(codec).unwrap()
        };
        set_base_offset(&mut bytes, base);
        let header = validate(&bytes, 1 << 20).unwrap();
        (bytes, header)
    }

    /// `(offset, key, value, timestamp)` of each record of a stored batch.
    fn contents(bytes: &[u8]) -> Vec<(i64, Option<String>, bool, i64)> {
        let header = validate(bytes, 1 << 20).unwrap();
        let payload = &bytes[HEADER_LEN..];
        let inflated = match header.compression().unwrap() {
            Compression::None => payload.to_vec(),
            c => codec::decompress(c, payload, 1 << 20).unwrap(),
        };
        records::walk(&inflated)
            .map(|r| {
                let r = r.unwrap();
                (
                    header.base_offset + i64::from(r.offset_delta),
                    r.key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    r.value_is_null,
                    header.base_timestamp + r.timestamp_delta,
                )
            })
            .collect()
    }

    fn map_of(entries: &[(&str, i64)]) -> OffsetMap {
        let mut map = OffsetMap::new(1 << 16);
        for (key, offset) in entries {
            map.put(key_hash(key.as_bytes()), *offset);
        }
        map
    }

    #[test]
    fn superseded_and_keyless_records_go_and_offsets_stay() {
        for codec in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let (bytes, header) = stored(
                100,
                &[
                    rec(Some("a"), Some("1"), 1),
                    rec(None, Some("2"), 2),
                    rec(Some("b"), Some("3"), 3),
                    rec(Some("c"), Some("4"), 4),
                ],
                codec,
            );
            // "a" was written again at 150; "b" last at 102 (this record); "c" not mapped.
            let map = map_of(&[("a", 150), ("b", 102)]);
            let out = filter_batch(&bytes, &header, &map, &RULES, false).unwrap();
            assert_eq!(out.records_removed, 2);
            let Outcome::Rewrite(new) = out.outcome else {
                panic!("{codec:?}: {:?}", out.outcome)
            };
            let new_header = validate(&new, 1 << 20).unwrap();
            assert_eq!(new_header.base_offset, 100);
            assert_eq!(
                new_header.last_offset(),
                103,
                "last offset kept (KAFKA-5443)"
            );
            assert_eq!(new_header.records_count, 2);
            assert_eq!(new_header.compression(), Some(codec));
            assert_eq!(new_header.producer_id, 7);
            assert_eq!(
                contents(&new),
                vec![
                    (102, Some("b".into()), false, 3),
                    (103, Some("c".into()), false, 4)
                ]
            );
        }
    }

    #[test]
    fn nothing_removed_keeps_the_bytes() {
        let (bytes, header) = stored(0, &[rec(Some("a"), Some("1"), 1)], Compression::None);
        let out = filter_batch(&bytes, &header, &map_of(&[("a", 0)]), &RULES, false).unwrap();
        assert_eq!(out.outcome, Outcome::Keep);
        assert_eq!(out.records_removed, 0);
    }

    #[test]
    fn an_emptied_batch_goes_unless_it_must_stay() {
        let (bytes, header) = stored(
            5,
            &[rec(Some("a"), Some("1"), 1), rec(Some("a"), Some("2"), 2)],
            Compression::Gzip,
        );
        let map = map_of(&[("a", 9)]);
        let out = filter_batch(&bytes, &header, &map, &RULES, false).unwrap();
        assert_eq!((out.outcome, out.records_removed), (Outcome::Drop, 2));
        let out = filter_batch(&bytes, &header, &map, &RULES, true).unwrap();
        let Outcome::Rewrite(empty) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        let h = validate(&empty, 1 << 20).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.records_count), (5, 6, 0));
        // Once nothing needs it, a later pass drops it.
        let later = filter_batch(&empty, &h, &map, &RULES, false).unwrap();
        assert_eq!(later.outcome, Outcome::Drop);
        let kept = filter_batch(&empty, &h, &map, &RULES, true).unwrap();
        assert_eq!(kept.outcome, Outcome::Keep);
        assert_eq!(h.compression(), Some(Compression::None));
        assert_eq!(
            (h.producer_id, h.base_sequence),
            (7, 0),
            "producer state survives"
        );
    }

    #[test]
    fn a_removable_marker_gets_a_horizon_then_goes() {
        use crate::log::txn::marker::{decode_marker, marker_batch};
        use crate::log::txn::{EndTxnMarker, MarkerKind};
        let marker = EndTxnMarker {
            kind: MarkerKind::Abort,
            coordinator_epoch: 3,
        };
        let mut bytes = marker_batch(7, 0, marker, 500);
        set_base_offset(&mut bytes, 40);
        let header = validate(&bytes, 1 << 20).unwrap();
        let kept = filter_marker(&bytes, &header, false, &RULES, false).unwrap();
        assert_eq!(kept.outcome, Outcome::Keep);
        let kept = filter_marker(&bytes, &header, true, &RULES, true).unwrap();
        assert_eq!(kept.outcome, Outcome::Keep, "a batch that must stay stays");
        let out = filter_marker(&bytes, &header, true, &RULES, false).unwrap();
        assert_eq!(out.tombstone_horizon, Some(11_000));
        let Outcome::Rewrite(marked) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        let h = validate(&marked, 1 << 20).unwrap();
        assert_eq!((h.base_offset, h.delete_horizon()), (40, Some(11_000)));
        assert_eq!(
            decode_marker(&marked, &h),
            Ok(Some(marker)),
            "still the marker"
        );
        let out = filter_marker(&marked, &h, true, &RULES, false).unwrap();
        assert_eq!(
            (out.outcome, out.tombstone_horizon),
            (Outcome::Keep, Some(11_000))
        );
        let later = FilterRules {
            now_ms: 11_000,
            ..RULES
        };
        let out = filter_marker(&marked, &h, true, &later, false).unwrap();
        assert_eq!(out.outcome, Outcome::Drop);
    }

    #[test]
    fn an_aborted_batch_loses_every_record() {
        let (bytes, header) = stored(
            5,
            &[rec(Some("a"), Some("x"), 1), rec(Some("b"), Some("y"), 2)],
            Compression::Lz4,
        );
        let out = filter_aborted(&bytes, &header, false).unwrap();
        assert_eq!((out.outcome, out.records_removed), (Outcome::Drop, 2));
        let out = filter_aborted(&bytes, &header, true).unwrap();
        let Outcome::Rewrite(empty) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        let h = validate(&empty, 1 << 20).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.records_count), (5, 6, 0));
        assert_eq!(h.producer_id, 7);
    }

    #[test]
    fn tombstones_get_a_horizon_then_go_after_it() {
        let (bytes, header) = stored(
            0,
            &[rec(Some("a"), None, 500), rec(Some("b"), Some("x"), 600)],
            Compression::None,
        );
        let map = map_of(&[("a", 0), ("b", 1)]);
        // First sighting: nothing removed, but the batch is rewritten to carry the horizon.
        let out = filter_batch(&bytes, &header, &map, &RULES, false).unwrap();
        assert_eq!(out.tombstone_horizon, Some(11_000));
        let Outcome::Rewrite(marked) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        let h = validate(&marked, 1 << 20).unwrap();
        assert_eq!(h.delete_horizon(), Some(11_000));
        assert_eq!(h.max_timestamp, 600);
        assert_eq!(
            contents(&marked),
            vec![
                (0, Some("a".into()), true, 500),
                (1, Some("b".into()), false, 600)
            ],
            "timestamps read the same after re-basing"
        );
        // Before the horizon the marked batch is kept as it is.
        let out = filter_batch(&marked, &h, &map, &RULES, false).unwrap();
        assert_eq!(
            (out.outcome, out.tombstone_horizon),
            (Outcome::Keep, Some(11_000))
        );
        // After it the tombstone goes.
        let later = FilterRules {
            now_ms: 11_000,
            ..RULES
        };
        let out = filter_batch(&marked, &h, &map, &later, false).unwrap();
        assert_eq!((out.records_removed, out.tombstone_horizon), (1, None));
        let Outcome::Rewrite(swept) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        assert_eq!(contents(&swept), vec![(1, Some("b".into()), false, 600)]);
    }

    #[test]
    fn keyless_records_are_refused_on_append() {
        let (bytes, header) = stored(0, &[rec(Some("a"), Some("1"), 1)], Compression::Snappy);
        check_keys(&bytes, &header, 1 << 20).unwrap();
        let (bytes, header) = stored(
            0,
            &[rec(Some("a"), Some("1"), 1), rec(None, Some("2"), 2)],
            Compression::Snappy,
        );
        assert!(matches!(
            check_keys(&bytes, &header, 1 << 20),
            Err(BatchError::Invalid(_))
        ));
    }
}
