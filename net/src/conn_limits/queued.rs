//! Kafka's `queued.max.request.bytes`: a broker-wide cap on the bytes of request frames read
//! but not yet answered, across every connection and shard.
//!
//! A connection takes its frame's bytes from the pool as soon as the frame's size prefix
//! arrives, before it reserves a buffer for the body, and gives them back when the response
//! has been sent (or the request is dropped). While the pool is full, connections stop
//! reading: back-pressure, not failure. One atomic update per request on each side.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often a connection waiting for room looks again. Bytes are given back on other
/// shards, which have no way to wake this one; a full pool is an overload condition, where
/// a few milliseconds of extra wait don't matter.
const RETRY: Duration = Duration::from_millis(5);

/// The pool of request bytes.
#[derive(Debug)]
pub struct QueuedRequestBytes {
    /// The cap; `usize::MAX` when disabled (-1).
    cap: AtomicUsize,
    /// Bytes of frames read (or being read) and not yet answered.
    used: AtomicUsize,
    /// The most `used` has been: what the metrics and tests check against the cap.
    peak: AtomicUsize,
}

/// The broker's pool.
pub static QUEUED_REQUEST_BYTES: QueuedRequestBytes = QueuedRequestBytes::new(usize::MAX);

impl QueuedRequestBytes {
    pub const fn new(cap: usize) -> Self {
        QueuedRequestBytes {
            cap: AtomicUsize::new(cap),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Sets the cap (`None`: unlimited). At start-up, before any connection.
    pub fn set_cap(&self, cap: Option<usize>) {
        self.cap.store(cap.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Takes `bytes` if they fit under the cap. A frame larger than the whole cap is let in
    /// when nothing else is queued, so that it runs alone rather than never.
    pub fn try_acquire(&'static self, bytes: usize) -> Option<QueuedBytes> {
        let cap = self.cap.load(Ordering::Relaxed);
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.saturating_add(bytes);
                (used == 0 || after <= cap).then_some(after)
            })
            .ok()?
            .saturating_add(bytes);
        // Read first: the peak moves rarely, so this stays a shared cache line.
        if taken > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(taken, Ordering::Relaxed);
        }
        Some(QueuedBytes { pool: self, bytes })
    }

    /// Takes `bytes`, waiting while the pool is full. Runs on a shard (it sleeps on the
    /// shard's timer); `waiting` is called on each retry (the connection counts that as
    /// activity, not idleness).
    pub async fn acquire(&'static self, bytes: usize, waiting: impl Fn()) -> QueuedBytes {
        loop {
            if let Some(taken) = self.try_acquire(bytes) {
                return taken;
            }
            waiting();
            runnel_engine::rt::sleep(RETRY).await;
        }
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes queued at once since start.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<usize> {
        Some(self.cap.load(Ordering::Relaxed)).filter(|&cap| cap != usize::MAX)
    }
}

/// Bytes taken from the pool, given back when dropped (once the response is sent).
#[derive(Debug)]
pub struct QueuedBytes {
    pool: &'static QueuedRequestBytes,
    bytes: usize,
}

impl Drop for QueuedBytes {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cap: usize) -> &'static QueuedRequestBytes {
        Box::leak(Box::new(QueuedRequestBytes::new(cap)))
    }

    #[test]
    fn takes_up_to_the_cap_and_gives_back_on_drop() {
        let pool = pool(100);
        let a = pool.try_acquire(60).unwrap();
        let b = pool.try_acquire(40).unwrap();
        assert_eq!(pool.used(), 100);
        assert!(pool.try_acquire(1).is_none(), "full");
        drop(a);
        assert_eq!(pool.used(), 40);
        let c = pool.try_acquire(60).unwrap();
        assert!(pool.try_acquire(1).is_none());
        drop((b, c));
        assert_eq!(pool.used(), 0);
        assert_eq!(pool.peak(), 100, "never past the cap");
    }

    #[test]
    fn a_frame_larger_than_the_cap_runs_alone() {
        let pool = pool(100);
        let small = pool.try_acquire(10).unwrap();
        assert!(
            pool.try_acquire(500).is_none(),
            "waits for the pool to empty"
        );
        drop(small);
        let big = pool.try_acquire(500).unwrap();
        assert!(pool.try_acquire(1).is_none());
        drop(big);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn disabled_never_refuses_but_still_counts() {
        let pool = pool(100);
        pool.set_cap(None);
        assert_eq!(pool.cap(), None);
        let held: Vec<_> = (0..10)
            .map(|_| pool.try_acquire(1 << 30).unwrap())
            .collect();
        assert_eq!(pool.used(), 10 << 30);
        drop(held);
        assert_eq!(pool.used(), 0);
    }
}
