//! When appended data reaches stable storage: the per-topic flush policy and group commit.
//!
//! - `always`: an append is acknowledged only once an fdatasync that started after its write
//!   completed has finished. Appends whose writes complete while a sync is in flight share the
//!   next one, so N concurrent producers cost about two syncs, not N ([`GroupCommit`]).
//! - `interval`: data is synced in the background `flush.ms` after the first unsynced append,
//!   or as soon as `flush.bytes` are unsynced; acknowledgements don't wait.
//! - `never`: the kernel writes back when it likes; only segment rolls and shutdown sync.
//!
//! The log keeps its state (what is written, which segments hold it); the flushing itself
//! lives here, so each of these files has one job:
//! - [`group_commit`](GroupCommit): the tracker, offsets only (what is durable, whether a
//!   round is in flight);
//! - `sync`: waiting for durability and running the rounds, against the log's
//!   `SyncTarget` view (what a round covers, where its outcome goes);
//! - `interval`: the `interval` policy's background flush timer.

mod group_commit;
mod interval;
mod sync;

pub use group_commit::GroupCommit;
pub(crate) use interval::{schedule as schedule_interval_flush, IntervalFlush};
pub(crate) use sync::{sync_to, SyncRound, SyncTarget};

use std::time::Duration;

/// A topic's `flush.policy`, with its `flush.ms` / `flush.bytes` where they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge after fdatasync (group commit).
    Always,
    /// Sync in the background every `ms` after unsynced data appears, or once `bytes` are
    /// unsynced (whichever comes first).
    Interval { ms: Duration, bytes: Option<u64> },
    /// Leave write-back to the kernel.
    Never,
}

impl FlushPolicy {
    /// Runnel's default: data reaches the disk within 100 ms without making producers wait.
    pub const DEFAULT: FlushPolicy = FlushPolicy::Interval {
        ms: Duration::from_millis(100),
        bytes: None,
    };

    /// Builds a policy from Kafka-style settings: `flush.policy` (`always`, `interval`,
    /// `never`), `flush.ms` and `flush.bytes`.
    pub fn from_settings(
        policy: &str,
        flush_ms: Option<u64>,
        flush_bytes: Option<u64>,
    ) -> Result<FlushPolicy, String> {
        match policy {
            "always" => Ok(FlushPolicy::Always),
            "never" => Ok(FlushPolicy::Never),
            "interval" => Ok(FlushPolicy::Interval {
                ms: Duration::from_millis(flush_ms.unwrap_or(100)),
                bytes: flush_bytes,
            }),
            other => Err(format!(
                "flush.policy must be always, interval or never, not {other:?}"
            )),
        }
    }

    /// The setting's name, as `flush.policy` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            FlushPolicy::Always => "always",
            FlushPolicy::Interval { .. } => "interval",
            FlushPolicy::Never => "never",
        }
    }
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(
            FlushPolicy::from_settings("always", None, None),
            Ok(FlushPolicy::Always)
        );
        assert_eq!(
            FlushPolicy::from_settings("interval", Some(5), Some(1024)),
            Ok(FlushPolicy::Interval {
                ms: Duration::from_millis(5),
                bytes: Some(1024)
            })
        );
        assert!(FlushPolicy::from_settings("sometimes", None, None).is_err());
    }
}
