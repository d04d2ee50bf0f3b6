//! Rate-limited warnings: at most one line per second per kind, carrying how many were
//! suppressed since the last one. A flood of bad connections (a port scanner, a client
//! speaking another protocol, a reconnect storm over the per-IP limit) otherwise writes one
//! WARN each, and the log's I/O becomes the broker's bottleneck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The least time between two lines of one kind, in milliseconds.
const INTERVAL_MS: u64 = 1000;

/// One kind of warning, shared by every shard.
#[derive(Debug)]
pub struct LogLimit {
    /// When the last line was let through, in ms since start, plus one (0: never).
    last: AtomicU64,
    /// Lines held back since then.
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const fn new() -> Self {
        LogLimit {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log this one: `Some(lines suppressed before it)`, or `None` (counted).
    pub fn allow(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
        self.allow_at(now)
    }

    fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now_ms >= (last - 1).saturating_add(INTERVAL_MS);
        if due
            && self
                .last
                .compare_exchange(last, now_ms + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!` through a [`LogLimit`]: `warn_limited!(LIMIT, %peer, "message")`; the
/// line gets a `suppressed` field with the count held back before it.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $($rest:tt)+) => {
        if let Some(suppressed) = $limit.allow() {
            ::tracing::warn!(suppressed, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new();
        assert_eq!(limit.allow_at(0), Some(0), "the first one passes");
        for t in 1..200 {
            assert_eq!(limit.allow_at(t), None);
        }
        assert_eq!(limit.allow_at(999), None);
        assert_eq!(limit.allow_at(1000), Some(200));
        assert_eq!(limit.allow_at(1500), None);
        assert_eq!(limit.allow_at(5000), Some(1));
    }
}
