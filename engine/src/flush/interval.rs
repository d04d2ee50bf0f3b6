//! The `interval` policy's timer: one background flush at a time per log, started by the first
//! unsynced append and run `flush.ms` later, or at once when `flush.bytes` are unsynced.
//!
//! Appends never wait for it; a failed sync is recorded in the log, where appenders see it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::sync::{self, SyncTarget};
use crate::rt::{self, LocalEvent};

/// The timer's state, kept by the log.
#[derive(Debug, Default)]
pub(crate) struct IntervalFlush {
    /// A flush task is waiting to run.
    pending: Cell<bool>,
    /// `flush.bytes` was reached while it waited: it should not wait any longer.
    kicked: Cell<bool>,
    /// Ends the waiting task's wait early.
    kick: LocalEvent,
}

impl IntervalFlush {
    /// Ends the wait of a flush task now: the log is closing or quiescing and wants it done.
    pub(crate) fn hurry(&self) {
        self.kick.notify_all();
    }
}

/// Makes sure a sync runs within `ms`, or now once `bytes` are unsynced.
pub(crate) fn schedule<T: SyncTarget>(log: &Rc<T>, ms: Duration, bytes: Option<u64>) {
    let flush = log.interval_flush();
    let over = bytes.is_some_and(|limit| log.unsynced_bytes() >= limit);
    if flush.pending.get() {
        if over {
            // The flag covers a task not yet polled (not yet waiting for the kick).
            flush.kicked.set(true);
            flush.kick.notify_all();
        }
        return;
    }
    flush.pending.set(true);
    let delay = if over { Duration::ZERO } else { ms };
    let task_log = log.clone();
    log.spawn_background(async move {
        let flush = task_log.interval_flush();
        if !flush.kicked.get() {
            let _ = rt::select(rt::sleep(delay), flush.kick.wait()).await;
        }
        flush.pending.set(false);
        flush.kicked.set(false);
        let target = task_log.high_watermark();
        // A failure is recorded in the log's state; appenders see it.
        let _ = sync::sync_to(&task_log, target).await;
    });
}
