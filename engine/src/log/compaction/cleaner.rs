//! A shard's cleaner: picks the log that most needs compacting, cleans it, and repeats; when
//! none does, it waits `log.cleaner.backoff.ms`. One per shard, cleaning that shard's logs,
//! so cleaning never crosses threads (Kafka's cleaner threads, thread-per-core).

use std::fmt::Display;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::clean::PassReport;
use super::offset_map::OffsetMap;
use super::CleanerStats;
use crate::log::error::StorageError;
use crate::log::{Log, LogSet};
use crate::rt;

/// The broker's cleaner settings, named after Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.dedupe.buffer.size`, this shard's share: memory for the offset map (about
    /// 25 bytes a key). A pass whose dirty section has more keys cleans what the map covers
    /// and leaves the rest for the next pass.
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

/// A shard's cleaner: its settings, the offset map it reuses from pass to pass, and the pace
/// of its I/O.
#[derive(Debug)]
pub struct Cleaner {
    pub(super) map: OffsetMap,
    pub(super) throttle: Throttle,
}

impl Cleaner {
    pub fn new(config: &CleanerConfig) -> Self {
        Cleaner {
            map: OffsetMap::new(config.dedupe_buffer_bytes),
            throttle: Throttle::new(config.io_max_bytes_per_second),
        }
    }

    /// Runs one pass on the log among `logs` that needs it most (the dirtiest; one past its
    /// maximum compaction lag first). Returns the pass's report, `None` when none needed one.
    pub async fn clean_dirtiest<'a>(
        &mut self,
        logs: impl IntoIterator<Item = &'a Log>,
    ) -> Option<(&'a Log, Result<PassReport, StorageError>)> {
        let mut best: Option<(&Log, (bool, f64))> = None;
        for log in logs {
            if log.inner.compaction.borrow().uncleanable.is_some() {
                continue;
            }
            let Some(assessment) = log.assess_compaction() else {
                continue;
            };
            let Some(trigger) = assessment.cleanable.trigger else {
                continue;
            };
            let rank = (
                trigger != super::policy::Trigger::DirtyRatio,
                assessment.cleanable.dirty_ratio,
            );
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((log, rank));
            }
        }
        let (log, _) = best?;
        match log.clean(self).await {
            Ok(Some(report)) => Some((log, Ok(report))),
            Ok(None) => None,
            Err(e) => {
                // Damaged data or a failed write: leave this log alone until it is reopened
                // (recovery checks it), as Kafka marks a partition uncleanable.
                log.inner.compaction.borrow_mut().uncleanable = Some(e.to_string());
                Some((log, Err(e)))
            }
        }
    }
}

impl<K, V> LogSet<K, V>
where
    K: Ord + Clone + Display + 'static,
    V: Clone + AsRef<Log> + 'static,
{
    /// Runs the shard's cleaner until the shard shuts down. Spawn one per shard.
    pub async fn run_cleaner(self: Rc<Self>, config: CleanerConfig) {
        if !config.enabled {
            return;
        }
        let mut cleaner = Cleaner::new(&config);
        loop {
            let entries = self.snapshot();
            let logs = entries.iter().map(|(_, entry)| entry.as_ref());
            let cleaned =
                match rt::select(cleaner.clean_dirtiest(logs), rt::shutdown_requested()).await {
                    rt::Either::Left(cleaned) => cleaned,
                    rt::Either::Right(()) => return,
                };
            match cleaned {
                Some((_, Ok(_))) => continue,
                Some((log, Err(e))) => {
                    tracing::error!(dir = %log.dir().display(), error = %e, "compaction failed; the log is not cleaned again until it is reopened");
                }
                None => {}
            }
            match rt::select(rt::sleep(config.backoff), rt::shutdown_requested()).await {
                rt::Either::Left(()) => {}
                rt::Either::Right(()) => return,
            }
        }
    }
}

impl Log {
    /// What the cleaner has done to this log since it opened.
    pub fn cleaner_stats(&self) -> CleanerStats {
        self.inner.compaction.borrow().stats
    }

    /// The share of the log's cleanable bytes not yet compacted (Kafka's
    /// `max-dirty-percent`, per log); `None` unless `cleanup.policy` includes `compact`.
    pub fn dirty_ratio(&self) -> Option<f64> {
        self.assess_compaction().map(|a| a.cleanable.dirty_ratio)
    }

    /// Why the cleaner gave up on this log (until it is reopened), if it did.
    pub fn uncleanable(&self) -> Option<String> {
        self.inner.compaction.borrow().uncleanable.clone()
    }
}

/// Paces the cleaner's I/O to a rate (`log.cleaner.io.max.bytes.per.second`), measured over
/// windows of a second so an idle spell doesn't bank a burst.
#[derive(Debug)]
pub(super) struct Throttle {
    bytes_per_second: f64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttle {
    fn new(bytes_per_second: f64) -> Self {
        Throttle {
            bytes_per_second,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Accounts for `bytes` of I/O done; sleeps while the window is ahead of the rate.
    pub(super) async fn pace(&mut self, bytes: u64) {
        if !(self.bytes_per_second > 0.0 && self.bytes_per_second < f64::MAX) {
            return;
        }
        let elapsed = self.window_start.elapsed();
        if elapsed > Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        self.window_bytes += bytes;
        let due = Duration::from_secs_f64(self.window_bytes as f64 / self.bytes_per_second);
        let elapsed = self.window_start.elapsed();
        if due > elapsed {
            rt::sleep(due - elapsed).await;
        }
    }
}
