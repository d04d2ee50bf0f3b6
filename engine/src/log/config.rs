//! A partition log's settings, named after Kafka's topic configs.

use std::time::Duration;

use super::batch::{Compression, TimestampType};
use crate::flush::FlushPolicy;

/// Largest segment the index format can address (positions are 32-bit signed, as in Kafka).
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Per-log settings. Defaults are Kafka's, except the flush policy (see [`FlushPolicy`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before one would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment this long after its first append.
    pub segment_ms: Duration,
    /// `segment.index.bytes`: roll when the offset index reaches this size.
    pub segment_index_bytes: usize,
    /// `index.interval.bytes`: log bytes between sparse index entries.
    pub index_interval_bytes: usize,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`: keep producers' CreateTime, or stamp LogAppendTime.
    pub timestamp_type: TimestampType,
    /// `flush.policy`, `flush.ms`, `flush.bytes`.
    pub flush: FlushPolicy,
    /// `retention.ms` (`None`: -1, keep forever): delete segments whose newest record is older.
    pub retention_ms: Option<Duration>,
    /// `retention.bytes` (`None`: -1, no limit): delete the oldest segments while the log is
    /// larger.
    pub retention_bytes: Option<u64>,
    /// Bytes reserved ahead of the write position with fallocate (0: off, the default, as
    /// Kafka's `preallocate=false`). Keeps a segment's blocks contiguous on filesystems that
    /// fragment; on ext4 it measured no faster (bench/RESULTS.md). The unused tail is
    /// released when the segment is sealed.
    pub preallocate_bytes: u64,
    /// `producer.id.expiration.ms`: an idempotent producer that has not appended for this
    /// long is forgotten (its next batch must start a new sequence).
    pub producer_id_expiration_ms: i64,
    /// `compression.type` (with its `compression.*.level`): the codec batches are stored in.
    pub compression: TopicCompression,
    /// `cleanup.policy`: what happens to old segments (retention deletes them, the cleaner
    /// compacts them, or both).
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: the share of the log (by bytes) not yet compacted that
    /// makes the cleaner compact it.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record stays uncompacted at most about this long, whatever
    /// the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone (a keyed record with a null value) stays
    /// readable after the cleaner first sees it, so consumers catching up learn of the delete.
    pub delete_retention_ms: i64,
}

/// `cleanup.policy`: `delete`, `compact`, both, or neither (an empty list: keep everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Retention (`retention.ms`, `retention.bytes`) and DeleteRecords remove old segments.
    pub delete: bool,
    /// The cleaner keeps only the newest record of each key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// Kafka's default, `delete`.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

/// What a topic's `compression.type` asks of appends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TopicCompression {
    /// `producer` (Kafka's default): every batch is stored exactly as its producer sent it.
    #[default]
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`: batches in another codec are
    /// recompressed into this one before they are appended; `level` is the codec's level
    /// (`None`: its default).
    Codec {
        codec: Compression,
        level: Option<i32>,
    },
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Duration::from_secs(7 * 24 * 3600),
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::DEFAULT,
            retention_ms: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            preallocate_bytes: 0,
            producer_id_expiration_ms: 86_400_000,
            compression: TopicCompression::Producer,
            cleanup_policy: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// The segment size actually used: at least one maximal batch, at most what positions
    /// can address.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, MAX_SEGMENT_BYTES)
    }

    /// How long a segment may take appends: `segment.ms`, and on a compacted log at most
    /// `max.compaction.lag.ms` (KIP-354: the cleaner never touches the active segment, so
    /// the lag bound needs the roll).
    pub(crate) fn max_segment_ms(&self) -> i64 {
        let segment_ms = self.segment_ms.as_millis().min(i64::MAX as u128) as i64;
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            segment_ms.min(self.max_compaction_lag_ms)
        } else {
            segment_ms
        }
    }

    /// Offset index entries a segment may hold before it must roll.
    pub(crate) fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / super::index::OFFSET_ENTRY_LEN).max(1)
    }
}
