//! The leader epoch cache (KIP-101, KIP-279): which leader epoch began at which offset of this
//! partition's log, Kafka's `LeaderEpochFileCache`. A follower asks the leader for the end
//! offset of its latest epoch (OffsetsForLeaderEpoch) and truncates its log there, instead of
//! trusting its high watermark, so replicas never diverge after leader changes.
//!
//! Kept in `leader-epoch-checkpoint` in the partition directory, in Kafka's text format:
//!
//! ```text
//! 0                  (version)
//! 2                  (entry count)
//! 0 0                (epoch start_offset)
//! 3 1200
//! ```
//!
//! Entries are strictly increasing in both epoch and start offset. The file is replaced
//! atomically whenever the cache changes (rarely: a leader change, a truncation, the log start
//! moving past an epoch's start).
//!
//! A log that never took part in replication has no file and an empty cache. This module is
//! pure but for [`read`] and [`write`].

use std::io;
use std::path::Path;

use crate::rt;

/// The cache's file name in a partition directory (Kafka's).
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
const VERSION: i64 = 0;
/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`: what OffsetsForLeaderEpoch
/// answers when the epoch can't be placed.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache: entries strictly increasing in epoch and in start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` began at `start_offset`; returns whether the cache changed.
    ///
    /// Kafka's `LeaderEpochFileCache.assign`: nothing changes when `epoch` is the latest and
    /// starts no earlier than recorded (every batch of an epoch assigns it; only the first
    /// counts). Otherwise the entries that would break monotonicity go first, from the end:
    /// those with an epoch at or above `epoch`, or a start at or above `start_offset` (a new
    /// leader's epoch replaces what a truncated log still claimed). Negative values are
    /// ignored (unstamped batches carry -1).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .latest()
            .is_none_or(|l| epoch != l.epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            let dropped = self.entries.pop();
            if dropped.is_some_and(|d| d.epoch > epoch) {
                tracing::warn!(
                    ?dropped,
                    epoch,
                    start_offset,
                    "leader epoch cache: a lower epoch replaces a higher one"
                );
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// What a stored batch of `epoch` at `base_offset` teaches the cache: that a newer epoch
    /// began there. Only epochs above the latest count (Kafka's rule when recovering a
    /// segment and appending as a follower): older batches replayed after a leader change
    /// must not rewrite history. Returns whether the cache changed.
    pub fn observe_batch(&mut self, epoch: i32, base_offset: i64) -> bool {
        let newer = self.latest().is_none_or(|l| epoch > l.epoch);
        newer && self.assign(epoch, base_offset)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor` (KIP-279): the end of `requested` epoch as
    /// this log knows it, `(epoch, end offset)`, where `log_end_offset` ends the latest epoch.
    /// `None` stands for `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    ///
    /// - `requested` is undefined (negative) or the cache is empty: `None`;
    /// - `requested` is the latest epoch: `(requested, log_end_offset)`;
    /// - otherwise, with the first entry of a higher epoch `H`: `(F, H.start)` where `F` is
    ///   the largest known epoch at or below `requested` — the follower keeps what it has of
    ///   epoch `F` up to where the next epoch began;
    /// - `requested` below every known epoch (its data was removed): `(requested, H.start)`
    ///   with `H` the first entry — the follower truncates to where this log's history begins;
    /// - `requested` above every known epoch: `None`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        let latest = self.latest()?;
        if latest.epoch == requested {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some((floor.map_or(requested, |f| f.epoch), higher.start_offset))
    }

    /// The log was truncated to end at `end_offset`: epochs that began at or after it go
    /// (Kafka's `truncateFromEnd`). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log start moved to `start_offset`: epochs wholly below it go, and the one covering
    /// it now starts there (Kafka's `truncateFromStart`). Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covered == 0 {
            return false;
        }
        let mut first = self.entries[covered - 1];
        if covered == 1 && first.start_offset == start_offset {
            return false;
        }
        first.start_offset = start_offset;
        self.entries.drain(..covered - 1);
        self.entries[0] = first;
        true
    }

    /// Forgets every epoch (the log was emptied and restarted).
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parses the file's text; `None` when it is not a valid cache (wrong version or count,
    /// malformed lines, entries out of order). Never panics.
    pub fn decode(text: &str) -> Option<LeaderEpochCache> {
        let mut lines = text.lines();
        if lines.next()?.trim().parse::<i64>().ok()? != VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let mut fields = lines.next()?.split_whitespace();
            let epoch: i32 = fields.next()?.parse().ok()?;
            let start_offset: i64 = fields.next()?.parse().ok()?;
            if fields.next().is_some() || epoch < 0 || start_offset < 0 {
                return None;
            }
            if cache
                .latest()
                .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
            {
                return None;
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        // As Kafka's checkpoint reader: nothing may follow the entries.
        if lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Some(cache)
    }
}

/// What reading a directory's cache found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// No file: a log that never took part in replication.
    Missing,
    Loaded(LeaderEpochCache),
    /// The file exists but doesn't parse.
    Corrupt,
}

/// Reads `dir`'s cache file.
pub(crate) async fn read(dir: &Path) -> io::Result<Read> {
    let path = dir.join(LEADER_EPOCH_FILE);
    match rt::unblock(move || std::fs::read_to_string(path)).await {
        Ok(text) => Ok(LeaderEpochCache::decode(&text).map_or(Read::Corrupt, Read::Loaded)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Read::Corrupt),
        Err(e) => Err(e),
    }
}

/// Replaces `dir`'s cache file atomically and durably (temporary file, fsync, rename, fsync of
/// the directory).
pub(crate) async fn write(dir: &Path, text: String) -> io::Result<()> {
    rt::fs::replace_atomically(dir, LEADER_EPOCH_FILE, text.into_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        }
    }

    #[test]
    fn assign_keeps_the_first_start_of_each_epoch_and_monotonic_entries() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(2, 6));
        assert!(
            !c.assign(2, 10),
            "a later batch of the same epoch changes nothing"
        );
        assert!(
            c.assign(2, 5),
            "an earlier start of the latest epoch replaces it"
        );
        assert!(c.assign(3, 8));
        assert_eq!(c, cache(&[(2, 5), (3, 8)]));
        assert!(!c.assign(-1, 20), "unstamped batches assign nothing");
        // A higher epoch starting at or before a recorded start replaces the entries it
        // overlaps (Kafka's LeaderEpochFileCacheTest: "shouldNotOverwriteOffsetForALeaderEpoch...").
        assert!(c.assign(4, 8));
        assert_eq!(c, cache(&[(2, 5), (4, 8)]));
        assert!(c.assign(5, 7));
        assert_eq!(c, cache(&[(2, 5), (5, 7)]));
        // A lower epoch (never expected) drops the higher ones rather than break the order.
        assert!(c.assign(3, 9));
        assert_eq!(c, cache(&[(2, 5), (3, 9)]));
        // Batches teach only newer epochs.
        assert!(!c.observe_batch(2, 40));
        assert!(!c.observe_batch(3, 40));
        assert!(!c.observe_batch(-1, 40));
        assert!(c.observe_batch(6, 40));
        assert_eq!(c, cache(&[(2, 5), (3, 9), (6, 40)]));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let empty = LeaderEpochCache::default();
        assert_eq!(empty.end_offset_for(0, 100), None, "an empty cache");
        // Kafka's LeaderEpochFileCacheTest examples: epochs 2@6, 3@8, 5@12 (no 4), LEO 20.
        let c = cache(&[(2, 6), (3, 8), (5, 12)]);
        assert_eq!(
            c.end_offset_for(5, 20),
            Some((5, 20)),
            "the latest epoch ends at the LEO"
        );
        assert_eq!(c.end_offset_for(3, 20), Some((3, 12)));
        assert_eq!(c.end_offset_for(2, 20), Some((2, 8)));
        assert_eq!(
            c.end_offset_for(4, 20),
            Some((3, 12)),
            "an unknown epoch between two: the one below it, ending where the next began"
        );
        assert_eq!(
            c.end_offset_for(1, 20),
            Some((1, 6)),
            "below every epoch: where the known history begins"
        );
        assert_eq!(c.end_offset_for(6, 20), None, "above every epoch");
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 20), None);
    }

    #[test]
    fn truncations_from_either_end() {
        let mut c = cache(&[(2, 6), (3, 8), (5, 12)]);
        assert!(!c.truncate_from_end(13), "every epoch began before 13");
        assert!(c.truncate_from_end(12));
        assert_eq!(c, cache(&[(2, 6), (3, 8)]));
        assert!(c.truncate_from_end(7));
        assert_eq!(c, cache(&[(2, 6)]));

        let mut c = cache(&[(2, 6), (3, 8), (5, 12)]);
        assert!(!c.truncate_from_start(5), "the start is below every epoch");
        assert!(c.truncate_from_start(9));
        assert_eq!(c, cache(&[(3, 9), (5, 12)]));
        assert!(c.truncate_from_start(12));
        assert_eq!(c, cache(&[(5, 12)]));
        assert!(!c.truncate_from_start(12));
        assert!(c.truncate_from_start(15));
        assert_eq!(c, cache(&[(5, 15)]));
        assert!(c.clear());
        assert!(c.is_empty());
    }

    #[test]
    fn the_file_format_is_kafkas_and_damage_is_refused() {
        let c = cache(&[(0, 0), (3, 1200)]);
        let text = c.encode();
        assert_eq!(text, "0\n2\n0 0\n3 1200\n");
        assert_eq!(LeaderEpochCache::decode(&text), Some(c));
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n"),
            Some(LeaderEpochCache::default())
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n3 5\n",
            "0\n1\n0\n",
            "0\n1\n0 x\n",
            "0\n2\n3 5\n2 9\n",
            "0\n2\n1 5\n2 5\n",
            "0\n1\n-1 5\n",
            "0\n1\n1 5 6\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad), None, "{bad:?}");
        }
    }
}
