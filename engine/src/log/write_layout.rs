//! How an append's bytes reach the segment file: the batches exactly as the producer sent them,
//! except each batch's first 16 bytes (its base offset, which the log assigns; its length,
//! kept; its partition leader epoch, which a replicated log's leader stamps, KIP-101). Rather
//! than copy the request's records into a new buffer to patch those bytes, the write gathers
//! `[16-byte prefix, rest of batch]` pairs into one vectored write straight from the request's
//! buffer. LogAppendTime topics rewrite header fields and the CRC too; those appends are
//! copied. A follower's append is written verbatim ([`WriteLayout::verbatim`]): the leader's
//! batches, offsets and epochs included, are the truth.

use bytes::Bytes;

use super::batch;

/// The rewritten prefix of each batch: base offset (8), batch length (4), leader epoch (4).
const PREFIX_LEN: usize = 16;

/// The pieces of one append's write, built batch by batch as offsets are assigned.
pub(crate) struct WriteLayout {
    records: Bytes,
    mode: Mode,
}

enum Mode {
    /// Gather each batch's rewritten prefix with the rest of it from `records`.
    Gather {
        /// Each batch's rewritten prefix, [`PREFIX_LEN`] bytes per batch in batch order.
        prefixes: Vec<u8>,
        /// (position in `records`, length) of each batch.
        batches: Vec<(usize, usize)>,
    },
    /// The copy a LogAppendTime append patches in place.
    Copied(Vec<u8>),
    /// The records as they are.
    Verbatim,
}

impl WriteLayout {
    /// `restamps`: the topic uses LogAppendTime, so batches are copied to be rewritten.
    pub(crate) fn new(records: &Bytes, restamps: bool, batch_count: usize) -> Self {
        let mode = if restamps {
            Mode::Copied(records.to_vec())
        } else {
            Mode::Gather {
                prefixes: Vec::with_capacity(batch_count * PREFIX_LEN),
                batches: Vec::with_capacity(batch_count),
            }
        };
        WriteLayout {
            records: records.clone(),
            mode,
        }
    }

    /// The records written as they are (a follower's append): [`add_batch`](Self::add_batch)
    /// must not be called.
    pub(crate) fn verbatim(records: &Bytes) -> Self {
        WriteLayout {
            records: records.clone(),
            mode: Mode::Verbatim,
        }
    }

    /// Gives the batch at `records[at..at + len]` (a validated batch, so `len` >= 61) its base
    /// offset, the leader's epoch when one is stamped, and, for LogAppendTime, its append time.
    pub(crate) fn add_batch(
        &mut self,
        at: usize,
        len: usize,
        base_offset: i64,
        leader_epoch: Option<i32>,
        append_time: Option<i64>,
    ) {
        match &mut self.mode {
            Mode::Copied(copy) => {
                let bytes = &mut copy[at..at + len];
                batch::set_base_offset(bytes, base_offset);
                if let Some(epoch) = leader_epoch {
                    batch::set_partition_leader_epoch(bytes, epoch);
                }
                if let Some(time) = append_time {
                    batch::stamp_log_append_time(bytes, time);
                }
            }
            Mode::Gather { prefixes, batches } => {
                let start = prefixes.len();
                prefixes.extend_from_slice(&self.records[at..at + PREFIX_LEN]);
                let prefix = &mut prefixes[start..];
                batch::set_base_offset(prefix, base_offset);
                if let Some(epoch) = leader_epoch {
                    batch::set_partition_leader_epoch(prefix, epoch);
                }
                batches.push((at, len));
            }
            Mode::Verbatim => debug_assert!(false, "a verbatim write rewrites nothing"),
        }
    }

    /// The buffers to write, in file order; together as long as the records.
    pub(crate) fn finish(self) -> Vec<Bytes> {
        match self.mode {
            Mode::Copied(copy) => vec![Bytes::from(copy)],
            Mode::Verbatim => vec![self.records],
            Mode::Gather { prefixes, batches } => {
                let prefixes = Bytes::from(prefixes);
                let mut parts = Vec::with_capacity(batches.len() * 2);
                for (i, (at, len)) in batches.into_iter().enumerate() {
                    parts.push(prefixes.slice(i * PREFIX_LEN..(i + 1) * PREFIX_LEN));
                    parts.push(self.records.slice(at + PREFIX_LEN..at + len));
                }
                parts
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::builder::BatchBuilder;
    use crate::log::builder::Record;

    fn two_batches() -> (Bytes, usize) {
        let mut out = Vec::new();
        for n in [3, 5] {
            let mut builder = BatchBuilder::new();
            for i in 0..n {
                builder.push(&Record {
                    value: Some(vec![i as u8; 10]),
                    ..Default::default()
                });
            }
            out.extend_from_slice(&builder.build());
        }
        let first = batch::split_and_validate(&out, usize::MAX).unwrap()[1].0;
        (Bytes::from(out), first)
    }

    fn concat(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn gathered_write_is_the_records_with_new_base_offsets() {
        let (records, second) = two_batches();
        let mut layout = WriteLayout::new(&records, false, 2);
        layout.add_batch(0, second, 100, None, None);
        layout.add_batch(second, records.len() - second, 103, None, None);
        let parts = layout.finish();
        assert_eq!(parts.len(), 4);
        let written = concat(&parts);
        let mut expected = records.to_vec();
        batch::set_base_offset(&mut expected[..second], 100);
        batch::set_base_offset(&mut expected[second..], 103);
        assert_eq!(written, expected);
        // The record bytes are not copied: they are slices of the request's buffer.
        assert_eq!(parts[1].as_ptr(), records[16..].as_ptr());
        batch::split_and_validate(&written, usize::MAX).expect("still valid batches");
    }

    #[test]
    fn log_append_time_copies_and_restamps() {
        let (records, second) = two_batches();
        let mut layout = WriteLayout::new(&records, true, 2);
        layout.add_batch(0, second, 7, Some(9), Some(1_234));
        layout.add_batch(second, records.len() - second, 10, Some(9), Some(1_234));
        let parts = layout.finish();
        assert_eq!(parts.len(), 1);
        let written = concat(&parts);
        let batches = batch::split_and_validate(&written, usize::MAX).expect("CRC recomputed");
        assert_eq!(batches[0].1.max_timestamp, 1_234);
        assert_eq!(batches[1].1.max_timestamp, 1_234);
        assert_eq!(&written[..8], &7i64.to_be_bytes());
        assert_eq!(batches[0].1.partition_leader_epoch, 9);
        assert_eq!(batches[1].1.partition_leader_epoch, 9);
    }

    #[test]
    fn a_stamped_epoch_lands_outside_the_crc() {
        let (records, second) = two_batches();
        let mut layout = WriteLayout::new(&records, false, 2);
        layout.add_batch(0, second, 100, Some(7), None);
        layout.add_batch(second, records.len() - second, 103, Some(7), None);
        let written = concat(&layout.finish());
        let batches = batch::split_and_validate(&written, usize::MAX).expect("CRC still valid");
        for (at, header) in &batches {
            assert_eq!(header.partition_leader_epoch, 7);
            let len = header.total_len().unwrap();
            batch::validate(&written[*at..*at + len], usize::MAX).expect("valid stored batch");
        }
        assert_eq!(
            (batches[0].1.base_offset, batches[1].1.base_offset),
            (100, 103)
        );
        // Everything past the prefix is the producer's bytes.
        assert_eq!(&written[16..second], &records[16..second]);
    }

    #[test]
    fn a_verbatim_write_is_the_records() {
        let (records, _) = two_batches();
        let parts = WriteLayout::verbatim(&records).finish();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0], records);
    }
}
