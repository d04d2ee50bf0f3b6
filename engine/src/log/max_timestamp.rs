//! ListOffsets MAX_TIMESTAMP (KIP-734): the record with the largest timestamp in the log.
//!
//! A segment remembers its largest timestamp with the *last* offset of the batch it came in
//! (what the time index stores, as in Kafka). Since Kafka 3.8 (KAFKA-16310) the answer is the
//! record itself: the first record of that batch whose timestamp is the batch's maximum. So
//! the lookup reads exactly one batch, found from the segment's offset index, and walks its
//! records (decompressed, within the same bound appends use).

use std::rc::Rc;

use super::batch::{self, BatchHeader, Compression, TimestampType, HEADER_LEN};
use super::codec;
use super::error::{ReadError, StorageError};
use super::index::TimestampOffset;
use super::partition::Log;
use super::read::find_batch;
use crate::rt::File;

/// Where the log's largest timestamp was recorded: the segment's file, where to start
/// walking batches, how far the file is written, and the segment's (timestamp, last offset).
struct Candidate {
    file: Rc<File>,
    from: u64,
    readable: u64,
    max: TimestampOffset,
}

impl Log {
    /// The largest timestamp in the log and the last offset of the batch holding it; `None`
    /// for an empty log. Ties go to the earliest segment, as Kafka's do.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        let st = self.inner.state.borrow();
        st.segments
            .values()
            .filter(|s| s.next_offset > st.log_start_offset)
            .filter_map(|s| s.max_timestamp())
            .filter(|m| m.offset < st.high_watermark())
            .fold(None, |best: Option<TimestampOffset>, m| match best {
                Some(b) if b.timestamp >= m.timestamp => Some(b),
                _ => Some(m),
            })
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP): its offset and
    /// timestamp, the first such record when several share it; `None` for an empty log.
    ///
    /// Reads the one batch the segment's maximum points at. Should that batch not be what
    /// the index says (its maximum differs, it is larger than the decompression bound, or its
    /// records don't decode), the answer falls back to the batch's last offset: still a
    /// record of that batch, never an error for a readable log.
    pub async fn max_timestamp_record(&self) -> Result<Option<TimestampOffset>, ReadError> {
        let Some(max) = self.max_timestamp() else {
            return Ok(None);
        };
        let candidate = {
            let st = self.inner.state.borrow();
            st.segments
                .range(..=max.offset)
                .next_back()
                .and_then(|(_, s)| {
                    Some(Candidate {
                        file: s.log.clone()?,
                        from: s.indexes.offsets.lookup(max.offset).position.into(),
                        readable: s.written,
                        max,
                    })
                })
        };
        let Some(c) = candidate else {
            return Ok(Some(max));
        };
        let io = |e: std::io::Error| ReadError::from(StorageError::io("reading a segment", &e));
        let found = find_batch(&c.file, c.from, c.readable, |h| {
            h.last_offset() >= c.max.offset
        })
        .await
        .map_err(io)?;
        let Some((position, header)) = found else {
            return Ok(Some(max));
        };
        let limit = batch::decompression_limit(self.config().max_message_bytes);
        let len = match header.total_len() {
            Some(len) if header.max_timestamp == max.timestamp && len <= limit => len,
            _ => return Ok(Some(max)),
        };
        if position + len as u64 > c.readable {
            return Err(StorageError("a batch runs past its segment's data".into()).into());
        }
        let (result, bytes) = c
            .file
            .read_exact_at(Vec::with_capacity(len), position)
            .await;
        result.map_err(io)?;
        let offset = offset_of_max_timestamp(&bytes, &header, limit).unwrap_or(max.offset);
        Ok(Some(TimestampOffset {
            timestamp: header.max_timestamp,
            offset,
        }))
    }
}

/// The offset of the first record of a batch (`batch_bytes`, with `header` parsed from it)
/// whose timestamp is the batch's maximum timestamp, as Kafka's
/// `RecordBatch.offsetOfMaxTimestamp`. LogAppendTime batches stamp every record with the
/// batch's time, so their first record answers. Compressed records are inflated into at most
/// `limit` bytes; `None` when they can't be, or when no record carries the maximum.
pub(crate) fn offset_of_max_timestamp(
    batch_bytes: &[u8],
    header: &BatchHeader,
    limit: usize,
) -> Option<i64> {
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return Some(header.base_offset);
    }
    let payload = batch_bytes.get(HEADER_LEN..)?;
    let first_max = |records: &[u8]| {
        batch::records_timestamps(header.base_timestamp, records)
            .find(|&(_, ts)| ts == header.max_timestamp)
            .map(|(delta, _)| header.base_offset + delta)
    };
    match header.compression()? {
        Compression::None => first_max(payload),
        codec => first_max(&codec::decompress(codec, payload, limit).ok()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::builder::{BatchBuilder, Record};

    fn batch_with(timestamps: &[i64]) -> BatchBuilder {
        let mut builder = BatchBuilder::new();
        for &timestamp in timestamps {
            builder.push(&Record {
                value: Some(vec![7; 50]),
                timestamp,
                ..Record::default()
            });
        }
        builder
    }

    fn answer(bytes: &[u8]) -> Option<i64> {
        let mut bytes = bytes.to_vec();
        batch::set_base_offset(&mut bytes, 100);
        let header = BatchHeader::parse(&bytes).unwrap();
        offset_of_max_timestamp(&bytes, &header, 1 << 20)
    }

    #[test]
    fn the_first_record_holding_the_maximum_answers() {
        let builder = batch_with(&[10, 50, 20, 50, 30]);
        assert_eq!(
            answer(&builder.build()),
            Some(101),
            "first of the tied maxima"
        );
        assert_eq!(answer(&batch_with(&[5, 4, 3]).build()), Some(100));
        assert_eq!(answer(&batch_with(&[3, 4, 5]).build()), Some(102));
    }

    #[test]
    fn compressed_batches_are_inflated_to_find_it() {
        let builder = batch_with(&[10, 90, 20, 30]);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = builder.build_compressed(codec).unwrap();
            assert_eq!(answer(&bytes), Some(101), "{codec:?}");
            // Beyond the bound: no answer (the caller falls back to the batch's last offset).
            let header = BatchHeader::parse(&bytes).unwrap();
            assert_eq!(offset_of_max_timestamp(&bytes, &header, 10), None);
        }
    }

    #[test]
    fn log_append_time_answers_with_the_first_record() {
        let mut bytes = batch_with(&[10, 90, 20]).build();
        batch::stamp_log_append_time(&mut bytes, 1_000);
        assert_eq!(answer(&bytes), Some(100));
    }

    #[test]
    fn malformed_records_give_no_answer_rather_than_a_panic() {
        let bytes = batch_with(&[10, 90]).build();
        let header = BatchHeader::parse(&bytes).unwrap();
        for cut in 0..bytes.len() {
            let _ = offset_of_max_timestamp(&bytes[..cut], &header, 1 << 20);
        }
        assert_eq!(
            offset_of_max_timestamp(&bytes[..HEADER_LEN], &header, 1 << 20),
            None
        );
    }
}
