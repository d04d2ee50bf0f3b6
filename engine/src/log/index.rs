//! Kafka's sparse segment indexes, in their on-disk formats.
//!
//! - `.index`: 8-byte entries (relative offset `i32`, file position `i32`, big endian), one every
//!   `index.interval.bytes` of log data: the position of a batch starting at or before an offset.
//! - `.timeindex`: 12-byte entries (timestamp `i64`, relative offset `i32`): the largest
//!   timestamp seen so far in the segment and the offset where it was seen.
//!
//! Offsets are stored relative to the segment's base offset. Both are kept in memory (they are
//! small: one entry per 4 KiB of log by default) and appended to their files entry by entry.
//! Kafka preallocates index files with zeros; a zero entry after the first ends the index.

/// Bytes per offset index entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per time index entry.
pub const TIME_ENTRY_LEN: usize = 12;

/// An index file's bytes don't form a valid index: it must be rebuilt from the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index size {0} is not a whole number of entries")]
    PartialEntry(usize),
    #[error("index entries are not strictly increasing at entry {0}")]
    NotIncreasing(usize),
    #[error("offset {offset} cannot be indexed in a segment based at {base}")]
    OutOfRange { base: i64, offset: i64 },
}

/// One offset index entry, with the offset made absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

/// One time index entry, with the offset made absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

fn offset_entry(rel: u32, position: u32) -> [u8; OFFSET_ENTRY_LEN] {
    let mut entry = [0u8; OFFSET_ENTRY_LEN];
    entry[..4].copy_from_slice(&rel.to_be_bytes());
    entry[4..].copy_from_slice(&position.to_be_bytes());
    entry
}

fn time_entry(timestamp: i64, rel: u32) -> [u8; TIME_ENTRY_LEN] {
    let mut entry = [0u8; TIME_ENTRY_LEN];
    entry[..8].copy_from_slice(&timestamp.to_be_bytes());
    entry[8..].copy_from_slice(&rel.to_be_bytes());
    entry
}

fn relative(base: i64, offset: i64) -> Result<u32, IndexError> {
    offset
        .checked_sub(base)
        .and_then(|d| u32::try_from(d).ok())
        .filter(|&d| d <= i32::MAX as u32)
        .ok_or(IndexError::OutOfRange { base, offset })
}

/// The offset index of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    base_offset: i64,
    /// (relative offset, position), strictly increasing in both.
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn new(base_offset: i64) -> Self {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Decodes an index file, stopping at Kafka's zero padding.
    pub fn decode(base_offset: i64, bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() % OFFSET_ENTRY_LEN != 0 {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = OffsetIndex::new(base_offset);
        for (i, chunk) in bytes.chunks_exact(OFFSET_ENTRY_LEN).enumerate() {
            let rel = u32::from_be_bytes(chunk[..4].try_into().expect("4 bytes"));
            let pos = u32::from_be_bytes(chunk[4..].try_into().expect("4 bytes"));
            if i > 0 && rel == 0 && pos == 0 {
                break;
            }
            if rel > i32::MAX as u32 || pos > i32::MAX as u32 {
                return Err(IndexError::NotIncreasing(i));
            }
            if let Some(&(last_rel, last_pos)) = index.entries.last() {
                if rel <= last_rel || pos <= last_pos {
                    return Err(IndexError::NotIncreasing(i));
                }
            }
            index.entries.push((rel, pos));
        }
        Ok(index)
    }

    /// Adds an entry; returns its encoding, to append to the file. Entries must increase.
    pub fn append(
        &mut self,
        offset: i64,
        position: u32,
    ) -> Result<[u8; OFFSET_ENTRY_LEN], IndexError> {
        let rel = relative(self.base_offset, offset)?;
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            if rel <= last_rel || position <= last_pos {
                return Err(IndexError::NotIncreasing(self.entries.len()));
            }
        }
        self.entries.push((rel, position));
        Ok(offset_entry(rel, position))
    }

    /// The last entry at or before `offset`: where to start scanning the log for it. Before
    /// the first entry, the segment's start.
    pub fn lookup(&self, offset: i64) -> OffsetPosition {
        let rel = match offset.checked_sub(self.base_offset) {
            Some(d) if d >= 0 => d.min(u32::MAX as i64) as u32,
            _ => {
                return OffsetPosition {
                    offset: self.base_offset,
                    position: 0,
                }
            }
        };
        let after = self.entries.partition_point(|&(r, _)| r <= rel);
        match after.checked_sub(1).map(|i| self.entries[i]) {
            Some((r, position)) => OffsetPosition {
                offset: self.base_offset + i64::from(r),
                position,
            },
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// The encoded index, as its file should hold it.
    pub fn encode(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(|&(rel, pos)| offset_entry(rel, pos))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<OffsetPosition> {
        self.entries.last().map(|&(r, position)| OffsetPosition {
            offset: self.base_offset + i64::from(r),
            position,
        })
    }
}

/// The time index of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    base_offset: i64,
    /// (timestamp, relative offset), strictly increasing timestamps, non-decreasing offsets.
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn new(base_offset: i64) -> Self {
        TimeIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Decodes a time index file, stopping at Kafka's zero padding.
    pub fn decode(base_offset: i64, bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() % TIME_ENTRY_LEN != 0 {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = TimeIndex::new(base_offset);
        for (i, chunk) in bytes.chunks_exact(TIME_ENTRY_LEN).enumerate() {
            let ts = i64::from_be_bytes(chunk[..8].try_into().expect("8 bytes"));
            let rel = u32::from_be_bytes(chunk[8..].try_into().expect("4 bytes"));
            if i > 0 && ts == 0 && rel == 0 {
                break;
            }
            if let Some(&(last_ts, last_rel)) = index.entries.last() {
                if ts <= last_ts || rel < last_rel {
                    return Err(IndexError::NotIncreasing(i));
                }
            }
            index.entries.push((ts, rel));
        }
        Ok(index)
    }

    /// Records that `timestamp` (a new maximum for the segment) was seen at `offset`. Returns
    /// the encoded entry, or `None` when the timestamp is not a new maximum (nothing to write).
    pub fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: i64,
    ) -> Result<Option<[u8; TIME_ENTRY_LEN]>, IndexError> {
        let rel = relative(self.base_offset, offset)?;
        if let Some(&(last_ts, last_rel)) = self.entries.last() {
            if timestamp <= last_ts {
                return Ok(None);
            }
            if rel < last_rel {
                return Err(IndexError::NotIncreasing(self.entries.len()));
            }
        }
        self.entries.push((timestamp, rel));
        Ok(Some(time_entry(timestamp, rel)))
    }

    /// The last entry with timestamp <= `timestamp`: the first batch with a timestamp at or
    /// after `timestamp` starts at or after its offset. Before the first entry, the segment's
    /// start.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        let after = self.entries.partition_point(|&(ts, _)| ts <= timestamp);
        match after.checked_sub(1).map(|i| self.entries[i]) {
            Some((ts, rel)) => TimestampOffset {
                timestamp: ts,
                offset: self.base_offset + i64::from(rel),
            },
            None => TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            },
        }
    }

    /// The segment's largest timestamp so far and where it was seen.
    pub fn max(&self) -> Option<TimestampOffset> {
        self.entries
            .last()
            .map(|&(timestamp, rel)| TimestampOffset {
                timestamp,
                offset: self.base_offset + i64::from(rel),
            })
    }

    /// Drops entries for offsets at or past `offset` (the log was truncated there).
    pub fn truncate_to_offset(&mut self, offset: i64) {
        let keep = self
            .entries
            .partition_point(|&(_, r)| self.base_offset + i64::from(r) < offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(|&(ts, rel)| time_entry(ts, rel))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Both indexes of one segment, built batch by batch the way appends and recovery scans
/// build them (Kafka's rule: an entry for a batch's last offset once more than
/// `index.interval.bytes` were written since the previous entry, and one for the first batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    /// The segment's largest timestamp and the (last) offset of the batch it was seen in.
    pub max_timestamp: Option<TimestampOffset>,
    interval_bytes: usize,
    bytes_since_entry: usize,
    batches: usize,
}

impl SegmentIndexes {
    pub fn new(base_offset: i64, interval_bytes: usize) -> Self {
        Self::from_parts(
            OffsetIndex::new(base_offset),
            TimeIndex::new(base_offset),
            interval_bytes,
        )
    }

    /// Continues from indexes read back from their files.
    pub fn from_parts(offsets: OffsetIndex, times: TimeIndex, interval_bytes: usize) -> Self {
        let max_timestamp = times.max();
        let batches = offsets.len();
        SegmentIndexes {
            offsets,
            times,
            max_timestamp,
            interval_bytes,
            bytes_since_entry: 0,
            batches,
        }
    }

    /// Accounts for a batch of `len` bytes written at `position`.
    pub fn add_batch(&mut self, position: u32, last_offset: i64, max_timestamp: i64, len: usize) {
        let seen = TimestampOffset {
            timestamp: max_timestamp,
            offset: last_offset,
        };
        if self
            .max_timestamp
            .is_none_or(|m| seen.timestamp > m.timestamp)
        {
            self.max_timestamp = Some(seen);
        }
        if self.bytes_since_entry > self.interval_bytes || self.batches == 0 {
            // Offsets fit the index: callers keep a segment's offsets within i32::MAX of its
            // base and its size below 2 GiB, so neither append can fail.
            if self.offsets.append(last_offset, position).is_ok() {
                self.note_max_in_time_index();
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len;
        self.batches += 1;
    }

    /// Makes the time index end with the segment's maximum (done when a segment is sealed or
    /// written out, so lookups past the last entry are exact).
    pub fn note_max_in_time_index(&mut self) {
        if let Some(max) = self.max_timestamp {
            let _ = self.times.maybe_append(max.timestamp, max.offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_lookup_floors_to_the_last_entry_at_or_before() {
        let mut index = OffsetIndex::new(100);
        index.append(100, 0).unwrap();
        index.append(110, 4096).unwrap();
        index.append(125, 8200).unwrap();
        assert_eq!(
            index.lookup(50),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            index.lookup(109),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(
            index.lookup(110),
            OffsetPosition {
                offset: 110,
                position: 4096
            }
        );
        assert_eq!(
            index.lookup(1 << 40),
            OffsetPosition {
                offset: 125,
                position: 8200
            }
        );
        assert_eq!(index.append(125, 9000), Err(IndexError::NotIncreasing(3)));
        assert!(index.append(99, 9000).is_err());
    }

    #[test]
    fn decode_stops_at_zero_padding_and_refuses_garbage() {
        let mut index = OffsetIndex::new(0);
        index.append(0, 0).unwrap();
        index.append(5, 100).unwrap();
        let mut bytes = index.encode();
        bytes.extend_from_slice(&[0; 64]);
        assert_eq!(OffsetIndex::decode(0, &bytes).unwrap(), index);
        assert_eq!(
            OffsetIndex::decode(0, &bytes[..bytes.len() - 3]),
            Err(IndexError::PartialEntry(77))
        );
        let mut reversed = index.encode();
        reversed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 50]);
        assert_eq!(
            OffsetIndex::decode(0, &reversed),
            Err(IndexError::NotIncreasing(2))
        );
    }

    #[test]
    fn time_index_keeps_only_new_maxima() {
        let mut index = TimeIndex::new(0);
        assert!(index.maybe_append(1000, 0).unwrap().is_some());
        assert!(index.maybe_append(900, 3).unwrap().is_none());
        assert!(index.maybe_append(1500, 5).unwrap().is_some());
        assert_eq!(
            index.lookup(999),
            TimestampOffset {
                timestamp: -1,
                offset: 0
            }
        );
        assert_eq!(
            index.lookup(1200),
            TimestampOffset {
                timestamp: 1000,
                offset: 0
            }
        );
        assert_eq!(
            index.lookup(1500),
            TimestampOffset {
                timestamp: 1500,
                offset: 5
            }
        );
        assert_eq!(
            index.max(),
            Some(TimestampOffset {
                timestamp: 1500,
                offset: 5
            })
        );
        index.truncate_to_offset(5);
        assert_eq!(
            index.max(),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 0
            })
        );
        assert_eq!(TimeIndex::decode(0, &index.encode()).unwrap(), index);
    }

    proptest! {
        /// Lookups agree with a linear scan over the same entries.
        #[test]
        fn offset_lookup_matches_linear_scan(
            base in 0i64..1 << 40,
            gaps in prop::collection::vec((1u32..1000, 1u32..100_000), 0..200),
            probes in prop::collection::vec(0i64..300_000, 1..50),
        ) {
            let mut index = OffsetIndex::new(base);
            let (mut rel, mut pos) = (0u32, 0u32);
            let mut entries = Vec::new();
            for (i, (dr, dp)) in gaps.into_iter().enumerate() {
                if i > 0 { rel += dr; pos += dp; }
                index.append(base + i64::from(rel), pos).unwrap();
                entries.push((base + i64::from(rel), pos));
            }
            for probe in probes {
                let target = base + probe - 100;
                let expected = entries.iter().rev().find(|(o, _)| *o <= target)
                    .map_or(OffsetPosition { offset: base, position: 0 }, |&(offset, position)| OffsetPosition { offset, position });
                prop_assert_eq!(index.lookup(target), expected);
            }
            prop_assert_eq!(OffsetIndex::decode(base, &index.encode()).unwrap(), index);
        }

        #[test]
        fn time_lookup_matches_linear_scan(
            stamps in prop::collection::vec(-5i64..10_000, 0..200),
            probes in prop::collection::vec(-10i64..11_000, 1..50),
        ) {
            let mut index = TimeIndex::new(0);
            let mut kept: Vec<(i64, i64)> = Vec::new();
            for (offset, ts) in stamps.into_iter().enumerate() {
                if index.maybe_append(ts, offset as i64).unwrap().is_some() {
                    kept.push((ts, offset as i64));
                }
            }
            prop_assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
            for probe in probes {
                let expected = kept.iter().rev().find(|(ts, _)| *ts <= probe)
                    .map_or(TimestampOffset { timestamp: -1, offset: 0 }, |&(timestamp, offset)| TimestampOffset { timestamp, offset });
                prop_assert_eq!(index.lookup(probe), expected);
            }
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = OffsetIndex::decode(0, &bytes);
            let _ = TimeIndex::decode(0, &bytes);
        }
    }
}
