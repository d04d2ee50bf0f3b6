//! Broker-side recompression, Kafka's `compression.type` on a topic: when it names a codec
//! (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`) rather than `producer`, every batch sent in
//! another codec is rewritten in that one before it is appended, as Kafka's LogValidator does.
//!
//! The rewrite keeps the records byte for byte (each record's offset and timestamp deltas stay
//! relative to the unchanged header), and every header field but three: the codec bits, the
//! batch length and the CRC. So offsets, timestamps, the producer id, epoch and base sequence,
//! and the transactional bit are what the producer sent. Batches already in the topic's codec
//! are kept as sent (Kafka does the same: it recompresses only when the codecs differ), so a
//! record set needing no rewrite costs one walk over its headers.
//!
//! Only the first step of an append: the result goes through the append path's own checks
//! (which is also where a recompressed batch over `max.message.bytes` is refused, as Kafka
//! refuses it with MESSAGE_TOO_LARGE after recompressing).

use bytes::Bytes;

use super::batch::{self, BatchError, BatchHeader, Compression, HEADER_LEN};
use super::codec;
use super::config::{LogConfig, TopicCompression};
use super::error::AppendError;
use super::partition::Log;

impl Log {
    /// `records` in this log's `compression.type` (see [`recompress`]).
    pub(super) fn recompressed(&self, records: Bytes) -> Result<Bytes, AppendError> {
        let config: LogConfig = self.config();
        Ok(recompress(
            records,
            config.compression,
            config.max_message_bytes,
        )?)
    }
}

/// Rewrites the batches of a produce request's record set that are not in `target`'s codec.
/// Returns `records` itself (no copy) when none needs it, or when the record set doesn't even
/// frame into batches (the append refuses it then, with the error it would give anyway).
/// Batches that need a rewrite are checked first as an append checks them (so a corrupt batch
/// is refused as corrupt, not recompressed), then inflated within the append path's bound.
pub fn recompress(
    records: Bytes,
    target: TopicCompression,
    max_message_bytes: usize,
) -> Result<Bytes, BatchError> {
    let TopicCompression::Codec { codec, level } = target else {
        return Ok(records);
    };
    if !needs_rewrite(&records, codec) {
        return Ok(records);
    }
    let batches = batch::split_and_validate(&records, max_message_bytes)?;
    let limit = batch::decompression_limit(max_message_bytes);
    // The output is usually no larger than the input; it grows as needed when it is.
    let mut out = Vec::with_capacity(records.len());
    for (at, header) in &batches {
        let whole = &records[*at..*at + header.total_len().unwrap_or(0)];
        match header.compression() {
            Some(c) if c == codec => out.extend_from_slice(whole),
            _ => out.extend_from_slice(&rewrite(whole, header, codec, level, limit)?),
        }
    }
    Ok(Bytes::from(out))
}

/// Whether any batch of `records` is framed as a batch in a codec other than `codec`. Reads
/// only the headers, and stops at anything that isn't a whole batch.
fn needs_rewrite(records: &[u8], codec: Compression) -> bool {
    let mut rest = records;
    while !rest.is_empty() {
        let Some(total) = batch::declared_total_len(rest).filter(|&t| t <= rest.len()) else {
            return false;
        };
        match BatchHeader::parse(&rest[..total]) {
            Ok(header) if header.compression() != Some(codec) => return true,
            Ok(_) => rest = &rest[total..],
            Err(_) => return false,
        }
    }
    false
}

/// One validated batch with its records in `codec`.
fn rewrite(
    whole: &[u8],
    header: &BatchHeader,
    codec: Compression,
    level: Option<i32>,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    let from = header
        .compression()
        .ok_or(BatchError::Invalid("unknown compression codec"))?;
    let payload = &whole[HEADER_LEN..];
    let inflated;
    let plain = if from == Compression::None {
        payload
    } else {
        inflated = codec::decompress(from, payload, limit)?;
        &inflated[..]
    };
    let packed = if codec == Compression::None {
        plain.to_vec()
    } else {
        codec::compress_at(codec, plain, level)
            .map_err(|_| BatchError::Invalid("the records could not be recompressed"))?
    };
    batch::with_payload(whole, codec, &packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::builder::{sample_builder, BatchBuilder, Record};

    const MAX: usize = 4 << 20;

    fn to(codec: Compression) -> TopicCompression {
        TopicCompression::Codec { codec, level: None }
    }

    /// The uncompressed records of a batch, whatever its codec.
    fn plain_records(batch: &[u8]) -> Vec<u8> {
        let header = BatchHeader::parse(batch).unwrap();
        codec::decompress(header.compression().unwrap(), &batch[HEADER_LEN..], MAX).unwrap()
    }

    /// The header fields a rewrite must keep.
    fn kept(h: &BatchHeader) -> (i64, i32, i32, i64, i64, i64, i16, i32, i32, bool) {
        (
            h.base_offset,
            h.partition_leader_epoch,
            h.last_offset_delta,
            h.base_timestamp,
            h.max_timestamp,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.records_count,
            h.is_transactional(),
        )
    }

    #[test]
    fn every_codec_is_rewritten_into_every_other() {
        let mut builder = BatchBuilder::new().producer(42, 3, 17);
        for i in 0..50 {
            builder.push(&Record {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(vec![i as u8; 200]),
                headers: vec![("h".into(), Some(vec![1, 2]))],
                timestamp: 1_700_000_000_000 + i * 3,
            });
        }
        for from in Compression::ALL {
            let sent = builder.build_compressed(from).unwrap();
            for target in Compression::ALL {
                let stored = recompress(Bytes::from(sent.clone()), to(target), MAX).unwrap();
                let header = batch::validate_for_append(&stored, MAX).unwrap();
                let original = BatchHeader::parse(&sent).unwrap();
                assert_eq!(header.compression(), Some(target), "{from:?} -> {target:?}");
                assert_eq!(kept(&header), kept(&original), "{from:?} -> {target:?}");
                assert_eq!(plain_records(&stored), plain_records(&sent));
                if from == target {
                    assert_eq!(&stored[..], &sent[..], "same codec: kept as sent");
                }
            }
        }
    }

    #[test]
    fn producer_keeps_the_bytes_and_makes_no_copy() {
        let sent = Bytes::from(
            sample_builder(10, 100, 5)
                .build_compressed(Compression::Lz4)
                .unwrap(),
        );
        let stored = recompress(sent.clone(), TopicCompression::Producer, MAX).unwrap();
        assert_eq!(stored.as_ptr(), sent.as_ptr());
        let same = recompress(sent.clone(), to(Compression::Lz4), MAX).unwrap();
        assert_eq!(same.as_ptr(), sent.as_ptr());
    }

    #[test]
    fn only_the_batches_in_another_codec_change() {
        let a = sample_builder(3, 50, 1)
            .build_compressed(Compression::Zstd)
            .unwrap();
        let b = sample_builder(4, 60, 9).build();
        let set = Bytes::from([a.clone(), b.clone()].concat());
        let stored = recompress(set, to(Compression::Zstd), MAX).unwrap();
        let batches = batch::split_and_validate(&stored, MAX).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(&stored[..a.len()], &a[..]);
        assert_eq!(batches[1].1.compression(), Some(Compression::Zstd));
        assert_eq!(plain_records(&stored[batches[1].0..]), plain_records(&b));
    }

    #[test]
    fn levels_are_used() {
        let sent = Bytes::from(sample_builder(200, 500, 1).build());
        let fast = recompress(
            sent.clone(),
            TopicCompression::Codec {
                codec: Compression::Gzip,
                level: Some(1),
            },
            MAX,
        )
        .unwrap();
        let best = recompress(
            sent.clone(),
            TopicCompression::Codec {
                codec: Compression::Gzip,
                level: Some(9),
            },
            MAX,
        )
        .unwrap();
        assert_ne!(fast, best);
        assert_eq!(plain_records(&fast), plain_records(&best));
    }

    #[test]
    fn corrupt_batches_are_refused_not_rewritten() {
        let mut sent = sample_builder(3, 10, 1).build();
        let last = sent.len() - 1;
        sent[last] ^= 0xff;
        let result = recompress(Bytes::from(sent), to(Compression::Gzip), MAX);
        assert!(matches!(result, Err(BatchError::Corrupt(_))), "{result:?}");
        // Not even a batch: left for the append path to refuse.
        let junk = Bytes::from_static(&[1, 2, 3]);
        assert_eq!(
            recompress(junk.clone(), to(Compression::Gzip), MAX).unwrap(),
            junk
        );
    }

    #[test]
    fn a_batch_that_inflates_past_max_message_bytes_is_too_large_after_the_rewrite() {
        // 100 KiB of zeros compress to a few hundred bytes; stored uncompressed they exceed
        // a 10 KiB max.message.bytes, and the append's own check refuses them.
        let mut builder = BatchBuilder::new();
        builder.push(&Record {
            value: Some(vec![0; 100 << 10]),
            ..Default::default()
        });
        let sent = builder.build_compressed(Compression::Zstd).unwrap();
        assert!(sent.len() < 10 << 10);
        let stored = recompress(Bytes::from(sent), to(Compression::None), 10 << 10).unwrap();
        assert!(matches!(
            batch::split_and_validate(&stored, 10 << 10),
            Err(BatchError::TooLarge { .. })
        ));
    }
}
