//! The thread-per-core runtime.
//!
//! A [`Runtime`] runs one shard per core: a pinned thread with its own single-threaded executor
//! and its own I/O driver, io_uring where the kernel allows it and epoll otherwise (see
//! [`BackendChoice`]). Tasks are spawned per shard with [`spawn_local`] and never move between
//! shards; shards exchange work only through bounded mailboxes ([`submit_to`]).
//!
//! I/O operations take their buffers by value and return them with the result, so that a
//! dropped future never frees memory the kernel may still be writing: the driver keeps an
//! abandoned operation's buffers until its completion arrives.
//!
//! ```no_run
//! use runnel_engine::rt::{self, Runtime, RuntimeConfig, TcpListener};
//!
//! let runtime = Runtime::start(RuntimeConfig::default(), |_shard| async {
//!     let listener = TcpListener::bind_reuseport("127.0.0.1:9092").unwrap();
//!     while let Ok((stream, _peer)) = listener.accept().await {
//!         rt::spawn_local(async move {
//!             let (result, buf) = stream.recv(Vec::with_capacity(4096)).await;
//!             if let Ok(n) = result {
//!                 let _ = stream.send_all(buf).await;
//!             }
//!         });
//!     }
//! })
//! .unwrap();
//! runtime.join().unwrap();
//! ```

mod backend;
mod blocking;
mod buf;
mod context;
mod driver;
mod epoll;
mod event;
mod executor;
pub mod fault;
mod fd;
pub mod fs;
mod mailbox;
mod net;
mod op;
mod ops;
mod pipe;
mod realtime;
mod runtime;
mod shard;
mod sys;
mod time;
mod uring;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use backend::{probe_uring, BackendChoice, IoBackend, UringUnavailable};
pub(crate) use blocking::unblock;
pub use buf::{IoBuf, IoBufMut};
pub use driver::DriverStats;
pub use event::{LocalEvent, Wait as EventWait};
pub use executor::{spawn_local, yield_now, JoinHandle};
pub use fs::File;
pub use mailbox::{run_on, submit_to, Posted, ShardStopped, SubmitTo};
pub use net::{PeerClosedProbe, TcpListener, TcpStream};
pub use ops::FdKind;
pub use pipe::{splice, Pipe, PipeReader, PipeWriter, SpliceFd};
pub use realtime::workers_identifiable as realtime_workers_identifiable;
pub use runtime::{Runtime, RuntimeConfig, RuntimeError, RuntimeHandle};
pub use shard::ShardId;
pub use sys::{page_size, thread_fifo_priority};
pub use time::{select, sleep, timeout, Either, Elapsed, Timeout};

/// The current shard's index.
///
/// # Panics
/// Off a shard thread.
pub fn shard_id() -> ShardId {
    context::with(|ctx| ctx.shared.id)
}

/// The number of shards in the current runtime.
///
/// # Panics
/// Off a shard thread.
pub fn shard_count() -> usize {
    context::with(|ctx| ctx.runtime.shards.len())
}

/// The backend the current shard runs on.
///
/// # Panics
/// Off a shard thread.
pub fn backend() -> IoBackend {
    context::with(|ctx| ctx.backend)
}

/// Live counters of the current shard, for leak checks and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Spawned tasks that have not finished (including the caller's).
    pub tasks: usize,
    /// The I/O driver's counters.
    pub driver: DriverStats,
    /// Futures of [`shutdown_requested`] polled and not yet dropped.
    pub shutdown_waiters: usize,
}

/// Counters of the current shard.
///
/// # Panics
/// Off a shard thread.
pub fn stats() -> ShardStats {
    context::with(|ctx| ShardStats {
        tasks: ctx.executor.task_count(),
        driver: ctx.driver.borrow().stats(),
        shutdown_waiters: ctx.shutdown_waiters.borrow().len(),
    })
}

/// Resolves once shutdown of the runtime has been requested: the signal for listeners to stop
/// accepting and for connections to finish their in-flight work.
///
/// # Panics
/// When polled off a shard thread.
pub fn shutdown_requested() -> ShutdownRequested {
    ShutdownRequested { key: None }
}

/// The future returned by [`shutdown_requested`].
#[derive(Debug)]
pub struct ShutdownRequested {
    /// Its slot among the shard's shutdown waiters, once polled.
    key: Option<usize>,
}

impl Future for ShutdownRequested {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        context::with(|ctx| {
            if ctx.shutdown_seen.get() {
                // The waiters were taken (and woken) when shutdown was seen: the slot is gone.
                self.key = None;
                return Poll::Ready(());
            }
            let mut waiters = ctx.shutdown_waiters.borrow_mut();
            match self.key.and_then(|key| waiters.get_mut(key)) {
                Some(waker) => waker.clone_from(cx.waker()),
                None => self.key = Some(waiters.insert(cx.waker().clone())),
            }
            Poll::Pending
        })
    }
}

impl Drop for ShutdownRequested {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            context::try_with(|ctx| {
                if !ctx.shutdown_seen.get() {
                    ctx.shutdown_waiters.borrow_mut().try_remove(key);
                }
            });
        }
    }
}
