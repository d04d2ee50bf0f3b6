//! Scanning a segment's bytes batch by batch: the core of recovery and of index rebuilding.
//!
//! The scan keeps the longest prefix of whole, valid batches whose offsets increase, and rebuilds
//! the sparse indexes for it the way appends build them (Kafka's rule: an entry for a batch's
//! last offset once more than `index.interval.bytes` have been written since the previous one).
//! Whatever follows the valid prefix is a torn write or corruption, to be truncated.

use super::batch::{self, BatchError, BatchHeader, LOG_OVERHEAD};
use super::index::{OffsetIndex, SegmentIndexes, TimeIndex, TimestampOffset};

/// Why a scan stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// The last batch is incomplete (a write torn by a crash).
    Torn,
    /// A batch failed validation.
    Corrupt(BatchError),
    /// A batch's offsets don't continue the previous batch's (or the segment's base) densely.
    OffsetsOutOfOrder,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Length of the valid prefix; the file should be truncated to it.
    pub valid_len: u64,
    /// Number of valid batches.
    pub batches: usize,
    /// Offset after the last valid batch (`None` when there is none).
    pub next_offset: Option<i64>,
    /// The largest timestamp among valid batches and the offset it was seen at.
    pub max_timestamp: Option<TimestampOffset>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Why the scan ended early; `None` when every byte belonged to a valid batch.
    pub stop: Option<ScanStop>,
}

/// Scans `bytes`, the contents of the segment based at `base_offset`. `max_batch_bytes` bounds
/// a believable batch (use the largest max.message.bytes the topic ever had; recovery must not
/// drop batches accepted under an older, larger limit).
pub fn scan_segment(
    base_offset: i64,
    bytes: &[u8],
    index_interval_bytes: usize,
    max_batch_bytes: usize,
) -> ScanResult {
    let mut scanner = SegmentScanner::new(base_offset, index_interval_bytes, max_batch_bytes);
    scanner.feed(bytes, true);
    scanner.finish()
}

/// What [`SegmentScanner::feed`] needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The scan is over (see [`ScanResult::stop`]).
    Done,
    /// Feed the bytes from position [`SegmentScanner::position`] on, at least this many.
    NeedMore(usize),
}

/// A scan fed in windows, so a segment of any size is checked in bounded memory.
#[derive(Debug)]
pub struct SegmentScanner {
    base_offset: i64,
    max_batch_bytes: usize,
    /// The first batch may start past `base_offset` (a scan resumed mid-segment).
    resumed: bool,
    /// Batches may start past where the previous one ended (a compacted segment).
    gaps_allowed: bool,
    indexes: SegmentIndexes,
    result: ScanResult,
}

impl SegmentScanner {
    pub fn new(base_offset: i64, index_interval_bytes: usize, max_batch_bytes: usize) -> Self {
        SegmentScanner {
            base_offset,
            max_batch_bytes,
            resumed: false,
            gaps_allowed: false,
            indexes: SegmentIndexes::new(base_offset, index_interval_bytes),
            result: ScanResult {
                valid_len: 0,
                batches: 0,
                next_offset: None,
                max_timestamp: None,
                offset_index: OffsetIndex::new(base_offset),
                time_index: TimeIndex::new(base_offset),
                stop: None,
            },
        }
    }

    /// A scan that starts mid-segment, at some batch boundary: the first batch may start at
    /// any offset from `base_offset` on; positions and indexes are relative to the start.
    pub fn resumed(base_offset: i64, index_interval_bytes: usize, max_batch_bytes: usize) -> Self {
        SegmentScanner {
            resumed: true,
            ..Self::new(base_offset, index_interval_bytes, max_batch_bytes)
        }
    }

    /// Accepts gaps between batches: the segment may have been compacted, which removes
    /// whole batches. Offsets must still increase.
    pub fn allowing_gaps(self, allowed: bool) -> Self {
        SegmentScanner {
            gaps_allowed: allowed,
            ..self
        }
    }

    /// Where the next window must start: the end of the valid prefix so far.
    pub fn position(&self) -> u64 {
        self.result.valid_len
    }

    /// Scans `window`, the segment's bytes from [`position`](Self::position) on; `at_eof`
    /// says the window reaches the end of the segment.
    pub fn feed(&mut self, window: &[u8], at_eof: bool) -> Feed {
        let mut at = 0usize;
        while at < window.len() {
            let rest = &window[at..];
            if !at_eof {
                let needed = batch::declared_total_len(rest).unwrap_or(LOG_OVERHEAD);
                if needed > rest.len() && needed <= self.max_batch_bytes {
                    return Feed::NeedMore(needed);
                }
            }
            let header = match next_batch(rest, self.max_batch_bytes) {
                Ok(header) => header,
                Err(stop) => {
                    self.result.stop = Some(stop);
                    return Feed::Done;
                }
            };
            if !self.accept(&header) {
                self.result.stop = Some(ScanStop::OffsetsOutOfOrder);
                return Feed::Done;
            }
            at += header.total_len().expect("validated");
        }
        if at_eof {
            Feed::Done
        } else {
            Feed::NeedMore(LOG_OVERHEAD)
        }
    }

    /// Adds a valid batch at the current position; false if its offsets are out of order.
    fn accept(&mut self, header: &BatchHeader) -> bool {
        let result = &mut self.result;
        // Offsets are dense until compaction removes batches: outside compacted segments a
        // batch must start exactly where the previous one ended. The base offset is outside
        // the CRC; this catches its damage.
        let expected_first = result.next_offset.unwrap_or(self.base_offset);
        let fits = header.last_offset() < i64::MAX && header.last_offset() >= header.base_offset;
        let follows = match result.next_offset {
            None if self.resumed => header.base_offset >= expected_first,
            _ if self.gaps_allowed => header.base_offset >= expected_first,
            _ => header.base_offset == expected_first,
        };
        if !follows || !fits {
            return false;
        }
        let len = header.total_len().expect("validated");
        self.indexes.add_batch(
            result.valid_len as u32,
            header.last_offset(),
            header.max_timestamp,
            len,
        );
        result.batches += 1;
        result.next_offset = Some(header.last_offset() + 1);
        result.valid_len += len as u64;
        true
    }

    /// Ends the scan. The time index always ends with the segment's maximum, so lookups past
    /// it are exact.
    pub fn finish(mut self) -> ScanResult {
        self.indexes.note_max_in_time_index();
        self.result.max_timestamp = self.indexes.max_timestamp;
        self.result.offset_index = self.indexes.offsets;
        self.result.time_index = self.indexes.times;
        self.result
    }
}

/// Validates the batch at the start of `rest`.
fn next_batch(rest: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, ScanStop> {
    if rest.len() < LOG_OVERHEAD {
        return Err(ScanStop::Torn);
    }
    let total = batch::declared_total_len(rest)
        .filter(|&t| t <= max_batch_bytes)
        .ok_or(ScanStop::Corrupt(BatchError::Corrupt(
            "batch length out of range",
        )))?;
    if total > rest.len() {
        return Err(ScanStop::Torn);
    }
    batch::validate(&rest[..total], max_batch_bytes).map_err(ScanStop::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::set_base_offset;
    use crate::log::builder::sample_batch;
    use proptest::prelude::*;

    const MAX: usize = 1 << 24;

    /// A segment of batches with dense offsets from `base`; returns the bytes and each batch's
    /// (position, base offset, record count).
    fn segment(base: i64, shapes: &[(usize, usize)]) -> (Vec<u8>, Vec<(usize, i64, usize)>) {
        let (mut bytes, mut layout, mut next) = (Vec::new(), Vec::new(), base);
        for (i, &(count, value_len)) in shapes.iter().enumerate() {
            let mut batch = sample_batch(count, value_len, 1_000 + i as i64 * 10);
            set_base_offset(&mut batch, next);
            layout.push((bytes.len(), next, count));
            bytes.extend_from_slice(&batch);
            next += count as i64;
        }
        (bytes, layout)
    }

    #[test]
    fn whole_segment_scans_clean() {
        let (bytes, layout) = segment(500, &[(3, 100), (1, 10), (10, 1000), (2, 5)]);
        let scan = scan_segment(500, &bytes, 4096, MAX);
        assert_eq!(scan.stop, None);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.batches, 4);
        assert_eq!(scan.next_offset, Some(516));
        // Every offset's lookup lands at or before the batch holding it.
        for &(position, base, count) in &layout {
            for offset in base..base + count as i64 {
                assert!(scan.offset_index.lookup(offset).position as usize <= position);
            }
        }
        assert_eq!(scan.max_timestamp.unwrap().offset, 515);
    }

    #[test]
    fn empty_segment() {
        let scan = scan_segment(0, &[], 4096, MAX);
        assert_eq!(
            (scan.valid_len, scan.batches, scan.next_offset, scan.stop),
            (0, 0, None, None)
        );
    }

    #[test]
    fn offsets_going_backwards_stop_the_scan() {
        let (mut bytes, _) = segment(0, &[(2, 10)]);
        let mut again = sample_batch(2, 10, 5);
        set_base_offset(&mut again, 1);
        bytes.extend_from_slice(&again);
        let scan = scan_segment(0, &bytes, 4096, MAX);
        assert_eq!(scan.stop, Some(ScanStop::OffsetsOutOfOrder));
        assert_eq!(scan.batches, 1);
    }

    #[test]
    fn a_damaged_base_offset_stops_the_scan() {
        // The base offset is outside the CRC: a gap or overlap it creates is caught by
        // requiring dense offsets.
        for wrong in [7, 1 << 40, i64::MAX - 1] {
            let (mut bytes, layout) = segment(0, &[(2, 10), (2, 10), (2, 10)]);
            set_base_offset(&mut bytes[layout[1].0..], wrong);
            let scan = scan_segment(0, &bytes, 4096, MAX);
            assert_eq!(scan.stop, Some(ScanStop::OffsetsOutOfOrder));
            assert_eq!((scan.batches, scan.next_offset), (1, Some(2)));
        }
    }

    proptest! {
        /// Cutting a segment anywhere keeps exactly the batches that end before the cut.
        #[test]
        fn torn_tails_keep_every_whole_batch(
            shapes in prop::collection::vec((1usize..20, 0usize..500), 1..30),
            cut in any::<prop::sample::Index>(),
        ) {
            let (bytes, layout) = segment(0, &shapes);
            let cut = cut.index(bytes.len() + 1);
            let scan = scan_segment(0, &bytes[..cut], 1024, MAX);
            let whole: Vec<_> = layout.iter().filter(|(pos, _, _)| {
                let end = layout.iter().find(|(p, _, _)| p > pos).map_or(bytes.len(), |(p, _, _)| *p);
                end <= cut
            }).collect();
            prop_assert_eq!(scan.batches, whole.len());
            let valid_len = whole.last().map_or(0, |&&(pos, _, _)| {
                layout.iter().find(|(p, _, _)| *p > pos).map_or(bytes.len(), |(p, _, _)| *p)
            });
            prop_assert_eq!(scan.valid_len, valid_len as u64);
            if cut as u64 > scan.valid_len {
                prop_assert_eq!(scan.stop, Some(ScanStop::Torn));
            }
        }

        /// Feeding the bytes in windows of any size finds what one whole scan finds.
        #[test]
        fn windowed_scan_equals_whole_scan(
            shapes in prop::collection::vec((1usize..20, 0usize..500), 1..30),
            cut in any::<prop::sample::Index>(),
            window in 1usize..5000,
        ) {
            let (bytes, _) = segment(0, &shapes);
            let bytes = &bytes[..cut.index(bytes.len() + 1)];
            let whole = scan_segment(0, bytes, 1024, MAX);
            let mut scanner = SegmentScanner::new(0, 1024, MAX);
            let mut need = 0;
            loop {
                let from = scanner.position() as usize;
                let until = bytes.len().min(from + window.max(need));
                match scanner.feed(&bytes[from..until], until == bytes.len()) {
                    Feed::Done => break,
                    Feed::NeedMore(n) => need = n,
                }
            }
            prop_assert_eq!(scanner.finish(), whole);
        }

        /// Corrupting a byte keeps exactly the batches before the damaged one.
        #[test]
        fn corruption_truncates_at_the_damaged_batch(
            shapes in prop::collection::vec((1usize..10, 0usize..300), 1..20),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut bytes, layout) = segment(0, &shapes);
            let at = at.index(bytes.len());
            let damaged = layout.iter().rposition(|(pos, _, _)| *pos <= at).unwrap();
            let offset_in_batch = at - layout[damaged].0;
            // The leader epoch is not protected by the CRC (as in Kafka) and nothing else can
            // tell it is wrong; the base offset isn't either, but offsets must be dense.
            prop_assume!(!(12..16).contains(&offset_in_batch));
            bytes[at] ^= flip;
            let scan = scan_segment(0, &bytes, 1024, MAX);
            prop_assert_eq!(scan.batches, damaged);
            prop_assert_eq!(scan.valid_len, layout[damaged].0 as u64);
            prop_assert!(scan.stop.is_some());
        }
    }
}
