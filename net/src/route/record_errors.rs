//! Which records of a refused batch were at fault, for ProduceResponse's `record_errors`
//! (v8+): Kafka names each record a compacted topic refuses for having no key, and clients act
//! on it (librdkafka fails exactly those records with INVALID_RECORD and the batch's others
//! with _INVALID_DIFFERENT_RECORD, so an application can resend the good ones).
//!
//! The engine refuses the whole batch (`BatchError::Invalid`); the records at fault are found
//! here, from the request's bytes, only when a compacted log refused a batch: the error path
//! pays for decoding, appends don't.

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression as WireCompression, RecordBatchDecoder};
use runnel_engine::log::batch::Compression;
use runnel_engine::log::codec;

/// Kafka's message for one keyless record (LogValidator).
pub fn keyless_message(topic: &str, partition: i32) -> String {
    format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )
}

/// Kafka's message for the whole refusal, naming at most the first three record errors.
pub fn summary(errors: &[(i32, String)]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}

/// The indexes (within their batch) of the records of `batches` that have no key. Batches
/// that don't decode end the search: the engine would have refused them as corrupt, not as
/// keyless.
pub fn keyless(batches: &Bytes, decompression_limit: usize) -> Vec<i32> {
    let mut buf = batches.clone();
    let mut indexes = Vec::new();
    let inflate = |payload: &mut Bytes, wire: WireCompression| {
        let codec = match wire {
            WireCompression::None => return Ok(payload.clone()),
            WireCompression::Gzip => Compression::Gzip,
            WireCompression::Snappy => Compression::Snappy,
            WireCompression::Lz4 => Compression::Lz4,
            WireCompression::Zstd => Compression::Zstd,
        };
        codec::decompress(codec, payload, decompression_limit)
            .map(Bytes::from)
            .map_err(Into::into)
    };
    while buf.has_remaining() {
        let Ok(set) = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(&inflate))
        else {
            break;
        };
        let keyless = set
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none() && !r.control);
        indexes.extend(keyless.map(|(i, _)| i as i32));
    }
    indexes
}

#[cfg(test)]
mod tests {
    use runnel_engine::log::builder::{BatchBuilder, Record};

    use super::*;

    fn record(key: Option<&str>) -> Record {
        Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Some(b"value".to_vec()),
            headers: Vec::new(),
            timestamp: 1,
        }
    }

    #[test]
    fn finds_the_records_without_a_key() {
        for codec in [None, Some(Compression::Gzip), Some(Compression::Zstd)] {
            let mut builder = BatchBuilder::new();
            for i in 0..10 {
                let key = (i % 3 != 0).then_some("k");
                builder.push(&record(key));
            }
            let batch = match codec {
                None => builder.build(),
                Some(codec) => builder.build_compressed(codec).unwrap(),
            };
            assert_eq!(
                keyless(&Bytes::from(batch), 1 << 20),
                [0, 3, 6, 9],
                "{codec:?}"
            );
        }
        let mut keyed = BatchBuilder::new();
        keyed.push(&record(Some("k")));
        assert!(keyless(&Bytes::from(keyed.build()), 1 << 20).is_empty());
        assert!(keyless(&Bytes::from_static(b"not a batch"), 1 << 20).is_empty());
    }

    #[test]
    fn messages_read_as_kafkas() {
        let errors: Vec<(i32, String)> =
            (0..5).map(|i| (i * 10, keyless_message("t", 2))).collect();
        assert_eq!(
            errors[0].1,
            "Compacted topic cannot accept message without key in topic partition t-2."
        );
        let summary = summary(&errors);
        assert!(summary
            .starts_with("One or more records have been rejected due to 5 record errors in total"));
        assert!(summary.contains("RecordError(batchIndex=20, message='Compacted topic"));
        assert!(
            !summary.contains("batchIndex=30"),
            "three at most: {summary}"
        );
    }
}
