//! Starting and stopping a runtime: one shard thread per core.

use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::backend::{self, BackendChoice, IoBackend, UringUnavailable};
use super::blocking::BlockingPool;
use super::context::{self, ShardContext};
use super::driver::Driver;
use super::epoll::EpollDriver;
use super::executor::Executor;
use super::mailbox::{Mailboxes, ShardStopped, SubmitTo};
use super::shard::{self, ShardId, ShardShared};
use super::uring::{self, UringDriver};

/// How to build a runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Number of shards; 0 means one per online core.
    pub cores: usize,
    /// `io.backend`: auto, uring or epoll.
    pub backend: BackendChoice,
    /// Pin shard `i` to the `i`-th online core (wrapping around).
    pub pin_threads: bool,
    /// Submission queue size of each shard's ring (the completion queue is 4x).
    pub ring_entries: u32,
    /// Capacity of each shard-to-shard mailbox, in messages.
    pub mailbox_capacity: usize,
    /// Threads of the blocking pool: file I/O under epoll, and on both backends the rare
    /// metadata calls (create, rename, remove) that must not stall a shard.
    pub blocking_threads: usize,
    /// How long shards wait for their tasks to finish after shutdown is requested.
    pub shutdown_grace: Duration,
    /// How long an idle shard keeps polling for work before blocking in the kernel. Zero (the
    /// default) blocks at once; a few hundred microseconds cut cross-shard and network wake-up
    /// latency at the cost of busy cores (see bench/RESULTS.md).
    pub idle_poll: Duration,
    /// Write files (log appends) with pwritev(2) on the shard thread instead of through the
    /// backend. Buffered writes that the file system can't do without blocking (ext4 refuses
    /// RWF_NOWAIT) go to io_uring's worker threads, two thread hand-offs per append; inline
    /// they take microseconds, but a write the kernel throttles (too many dirty pages) stalls
    /// the whole shard while it waits. Off by default (bench/RESULTS.md has both).
    pub inline_file_writes: bool,
    /// Run each shard thread, and the io_uring workers it starts, under `SCHED_FIFO` at this
    /// priority (1-99) while the shard has room on its core, so that ordinary processes there
    /// wait for the shard instead of preempting it mid-request; a shard busier than that steps
    /// down to normal scheduling until it has room again ([`super::realtime`] says why). Needs
    /// root, `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` this high. Not with `idle_poll`: a spinning
    /// shard is always busy. `None` (the default): normal scheduling.
    pub realtime_priority: Option<u8>,
}

impl RuntimeConfig {
    /// The number of shards this config starts: `cores`, or one per online core when 0.
    pub fn shard_count(&self) -> usize {
        match self.cores {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Refuses settings that can't work together (see each field).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(priority) = self.realtime_priority {
            if !(1..=99).contains(&priority) {
                return Err(format!(
                    "real-time priority {priority} is outside SCHED_FIFO's 1-99"
                ));
            }
            if !self.idle_poll.is_zero() {
                return Err(
                    "a real-time shard must not poll when idle: spinning, it would look busy \
                     and give up its priority"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cores: 0,
            backend: BackendChoice::Auto,
            pin_threads: true,
            ring_entries: 1024,
            mailbox_capacity: 1024,
            blocking_threads: 4,
            shutdown_grace: Duration::from_secs(10),
            idle_poll: Duration::ZERO,
            inline_file_writes: false,
            realtime_priority: None,
        }
    }
}

/// Why a runtime could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `io.backend = "uring"` was forced but io_uring is unusable here.
    #[error("io.backend = \"uring\" but {0}")]
    UringUnavailable(#[from] UringUnavailable),
    /// A shard failed to set up or its driver failed.
    #[error("shard {shard}: {source}")]
    Shard { shard: ShardId, source: io::Error },
    /// The config asks for settings that can't work together.
    #[error("invalid runtime config: {0}")]
    Invalid(String),
    /// A shard thread panicked.
    #[error("shard {0} panicked")]
    ShardPanicked(ShardId),
    /// Threads or descriptors could not be created.
    #[error("cannot start runtime: {0}")]
    Io(#[from] io::Error),
}

/// State shared by all shards of a runtime and its handles.
pub(crate) struct RuntimeShared {
    pub(crate) shards: Vec<Arc<ShardShared>>,
    pub(crate) mailboxes: Mailboxes,
    pub(crate) shutdown: AtomicBool,
    pub(crate) backend: IoBackend,
}

impl RuntimeShared {
    fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.shards.iter().for_each(|s| s.unpark());
    }
}

/// A running set of shards. Dropping it requests shutdown and waits for the shards to stop.
pub struct Runtime {
    shared: Arc<RuntimeShared>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("shards", &self.shared.shards.len())
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl Runtime {
    /// Starts the shards. Each runs `init(shard_id)` as its first task; shards keep running
    /// (serving `submit_to` work) after it finishes, until [`shutdown`](Self::shutdown).
    ///
    /// Returns once every shard has set up its driver, or with the first shard's error.
    pub fn start<F, Fut>(config: RuntimeConfig, init: F) -> Result<Runtime, RuntimeError>
    where
        F: Fn(ShardId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        config.validate().map_err(RuntimeError::Invalid)?;
        if config.realtime_priority.is_some() {
            super::realtime::workers_identifiable().map_err(RuntimeError::Invalid)?;
        }
        super::sys::ignore_sigpipe();
        super::sys::keep_freed_heap_memory();
        let backend = backend::resolve(config.backend)?;
        let count = config.shard_count();
        let shards = (0..count)
            .map(|id| ShardShared::new(id, backend).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(RuntimeShared {
            shards,
            mailboxes: Mailboxes::new(count, config.mailbox_capacity),
            shutdown: AtomicBool::new(false),
            backend,
        });
        let pool = Arc::new(BlockingPool::new(config.blocking_threads)?);
        let cores = if config.pin_threads {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let init = Arc::new(init);
        let (ready_tx, ready_rx) = mpsc::channel::<(ShardId, io::Result<()>)>();

        let mut runtime = Runtime {
            shared: shared.clone(),
            threads: Vec::with_capacity(count),
        };
        for id in 0..count {
            let shared = shared.clone();
            let pool = pool.clone();
            let init = init.clone();
            let ready_tx = ready_tx.clone();
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let config = config.clone();
            let spawned = thread::Builder::new()
                .name(format!("runnel-shard-{id}"))
                .spawn(move || {
                    let fail = |e: io::Error| {
                        let err = io::Error::new(e.kind(), e.to_string());
                        let _ = ready_tx.send((id, Err(e)));
                        Err(err)
                    };
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core) {
                            tracing::warn!(
                                shard = id,
                                core = core.id,
                                "could not pin shard thread"
                            );
                        }
                    }
                    // Before the driver exists, so the io_uring workers it starts inherit it.
                    if let Some(priority) = config.realtime_priority {
                        if let Err(e) = super::sys::set_thread_scheduling(0, Some(priority.into()))
                        {
                            return fail(io::Error::new(
                                e.kind(),
                                format!(
                                    "cannot run under SCHED_FIFO priority {priority}: {e} \
                                     (needs root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at least \
                                     {priority})"
                                ),
                            ));
                        }
                    }
                    let driver =
                        match new_driver(backend, &shared.shards[id], &pool, config.ring_entries) {
                            Ok(driver) => driver,
                            Err(e) => return fail(e),
                        };
                    let ctx = Rc::new(ShardContext {
                        shared: shared.shards[id].clone(),
                        runtime: shared.clone(),
                        executor: Executor::new(),
                        driver: std::cell::RefCell::new(driver),
                        backend,
                        pool,
                        blocked_senders: Default::default(),
                        shutdown_waiters: Default::default(),
                        shutdown_seen: Default::default(),
                        inline_file_writes: config.inline_file_writes,
                    });
                    let _ = ready_tx.send((id, Ok(())));
                    drop(ready_tx);
                    let root = Box::pin(init(id));
                    let timing = shard::LoopTiming {
                        grace: config.shutdown_grace,
                        idle_poll: config.idle_poll,
                        realtime_priority: config.realtime_priority,
                    };
                    shard::run(ctx, timing, root)
                });
            match spawned {
                Ok(handle) => runtime.threads.push(handle),
                Err(e) => {
                    runtime.shutdown();
                    return Err(RuntimeError::Io(e));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..count {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((shard, Err(source))) => {
                    runtime.shutdown();
                    return Err(RuntimeError::Shard { shard, source });
                }
                Err(_) => {
                    runtime.shutdown();
                    return Err(RuntimeError::Io(io::Error::other(
                        "a shard thread died during set-up",
                    )));
                }
            }
        }
        tracing::info!(backend = %backend, shards = count, "runtime started");
        Ok(runtime)
    }

    /// The backend the shards run on.
    pub fn backend(&self) -> IoBackend {
        self.shared.backend
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shared.shards.len()
    }

    /// A handle for submitting work from any thread.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle {
            shared: self.shared.clone(),
        }
    }

    /// Asks every shard to stop: [`shutdown_requested`](super::shutdown_requested) resolves,
    /// and each shard stops once its tasks are done (or after the grace period).
    pub fn shutdown(&self) {
        self.shared.request_shutdown();
    }

    /// Requests shutdown and waits for every shard to stop.
    pub fn join(mut self) -> Result<(), RuntimeError> {
        self.join_threads()
    }

    fn join_threads(&mut self) -> Result<(), RuntimeError> {
        self.shared.request_shutdown();
        let mut first_error = None;
        for (shard, thread) in self.threads.drain(..).enumerate() {
            let result = match thread.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(RuntimeError::Shard { shard, source }),
                Err(_) => Err(RuntimeError::ShardPanicked(shard)),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.join_threads();
    }
}

fn new_driver(
    backend: IoBackend,
    shard: &Arc<ShardShared>,
    pool: &Arc<BlockingPool>,
    ring_entries: u32,
) -> io::Result<Driver> {
    Ok(match backend {
        IoBackend::Uring => Driver::Uring(UringDriver::new(
            uring::build_ring(ring_entries)?,
            shard.wake_fd(),
        )),
        IoBackend::Epoll => Driver::Epoll(EpollDriver::new(shard.clone(), pool.clone())?),
    })
}

/// Submits work to a runtime's shards from any thread.
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<RuntimeShared>,
}

impl fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("shards", &self.shared.shards.len())
            .finish()
    }
}

impl RuntimeHandle {
    /// Like [`submit_to`](super::submit_to), usable from any thread or executor.
    ///
    /// # Panics
    /// When `shard` is not a shard of this runtime.
    pub fn submit_to<F, Fut>(&self, shard: ShardId, work: F) -> SubmitTo<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        assert!(shard < self.shared.shards.len(), "no shard {shard}");
        SubmitTo::from_outside(self.shared.clone(), shard, work)
    }

    /// Runs `work` on `shard` and blocks the calling thread until it finishes.
    ///
    /// # Panics
    /// When called on a shard thread (blocking a shard would stall it), or when `shard` is not
    /// a shard of this runtime.
    pub fn run_on<F, Fut>(&self, shard: ShardId, work: F) -> Result<Fut::Output, ShardStopped>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        assert!(
            context::try_with(|_| ()).is_none(),
            "run_on would block a shard thread"
        );
        block_on_thread(self.submit_to(shard, work))
    }

    /// Asks every shard to stop (see [`Runtime::shutdown`]).
    pub fn shutdown(&self) {
        self.shared.request_shutdown();
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shared.shards.len()
    }

    /// The backend the shards run on.
    pub fn backend(&self) -> IoBackend {
        self.shared.backend
    }
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives a future to completion on a plain (non-shard) thread by parking between polls.
fn block_on_thread<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
