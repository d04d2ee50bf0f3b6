//! Log compaction: keeping only the newest record of each key on topics whose
//! `cleanup.policy` includes `compact`, as Kafka's log cleaner does.
//!
//! One file per concern:
//! - policy.rs: whether a log needs cleaning and which offsets a pass covers (pure);
//! - offset_map.rs: the newest offset of each key hash in the dirty section, bounded in memory;
//! - filter.rs: what a pass keeps of one batch (pure): the newest record per key, tombstones
//!   until their delete horizon, the last batch of each idempotent producer and of each
//!   output segment (so offsets still end where the next segment begins);
//! - txns.rs: which batches belong to aborted transactions and which markers may go (pure);
//! - first_dirty.rs: the cleaner's checkpoint, the first offset not yet cleaned;
//! - swap.rs: replacing segments with their cleaned copy crash-safely (`.cleaned`, `.swap`),
//!   and finishing or discarding an interrupted swap when a log opens;
//! - clean.rs: one pass over one log (the action);
//! - cleaner.rs: a shard's cleaner: which log to clean next, the offset map it reuses, the
//!   I/O throttle.

mod clean;
mod cleaner;
mod filter;
mod first_dirty;
mod offset_map;
mod policy;
pub(crate) mod swap;
mod txns;

pub use clean::PassReport;
pub use cleaner::{Cleaner, CleanerConfig};
pub(crate) use filter::check_keys;
pub use first_dirty::{CleanerCheckpoint, CLEANER_CHECKPOINT_FILE};
pub use policy::Trigger;

/// A log's compaction state, kept by the log.
#[derive(Debug)]
pub(crate) struct LogCompaction {
    pub checkpoint: CleanerCheckpoint,
    pub stats: CleanerStats,
    /// Why the cleaner gave up on the log until it is reopened.
    pub uncleanable: Option<String>,
}

impl LogCompaction {
    pub(crate) fn new(checkpoint: CleanerCheckpoint) -> Self {
        LogCompaction {
            checkpoint,
            stats: CleanerStats::default(),
            uncleanable: None,
        }
    }
}

/// What the cleaner did to one log, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanerStats {
    /// Passes completed.
    pub runs: u64,
    /// Bytes of segments read by passes (the offset map's scan and the rewrite).
    pub bytes_read: u64,
    /// Bytes the rewritten segments hold.
    pub bytes_written: u64,
    /// Records removed: superseded, expired tombstones, records without a key.
    pub records_removed: u64,
    /// When the last pass finished (ms since the epoch), if one has since the log opened.
    pub last_clean_ms: Option<i64>,
}
