//! The epoll fallback: the same operations on readiness, a blocking pool and a timer list.
//!
//! Sockets and pipes are registered edge-triggered the first time an operation on them would
//! block; an operation that gets `EAGAIN` parks its waker on the descriptor and retries when an
//! edge arrives. Everything runs on the shard's thread, and events are only processed between
//! task polls, so an edge can't slip in between the failed attempt and the parking.
//!
//! Regular files can't be watched by epoll, so their operations run on the blocking pool, which
//! owns the spec (and its buffers) until it reports back; a dropped future only marks its slot
//! abandoned.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use super::blocking::BlockingPool;
use super::driver::{store_waker, DriverStats, OpState};
use super::op::{EpollPlan, Interest, OpSpec};
use super::shard::ShardShared;
use super::sys;

/// Token of the shard's wake eventfd in the epoll set; descriptors use their own number.
const WAKE_TOKEN: u64 = u64::MAX;

/// Identifies a pending timer: its deadline, then a sequence number for uniqueness.
pub(crate) type TimerKey = (Instant, u64);

#[derive(Default)]
struct Waiters {
    read: Vec<Waker>,
    write: Vec<Waker>,
}

/// A finished blocking-pool job on its way back to the shard.
pub(crate) struct PoolCompletion {
    pub(crate) slot: usize,
    pub(crate) result: io::Result<u32>,
    pub(crate) spec: Box<dyn Any + Send>,
}

enum PoolSlot {
    Waiting(Option<Waker>),
    Completed(io::Result<u32>, Box<dyn Any + Send>),
    Abandoned,
}

pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    registered: HashMap<RawFd, Waiters>,
    timers: BTreeMap<TimerKey, Option<Waker>>,
    next_timer_seq: u64,
    pool_slots: Slab<PoolSlot>,
    abandoned: usize,
    pool: Arc<BlockingPool>,
    shard: Arc<ShardShared>,
}

impl EpollDriver {
    pub(crate) fn new(shard: Arc<ShardShared>, pool: Arc<BlockingPool>) -> io::Result<Self> {
        let epfd = sys::epoll_create()?;
        // Level-triggered: the shard drains the eventfd whenever it reports.
        sys::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            shard.wake_fd(),
            libc::EPOLLIN as u32,
            WAKE_TOKEN,
        )?;
        Ok(EpollDriver {
            epfd,
            events: Vec::with_capacity(256),
            registered: HashMap::new(),
            timers: BTreeMap::new(),
            next_timer_seq: 0,
            pool_slots: Slab::with_capacity(64),
            abandoned: 0,
            pool,
            shard,
        })
    }

    pub(crate) fn poll_op<S: OpSpec>(
        &mut self,
        state: &mut OpState<S>,
        cx: &mut Context<'_>,
    ) -> Poll<S::Output> {
        match std::mem::replace(state, OpState::Done) {
            OpState::Unsubmitted(mut spec) => match spec.epoll_plan() {
                EpollPlan::Readiness { fd, interest } => match spec.run_sync() {
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                        if let Err(e) = self.wait_for(fd, interest, cx.waker()) {
                            return Poll::Ready(spec.complete(Err(e)));
                        }
                        *state = OpState::Unsubmitted(spec);
                        Poll::Pending
                    }
                    // EINTR can't happen on non-blocking calls made with signals handled, but
                    // if it does, retrying on the next poll is the right answer.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        cx.waker().wake_by_ref();
                        *state = OpState::Unsubmitted(spec);
                        Poll::Pending
                    }
                    result => Poll::Ready(spec.complete(result)),
                },
                EpollPlan::Blocking => {
                    let slot = self
                        .pool_slots
                        .insert(PoolSlot::Waiting(Some(cx.waker().clone())));
                    let shard = self.shard.clone();
                    self.pool.execute(Box::new(move || {
                        let mut spec = spec;
                        let result = spec.run_sync();
                        shard.complete_pool_job(PoolCompletion { slot, result, spec });
                    }));
                    *state = OpState::Pool { slot };
                    Poll::Pending
                }
                EpollPlan::Timer(duration) => {
                    // `Timeout::new` clamps durations, so this cannot overflow.
                    let key = (Instant::now() + duration, self.next_timer_seq);
                    self.next_timer_seq += 1;
                    self.timers.insert(key, Some(cx.waker().clone()));
                    *state = OpState::Timer { key, spec };
                    Poll::Pending
                }
            },
            OpState::Pool { slot } => match &mut self.pool_slots[slot] {
                PoolSlot::Completed(..) => {
                    let PoolSlot::Completed(result, spec) = self.pool_slots.remove(slot) else {
                        unreachable!()
                    };
                    let spec: Box<S> = spec.downcast().expect("pool returns the spec it was given");
                    Poll::Ready(spec.complete(result))
                }
                PoolSlot::Waiting(waker) => {
                    store_waker(waker, cx.waker());
                    *state = OpState::Pool { slot };
                    Poll::Pending
                }
                PoolSlot::Abandoned => unreachable!("a live future's slot is never abandoned"),
            },
            OpState::Timer { key, spec } => match self.timers.get_mut(&key) {
                Some(waker) => {
                    store_waker(waker, cx.waker());
                    *state = OpState::Timer { key, spec };
                    Poll::Pending
                }
                None => Poll::Ready(spec.complete(Ok(0))),
            },
            OpState::Uring { .. } => unreachable!("io_uring state on the epoll driver"),
            OpState::Done => panic!("I/O operation polled after completion"),
        }
    }

    /// Takes over an operation whose future was dropped while in flight.
    pub(crate) fn abandon_op<S: OpSpec>(&mut self, state: OpState<S>) {
        match state {
            OpState::Pool { slot } => match self.pool_slots.get_mut(slot) {
                Some(PoolSlot::Waiting(_)) => {
                    self.pool_slots[slot] = PoolSlot::Abandoned;
                    self.abandoned += 1;
                }
                Some(PoolSlot::Completed(..)) => {
                    let PoolSlot::Completed(result, spec) = self.pool_slots.remove(slot) else {
                        unreachable!()
                    };
                    if let Ok(spec) = spec.downcast::<S>() {
                        spec.orphaned(result);
                    }
                }
                Some(PoolSlot::Abandoned) | None => {}
            },
            OpState::Timer { key, .. } => {
                self.timers.remove(&key);
            }
            _ => {}
        }
    }

    /// Parks `waker` until `fd` reports `interest`, registering `fd` on first use.
    fn wait_for(&mut self, fd: RawFd, interest: Interest, waker: &Waker) -> io::Result<()> {
        if !self.registered.contains_key(&fd) {
            let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
            sys::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                events,
                fd as u64,
            )?;
            self.registered.insert(fd, Waiters::default());
        }
        let waiters = self.registered.get_mut(&fd).expect("registered above");
        let list = match interest {
            Interest::Read => &mut waiters.read,
            Interest::Write => &mut waiters.write,
        };
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
        Ok(())
    }

    /// Drops the registration of a descriptor that is about to be closed, so a later descriptor
    /// with the same number starts afresh.
    pub(crate) fn forget_fd(&mut self, fd: RawFd) {
        if let Some(waiters) = self.registered.remove(&fd) {
            // Closing removes it from the epoll set too, unless the descriptor was duplicated;
            // deleting explicitly covers that case. ENOENT/EBADF here are harmless.
            let _ = sys::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
            waiters
                .read
                .into_iter()
                .chain(waiters.write)
                .for_each(Waker::wake);
        }
    }

    /// Hands a finished pool job back to its future.
    pub(crate) fn deliver_pool_completion(&mut self, done: PoolCompletion) {
        let Some(slot) = self.pool_slots.get_mut(done.slot) else {
            debug_assert!(false, "pool completion for unknown slot {}", done.slot);
            return;
        };
        match slot {
            PoolSlot::Waiting(waker) => {
                let waker = waker.take();
                *slot = PoolSlot::Completed(done.result, done.spec);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            PoolSlot::Abandoned => {
                self.pool_slots.remove(done.slot);
                self.abandoned -= 1;
                // Pool operations create no resources, so the result needs no release.
                drop(done.spec);
            }
            PoolSlot::Completed(..) => debug_assert!(false, "two completions for a pool slot"),
        }
    }

    pub(crate) fn turn(&mut self, block: bool, deadline: Option<Instant>) -> io::Result<()> {
        let now = Instant::now();
        let next_timer = self.timers.keys().next().map(|(at, _)| *at);
        let wake_at = match (next_timer, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout_ms = if !block {
            0
        } else {
            match wake_at {
                None => -1,
                // Round up so that we never wake before the deadline and spin.
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                }
            }
        };
        sys::epoll_wait(self.epfd.as_raw_fd(), &mut self.events, timeout_ms)?;
        for i in 0..self.events.len() {
            let event = self.events[i];
            let (token, flags) = (event.u64, event.events);
            if token == WAKE_TOKEN {
                sys::eventfd_drain(self.shard.wake_fd());
                continue;
            }
            let Some(waiters) = self.registered.get_mut(&(token as RawFd)) else {
                continue;
            };
            let errors = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
            if flags & (libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32 | errors) != 0 {
                waiters.read.drain(..).for_each(Waker::wake);
            }
            if flags & (libc::EPOLLOUT as u32 | errors) != 0 {
                waiters.write.drain(..).for_each(Waker::wake);
            }
        }
        self.fire_timers();
        Ok(())
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            if let Some(waker) = entry.remove() {
                waker.wake();
            }
        }
    }

    pub(crate) fn stats(&self) -> DriverStats {
        DriverStats {
            ops_in_flight: self.pool_slots.len(),
            ops_abandoned: self.abandoned,
            registered_fds: self.registered.len(),
            timers: self.timers.len(),
        }
    }

    /// Pool jobs own their memory, so nothing needs waiting for; their results are discarded
    /// when they come back (or with the shard's queue if the shard is gone by then).
    pub(crate) fn drain_in_flight(&mut self, _limit: Duration) -> usize {
        0
    }
}
