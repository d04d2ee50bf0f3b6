//! One I/O operation as a future, the same on both backends.
//!
//! An operation is described by an [`OpSpec`]: plain data owning everything the kernel may touch
//! (buffers, socket addresses, timespecs), boxed so that its address never changes while the
//! operation is in flight. The backend decides how to carry it out:
//!
//! - io_uring submits [`OpSpec::uring_entry`] and completes with the CQE's result;
//! - epoll follows [`OpSpec::epoll_plan`]: retry a non-blocking call on readiness, run a blocking
//!   call on the pool, or wait on a timer.
//!
//! Dropping an [`Op`] before it completes never frees memory the kernel may still write: the spec
//! is handed to the backend, which keeps it until the completion arrives (and asks the kernel
//! to cancel the operation, so that arrives soon).

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use io_uring::squeue;

use super::context;
use super::driver::{Driver, OpState};

/// Which readiness an epoll-driven operation waits for before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// How the epoll backend carries out an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EpollPlan {
    /// Call [`OpSpec::run_sync`] now (it must not block); on EAGAIN (the raw errno; other
    /// `WouldBlock` errors go to the caller), wait for `interest` on `fd` and call it again.
    Readiness { fd: RawFd, interest: Interest },
    /// Call [`OpSpec::run_sync`] on the blocking pool (regular-file I/O, which epoll can't watch).
    Blocking,
    /// Complete with `Ok(0)` after the duration elapses.
    Timer(Duration),
}

/// The data and behaviour of one kind of operation.
pub(crate) trait OpSpec: Send + 'static {
    type Output;

    /// The io_uring submission. Pointers in it must refer to memory owned by `self` (heap
    /// buffers, or fields of `self`, which is boxed and never moved while in flight).
    fn uring_entry(&mut self) -> squeue::Entry;

    /// How the epoll backend runs this operation.
    fn epoll_plan(&self) -> EpollPlan;

    /// Performs the system call once (epoll backend; file writes on io_uring too when
    /// `inline_file_writes` is set). Returns the same value a CQE would
    /// carry: a count, a descriptor, or zero.
    fn run_sync(&mut self) -> io::Result<u32>;

    /// After EAGAIN on io_uring (splice on a non-blocking socket can return it), whether to wait
    /// for the readiness named by [`epoll_plan`](Self::epoll_plan) and submit again.
    fn retry_on_readiness(&self) -> bool {
        true
    }

    /// Turns the raw result into the operation's output, handing buffers back.
    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output;

    /// Called instead of [`complete`](Self::complete) when the future was dropped before the
    /// result arrived. Operations whose success creates a resource (accept's descriptor)
    /// release it here.
    fn orphaned(self: Box<Self>, result: io::Result<u32>) {
        let _ = result;
    }
}

/// Type-erased hook for completions that arrive after their future was dropped.
pub(crate) trait Orphan: Send {
    fn finish(self: Box<Self>, result: io::Result<u32>);
}

impl<S: OpSpec> Orphan for S {
    fn finish(self: Box<Self>, result: io::Result<u32>) {
        self.orphaned(result)
    }
}

/// Converts a CQE result (`-errno` or a value) into an `io::Result`.
pub(crate) fn cqe_result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

/// A future that runs one operation on the current shard's backend.
///
/// Not `Send`: its state refers to a slot of the driver of the shard that first polled it.
pub(crate) struct Op<S: OpSpec> {
    state: OpState<S>,
    _not_send: PhantomData<*const ()>,
}

impl<S: OpSpec> Op<S> {
    pub(crate) fn new(spec: S) -> Self {
        Op {
            state: OpState::Unsubmitted(Box::new(spec)),
            _not_send: PhantomData,
        }
    }
}

impl<S: OpSpec> Future for Op<S> {
    type Output = S::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<S::Output> {
        let this = self.get_mut();
        context::with_driver(|driver| match driver {
            Driver::Uring(d) => d.poll_op(&mut this.state, cx),
            Driver::Epoll(d) => d.poll_op(&mut this.state, cx),
        })
    }
}

impl<S: OpSpec> Drop for Op<S> {
    fn drop(&mut self) {
        if !self.state.is_in_flight() {
            return;
        }
        let mut state = Some(std::mem::replace(&mut self.state, OpState::Done));
        context::try_with_driver(|driver| {
            if let Some(state) = state.take() {
                match driver {
                    Driver::Uring(d) => d.abandon_op(state),
                    Driver::Epoll(d) => d.abandon_op(state),
                }
            }
        });
        // An in-flight op only exists on a shard thread, and shards drop their tasks while
        // their driver is still alive; if that ever fails, leaking beats freeing memory the
        // kernel may still write to.
        if let Some(state) = state {
            std::mem::forget(state);
        }
    }
}
