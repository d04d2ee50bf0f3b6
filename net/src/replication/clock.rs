//! The time the replication state machines are given: milliseconds on a monotonic clock
//! (wall-clock jumps must not push followers out of the ISR or hold them in it).

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process.
pub fn now_ms() -> i64 {
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}
