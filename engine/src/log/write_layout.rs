//! How an append's bytes reach the segment file: the batches exactly as the producer sent them,
//! except each batch's first 8 bytes (its base offset), which the log assigns. Rather than copy
//! the request's records into a new buffer to patch those 8 bytes, the write gathers
//! `[base offset, rest of batch]` pairs into one vectored write straight from the request's
//! buffer. LogAppendTime topics rewrite header fields and the CRC too; those appends are copied.

use bytes::Bytes;

use super::batch;

/// The pieces of one append's write, built batch by batch as offsets are assigned.
pub(crate) struct WriteLayout {
    records: Bytes,
    /// The copy a LogAppendTime append patches in place (`None`: gather from `records`).
    copied: Option<Vec<u8>>,
    /// Each batch's base offset, big-endian, 8 bytes per batch in batch order.
    base_offsets: Vec<u8>,
    /// (position in `records`, length) of each batch.
    batches: Vec<(usize, usize)>,
}

impl WriteLayout {
    /// `restamps`: the topic uses LogAppendTime, so batches are copied to be rewritten.
    pub(crate) fn new(records: &Bytes, restamps: bool, batch_count: usize) -> Self {
        WriteLayout {
            records: records.clone(),
            copied: restamps.then(|| records.to_vec()),
            base_offsets: Vec::with_capacity(if restamps { 0 } else { batch_count * 8 }),
            batches: Vec::with_capacity(if restamps { 0 } else { batch_count }),
        }
    }

    /// Gives the batch at `records[at..at + len]` (a validated batch, so `len` >= 61) its base
    /// offset and, for LogAppendTime, its append time.
    pub(crate) fn add_batch(
        &mut self,
        at: usize,
        len: usize,
        base_offset: i64,
        append_time: Option<i64>,
    ) {
        match &mut self.copied {
            Some(copy) => {
                let bytes = &mut copy[at..at + len];
                batch::set_base_offset(bytes, base_offset);
                if let Some(time) = append_time {
                    batch::stamp_log_append_time(bytes, time);
                }
            }
            None => {
                self.base_offsets
                    .extend_from_slice(&base_offset.to_be_bytes());
                self.batches.push((at, len));
            }
        }
    }

    /// The buffers to write, in file order; together as long as the records.
    pub(crate) fn finish(self) -> Vec<Bytes> {
        if let Some(copy) = self.copied {
            return vec![Bytes::from(copy)];
        }
        let base_offsets = Bytes::from(self.base_offsets);
        let mut parts = Vec::with_capacity(self.batches.len() * 2);
        for (i, (at, len)) in self.batches.into_iter().enumerate() {
            parts.push(base_offsets.slice(i * 8..i * 8 + 8));
            parts.push(self.records.slice(at + 8..at + len));
        }
        parts
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
        layout.add_batch(0, second, 100, None);
        layout.add_batch(second, records.len() - second, 103, None);
        let parts = layout.finish();
        assert_eq!(parts.len(), 4);
        let written = concat(&parts);
        let mut expected = records.to_vec();
        batch::set_base_offset(&mut expected[..second], 100);
        batch::set_base_offset(&mut expected[second..], 103);
        assert_eq!(written, expected);
        // The record bytes are not copied: they are slices of the request's buffer.
        assert_eq!(parts[1].as_ptr(), records[8..].as_ptr());
        batch::split_and_validate(&written, usize::MAX).expect("still valid batches");
    }

    #[test]
    fn log_append_time_copies_and_restamps() {
        let (records, second) = two_batches();
        let mut layout = WriteLayout::new(&records, true, 2);
        layout.add_batch(0, second, 7, Some(1_234));
        layout.add_batch(second, records.len() - second, 10, Some(1_234));
        let parts = layout.finish();
        assert_eq!(parts.len(), 1);
        let written = concat(&parts);
        let batches = batch::split_and_validate(&written, usize::MAX).expect("CRC recomputed");
        assert_eq!(batches[0].1.max_timestamp, 1_234);
        assert_eq!(batches[1].1.max_timestamp, 1_234);
        assert_eq!(&written[..8], &7i64.to_be_bytes());
    }
}
