//! The per-shard I/O driver: io_uring or epoll, chosen once at start-up.

use std::task::Waker;
use std::time::Instant;

use super::epoll::{EpollDriver, TimerKey};
use super::uring::UringDriver;

/// The backend a shard runs on.
pub(crate) enum Driver {
    Uring(UringDriver),
    Epoll(EpollDriver),
}

/// Where an operation is in its life. Owned by the [`Op`](super::op::Op) future.
pub(crate) enum OpState<S> {
    /// Not yet handed to the backend (or, on epoll, waiting for readiness between attempts).
    Unsubmitted(Box<S>),
    /// Submitted to io_uring as `slot`; the kernel may touch `spec`'s memory until the CQE.
    /// `polling`: the operation itself got EAGAIN (splice on a non-blocking socket does) and
    /// `slot` is a poll for readiness, after which the operation is submitted again.
    Uring {
        slot: usize,
        spec: Box<S>,
        polling: bool,
    },
    /// Running on the blocking pool, which owns the spec until it reports back.
    Pool { slot: usize },
    /// Waiting on an epoll-backend timer.
    Timer { key: TimerKey, spec: Box<S> },
    /// Completed; polling again is a bug.
    Done,
}

impl<S> OpState<S> {
    /// Whether the backend holds a reference to this operation that a drop must release.
    pub(crate) fn is_in_flight(&self) -> bool {
        matches!(
            self,
            OpState::Uring { .. } | OpState::Pool { .. } | OpState::Timer { .. }
        )
    }
}

/// Counters for leak checks and `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Operations the kernel or the blocking pool still holds, including abandoned ones.
    pub ops_in_flight: usize,
    /// Of those, operations whose future was dropped (their buffers wait for the completion).
    pub ops_abandoned: usize,
    /// Descriptors registered with epoll (always 0 on io_uring).
    pub registered_fds: usize,
    /// Pending timers on the epoll backend (io_uring timers are operations).
    pub timers: usize,
}

impl Driver {
    /// Submits queued work and reaps completions, waking the tasks they belong to. Blocks until
    /// at least one event (or `deadline`) when `block` is set.
    pub(crate) fn turn(&mut self, block: bool, deadline: Option<Instant>) -> std::io::Result<()> {
        match self {
            Driver::Uring(d) => d.turn(block, deadline),
            Driver::Epoll(d) => d.turn(block, deadline),
        }
    }

    pub(crate) fn stats(&self) -> DriverStats {
        match self {
            Driver::Uring(d) => d.stats(),
            Driver::Epoll(d) => d.stats(),
        }
    }

    /// Forgets epoll state for a descriptor about to be closed.
    pub(crate) fn forget_fd(&mut self, fd: std::os::fd::RawFd) {
        if let Driver::Epoll(d) = self {
            d.forget_fd(fd);
        }
    }

    /// Waits (bounded) until every abandoned operation has completed, so their memory can be
    /// freed safely. Returns the number still outstanding, whose memory is then leaked.
    pub(crate) fn drain_in_flight(&mut self, limit: std::time::Duration) -> usize {
        match self {
            Driver::Uring(d) => d.drain_in_flight(limit),
            Driver::Epoll(d) => d.drain_in_flight(limit),
        }
    }
}

/// Replaces a stored waker only when it would wake a different task.
pub(crate) fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}
