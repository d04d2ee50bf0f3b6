//! Hooks through which the embedding broker measures the storage engine, without the engine
//! depending on any metrics library: per thread (per shard), a plain function called with
//! each duration. Unset hooks cost a thread-local read.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static SYNC: Cell<Option<fn(Duration)>> = const { Cell::new(None) };
    static WRITE: Cell<Option<fn(Duration)>> = const { Cell::new(None) };
}

/// Called on this thread with the duration of each group-commit round's syncs (every
/// fdatasync of the round, and the directory fsync when a segment was created).
pub fn set_sync_observer(observer: fn(Duration)) {
    SYNC.with(|s| s.set(Some(observer)));
}

/// Called on this thread with the duration of each append's write into the segment file.
pub fn set_write_observer(observer: fn(Duration)) {
    WRITE.with(|s| s.set(Some(observer)));
}

pub(crate) fn sync_took(d: Duration) {
    if let Some(f) = SYNC.with(Cell::get) {
        f(d);
    }
}

pub(crate) fn write_took(d: Duration) {
    if let Some(f) = WRITE.with(Cell::get) {
        f(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static SEEN: AtomicU64 = AtomicU64::new(0);

    fn note(d: Duration) {
        SEEN.fetch_add(d.as_micros() as u64, Ordering::SeqCst);
    }

    #[test]
    fn observers_are_per_thread() {
        std::thread::spawn(|| {
            sync_took(Duration::from_micros(5)); // no observer yet: nothing happens
            set_sync_observer(note);
            sync_took(Duration::from_micros(7));
        })
        .join()
        .unwrap();
        std::thread::spawn(|| sync_took(Duration::from_micros(100)))
            .join()
            .unwrap();
        assert_eq!(SEEN.load(Ordering::SeqCst), 7);
    }
}
