//! Producer-side batch compression for workloads (`compression = "lz4"`, ...), with the codecs
//! Kafka clients use, so the broker sees the batches a real producer would send. The consumer
//! side decompresses through the codec's `RecordBatchDecoder`.

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use runnel_engine::log::batch::{compute_crc, HEADER_LEN, LOG_OVERHEAD};
use serde::Deserialize;

/// A batch's compression codec (the low three bits of its attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// Compresses an uncompressed RecordBatch v2 (as [`BatchBuilder`] makes them): its records
/// section becomes one compressed block, and the length, attributes and CRC follow.
///
/// [`BatchBuilder`]: runnel_engine::log::builder::BatchBuilder
pub fn compress_batch(batch: Vec<u8>, codec: Codec) -> Result<Vec<u8>, String> {
    if codec == Codec::None {
        return Ok(batch);
    }
    if batch.len() < HEADER_LEN {
        return Err(format!("a batch of {} bytes has no header", batch.len()));
    }
    let records = &batch[HEADER_LEN..];
    let mut block = BytesMut::with_capacity(records.len() / 2 + 64);
    let copy = |out: &mut BytesMut| {
        out.put_slice(records);
        Ok(())
    };
    match codec {
        Codec::None => unreachable!("returned above"),
        Codec::Gzip => Gzip::compress(&mut block, copy),
        Codec::Snappy => Snappy::compress(&mut block, copy),
        Codec::Lz4 => Lz4::compress(&mut block, copy),
        Codec::Zstd => Zstd::compress(&mut block, copy),
    }
    .map_err(|e| format!("{codec:?} compression failed: {e}"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + block.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&block);
    let length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| "batch too large")?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) | codec.attribute();
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;
    use runnel_engine::log::batch;
    use runnel_engine::log::builder::{BatchBuilder, Record};

    use super::*;

    #[test]
    fn every_codec_round_trips_through_the_kafka_decoder() {
        let mut builder = BatchBuilder::new();
        for i in 0..50u8 {
            builder.push(&Record {
                key: Some(vec![i]),
                value: Some(vec![i % 7; 1000]),
                headers: vec![("h".into(), Some(vec![i]))],
                timestamp: 1_700_000_000_000 + i64::from(i),
            });
        }
        let plain = builder.build();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let compressed = compress_batch(plain.clone(), codec).unwrap();
            assert!(compressed.len() < plain.len() / 4, "{codec:?} compresses");
            // What the broker checks: lengths, CRC, counts.
            let header = batch::validate(&compressed, usize::MAX).unwrap();
            assert_eq!(header.attributes & 7, codec.attribute(), "{codec:?}");
            assert_eq!(header.last_offset_delta, 49);
            // What a consumer reads back.
            let mut bytes = bytes::Bytes::from(compressed);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert_eq!(set.records.len(), 50, "{codec:?}");
            for (i, record) in set.records.iter().enumerate() {
                assert_eq!(record.value.as_deref(), Some(&vec![i as u8 % 7; 1000][..]));
                assert_eq!(record.key.as_deref(), Some(&[i as u8][..]));
            }
        }
        assert_eq!(compress_batch(plain.clone(), Codec::None).unwrap(), plain);
    }
}
