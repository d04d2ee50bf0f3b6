//! A shard: one pinned thread with its own executor and I/O driver, and the loop it runs.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;

use super::context::{self, ShardContext};
use super::epoll::PoolCompletion;
use super::executor::TaskKey;
use super::realtime::RealtimeShard;
use super::sys;

/// Index of a shard, `0..shard_count()`.
pub type ShardId = usize;

/// Most tasks polled between two looks at I/O, so a busy shard still reaps completions.
const POLL_BUDGET: usize = 256;
/// Most cross-shard messages taken from one sender per loop turn, so one busy sender can't
/// starve the others.
const MESSAGE_BATCH: usize = 64;
/// How long a stopping shard waits for the kernel to finish abandoned operations.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The part of a shard other threads may touch: how to wake it and what to hand it.
pub(crate) struct ShardShared {
    pub(crate) id: ShardId,
    /// Set while the shard is about to block in the kernel; whoever hands it work then signals
    /// the eventfd.
    parked: AtomicBool,
    wake_fd: OwnedFd,
    remote_wakes: SegQueue<TaskKey>,
    pool_done: SegQueue<PoolCompletion>,
    /// A mailbox this shard's tasks were blocked on has room again.
    pub(crate) space_available: AtomicBool,
    /// The shard has stopped; messages to it are dropped (their senders see `ShardStopped`).
    pub(crate) stopped: AtomicBool,
}

impl ShardShared {
    pub(crate) fn new(id: ShardId, backend: super::backend::IoBackend) -> io::Result<Self> {
        Ok(ShardShared {
            id,
            parked: AtomicBool::new(false),
            wake_fd: sys::eventfd(backend == super::backend::IoBackend::Epoll)?,
            remote_wakes: SegQueue::new(),
            pool_done: SegQueue::new(),
            space_available: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        })
    }

    pub(crate) fn wake_fd(&self) -> RawFd {
        self.wake_fd.as_raw_fd()
    }

    /// Wakes the shard if it is blocked in the kernel. Callers publish their work first; the
    /// SeqCst fence pairs with the one in [`ShardContext::prepare_park`] so that either the
    /// shard sees the work before blocking or we see it parked and signal it.
    pub(crate) fn unpark(&self) {
        fence(Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst) {
            sys::eventfd_signal(self.wake_fd());
        }
    }

    pub(crate) fn wake_remote(&self, key: TaskKey) {
        self.remote_wakes.push(key);
        self.unpark();
    }

    pub(crate) fn complete_pool_job(&self, done: PoolCompletion) {
        self.pool_done.push(done);
        self.unpark();
    }
}

impl ShardContext {
    /// Takes in everything other threads handed this shard since the last turn.
    fn drain_inbound(&self) {
        while let Some(key) = self.shared.remote_wakes.pop() {
            self.executor.schedule(key);
        }
        if !self.shared.pool_done.is_empty() {
            let mut driver = self.driver.borrow_mut();
            if let super::driver::Driver::Epoll(d) = &mut *driver {
                while let Some(done) = self.shared.pool_done.pop() {
                    d.deliver_pool_completion(done);
                }
            }
        }
        if self.shared.space_available.swap(false, Ordering::AcqRel) {
            let blocked = std::mem::take(&mut *self.blocked_senders.borrow_mut());
            blocked.into_iter().for_each(|w| w.wake());
        }
        self.runtime
            .mailboxes
            .receive(self.shared.id, MESSAGE_BATCH, &self.runtime.shards);
        if !self.shutdown_seen.get() && self.runtime.shutdown.load(Ordering::Acquire) {
            self.shutdown_seen.set(true);
            let waiters = std::mem::take(&mut *self.shutdown_waiters.borrow_mut());
            waiters.into_iter().for_each(|(_, w)| w.wake());
        }
    }

    fn inbound_pending(&self) -> bool {
        !self.shared.remote_wakes.is_empty()
            || !self.shared.pool_done.is_empty()
            || self.shared.space_available.load(Ordering::Acquire)
            || self.runtime.mailboxes.has_pending(self.shared.id)
            || (!self.shutdown_seen.get() && self.runtime.shutdown.load(Ordering::Acquire))
    }

    /// Announces that the shard is about to block; returns false (and stays unparked) when work
    /// arrived in the meantime.
    fn prepare_park(&self) -> bool {
        self.shared.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.inbound_pending() {
            self.shared.parked.store(false, Ordering::SeqCst);
            false
        } else {
            true
        }
    }
}

/// Runs a shard until shutdown: polls tasks, takes in cross-shard work, turns the I/O driver.
///
/// After shutdown is requested the shard keeps running until its tasks finish or `grace`
/// elapses; then it drops what is left, waits for the kernel to finish abandoned operations, and
/// marks itself stopped.
pub(crate) fn run(
    ctx: Rc<ShardContext>,
    timing: LoopTiming,
    root: Pin<Box<dyn Future<Output = ()>>>,
) -> io::Result<()> {
    context::enter(ctx.clone());
    // Marks the shard stopped however this function ends, panics included, so that nobody
    // waits forever on work sent to it.
    let _stopped = StopGuard { ctx: &ctx };
    ctx.executor.spawn(&ctx.shared, root);
    let result = run_loop(&ctx, timing);
    ctx.executor.drop_all();
    let leaked = ctx.driver.borrow_mut().drain_in_flight(DRAIN_LIMIT);
    if leaked > 0 {
        tracing::warn!(
            shard = ctx.shared.id,
            leaked,
            "operations still in flight at shard stop; their buffers are leaked"
        );
    }
    result
}

struct StopGuard<'a> {
    ctx: &'a ShardContext,
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let (shared, runtime) = (&self.ctx.shared, &self.ctx.runtime);
        shared.stopped.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        runtime.mailboxes.discard_inbound(shared.id);
        runtime
            .mailboxes
            .release_waiting_senders(shared.id, &runtime.shards);
        context::exit();
    }
}

/// Time settings of the shard loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopTiming {
    /// How long tasks may keep running after shutdown is requested.
    pub(crate) grace: Duration,
    /// How long an idle shard keeps polling before it blocks in the kernel (0: block at once).
    pub(crate) idle_poll: Duration,
    /// Run under this `SCHED_FIFO` priority while there is room (see [`super::realtime`]); the
    /// thread is already under it when the loop starts.
    pub(crate) realtime_priority: Option<u8>,
}

fn run_loop(ctx: &ShardContext, timing: LoopTiming) -> io::Result<()> {
    let mut stop_at: Option<Instant> = None;
    let mut realtime = timing
        .realtime_priority
        .map(|priority| RealtimeShard::new(priority, Instant::now()));
    loop {
        if let Some(realtime) = &mut realtime {
            realtime.tick(Instant::now());
        }
        ctx.drain_inbound();
        ctx.executor.run_ready(POLL_BUDGET);
        if !timing.idle_poll.is_zero() && !ctx.executor.has_ready() && !ctx.shutdown_seen.get() {
            idle_poll(ctx, timing.idle_poll)?;
        }
        if ctx.shutdown_seen.get() {
            let deadline = *stop_at.get_or_insert_with(|| Instant::now() + timing.grace);
            if ctx.executor.task_count() == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    shard = ctx.shared.id,
                    tasks = ctx.executor.task_count(),
                    "shutdown grace period over; dropping unfinished tasks"
                );
                return Ok(());
            }
        }
        let block = !ctx.executor.has_ready() && ctx.prepare_park();
        let turned = ctx.driver.borrow_mut().turn(block, stop_at);
        ctx.shared.parked.store(false, Ordering::SeqCst);
        turned?;
    }
}

/// Polls for work without blocking for up to `limit`: a wake-up through the kernel costs tens
/// of microseconds (more in VMs), which a shard that is about to get work can avoid by spinning
/// briefly, as Seastar's reactor does. Costs a core's worth of CPU while idle.
fn idle_poll(ctx: &ShardContext, limit: Duration) -> io::Result<()> {
    let until = Instant::now() + limit;
    loop {
        ctx.drain_inbound();
        if ctx.executor.has_ready() || ctx.shutdown_seen.get() {
            return Ok(());
        }
        ctx.driver.borrow_mut().turn(false, None)?;
        if ctx.executor.has_ready() || Instant::now() >= until {
            return Ok(());
        }
        std::hint::spin_loop();
    }
}
