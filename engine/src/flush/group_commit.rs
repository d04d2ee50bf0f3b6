//! Group commit: one fdatasync serves every append whose write completed before it started.
//!
//! The tracker knows only offsets: `synced` (everything below it is durable) and whether a sync
//! round is in flight. [`super::sync`] runs the rounds; the log says what each one covers.

use std::cell::Cell;

use crate::rt::{EventWait, LocalEvent};

/// Sync progress of one log (shard-local).
#[derive(Debug)]
pub struct GroupCommit {
    synced: Cell<i64>,
    in_flight: Cell<bool>,
    rounds: Cell<u64>,
    round_done: LocalEvent,
}

impl GroupCommit {
    /// A tracker for a log whose offsets below `synced` are already durable.
    pub fn new(synced: i64) -> Self {
        GroupCommit {
            synced: Cell::new(synced),
            in_flight: Cell::new(false),
            rounds: Cell::new(0),
            round_done: LocalEvent::new(),
        }
    }

    /// Every offset below this is on stable storage.
    pub fn synced(&self) -> i64 {
        self.synced.get()
    }

    /// Sync rounds started so far (each is one fdatasync per segment it touches).
    pub fn rounds(&self) -> u64 {
        self.rounds.get()
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.get()
    }

    /// Starts a round unless one is in flight; true when the caller now owns the round and
    /// must sync, then call [`end_round`](Self::end_round) exactly once.
    pub fn try_begin(&self) -> bool {
        if self.in_flight.replace(true) {
            return false;
        }
        self.rounds.set(self.rounds.get() + 1);
        true
    }

    /// Completes when the round in flight (or the next one) ends.
    pub fn round_done(&self) -> EventWait<'_> {
        self.round_done.wait()
    }

    /// The log was truncated to end at `end`: nothing at or past it is durable any more (the
    /// offsets will be written again). Call only with no round in flight, or that round's
    /// end would raise the mark again.
    pub fn truncate_to(&self, end: i64) {
        debug_assert!(!self.in_flight.get(), "truncating under a sync round");
        self.synced.set(self.synced.get().min(end));
    }

    /// Ends the round in flight: every offset below `durable_to` is now durable (`None`: the
    /// round failed or was abandoned). Wakes everyone waiting for a round.
    pub fn end_round(&self, durable_to: Option<i64>) {
        if let Some(offset) = durable_to {
            self.synced.set(self.synced.get().max(offset));
        }
        self.in_flight.set(false);
        self.round_done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_at_a_time() {
        let gc = GroupCommit::new(0);
        assert!(gc.try_begin(), "an idle tracker starts a round");
        assert!(!gc.try_begin(), "a second round must wait");
        gc.end_round(Some(10));
        assert_eq!(gc.synced(), 10);
        assert!(!gc.in_flight());
        // Progress never goes backwards; a failed round frees the tracker.
        assert!(gc.try_begin());
        gc.end_round(Some(5));
        assert_eq!(gc.synced(), 10);
        assert!(gc.try_begin());
        gc.end_round(None);
        assert!(!gc.in_flight());
        assert_eq!(gc.rounds(), 3);
    }
}
