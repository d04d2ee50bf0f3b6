//! The io_uring backend: one ring per shard.
//!
//! Every operation gets a slot whose index is its `user_data`. The slot holds the waiting task's
//! waker, then the CQE result until the future collects it. A future dropped mid-flight moves its
//! spec (and so its buffers) into the slot and asks the kernel to cancel; the slot is freed only
//! when the CQE arrives, so no memory is released while the kernel may write it and no slot
//! index is reused before its completion.

use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

use super::driver::{store_waker, DriverStats, OpState};
use super::op::{cqe_result, EpollPlan, Interest, OpSpec, Orphan};

/// `user_data` of cancellation requests, whose own completions carry no information we need.
const CANCEL_TOKEN: u64 = u64::MAX;
/// `user_data` of the standing read on the shard's wake eventfd.
const WAKE_TOKEN: u64 = u64::MAX - 1;

enum Slot {
    /// In flight; the task to wake on completion.
    Waiting(Option<Waker>),
    /// The CQE arrived; its result waits for the future.
    Completed(i32),
    /// The future was dropped; the spec stays here until the CQE arrives. `polling`: the slot
    /// is a readiness poll, whose result is an event mask, not the operation's result.
    Abandoned {
        spec: Box<dyn Orphan>,
        polling: bool,
    },
}

/// The opcodes the runtime relies on; start-up refuses a ring that lacks one.
pub(crate) const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::Fallocate::CODE, "FALLOCATE"),
    (opcode::Splice::CODE, "SPLICE"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
];

/// Builds a ring with the cheapest setup flags this kernel accepts.
///
/// SINGLE_ISSUER + DEFER_TASKRUN (6.1+) let the kernel skip cross-thread completion machinery
/// since only the shard's own thread ever submits; COOP_TASKRUN (5.19+) is the next best; a
/// plain ring works everywhere io_uring does. TASKRUN_FLAG makes the kernel flag pending
/// completion work in the SQ ring, so a busy shard knows when a non-blocking enter is needed
/// (deferred completions only run inside io_uring_enter with GETEVENTS).
pub(crate) fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq_entries = entries.saturating_mul(4);
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag();
        },
        |b| {
            b.setup_coop_taskrun().setup_taskrun_flag();
        },
        |_| {},
    ];
    let mut last_err = None;
    for configure in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries).setup_clamp();
        configure(&mut builder);
        match builder.build(entries) {
            Ok(ring) => return Ok(ring),
            // EINVAL: a flag this kernel does not know; try the next, simpler setup.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Names the required opcodes (and features) `ring` does not support.
pub(crate) fn missing_opcodes(ring: &IoUring) -> io::Result<Vec<&'static str>> {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let mut missing: Vec<&'static str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    // Waiting with a timeout (shutdown deadlines, draining) needs io_uring_enter's extended
    // argument, Linux 5.11+.
    if !ring.params().is_feature_ext_arg() {
        missing.push("EXT_ARG");
    }
    Ok(missing)
}

pub(crate) struct UringDriver {
    ring: IoUring,
    slots: Slab<Slot>,
    abandoned: usize,
    wake_fd: RawFd,
    /// Target of the standing eventfd read; boxed so its address is stable.
    wake_buf: Box<u64>,
    wake_armed: bool,
}

impl UringDriver {
    /// `wake_fd` is the shard's eventfd, owned by the shard and outliving this driver.
    pub(crate) fn new(ring: IoUring, wake_fd: RawFd) -> Self {
        UringDriver {
            ring,
            slots: Slab::with_capacity(256),
            abandoned: 0,
            wake_fd,
            wake_buf: Box::new(0),
            wake_armed: false,
        }
    }

    pub(crate) fn poll_op<S: OpSpec>(
        &mut self,
        state: &mut OpState<S>,
        cx: &mut Context<'_>,
    ) -> Poll<S::Output> {
        loop {
            match std::mem::replace(state, OpState::Done) {
                OpState::Unsubmitted(mut spec) => {
                    let entry = spec.uring_entry();
                    let slot = self.submit(entry, cx.waker());
                    *state = OpState::Uring {
                        slot,
                        spec,
                        polling: false,
                    };
                    return Poll::Pending;
                }
                OpState::Uring {
                    slot,
                    spec,
                    polling,
                } => match &mut self.slots[slot] {
                    Slot::Completed(res) => {
                        let res = *res;
                        self.slots.remove(slot);
                        if polling {
                            if res < 0 {
                                return Poll::Ready(spec.complete(cqe_result(res)));
                            }
                            // Ready now: submit the operation itself again.
                            *state = OpState::Unsubmitted(spec);
                            continue;
                        }
                        if res == -libc::EAGAIN && spec.retry_on_readiness() {
                            if let EpollPlan::Readiness { fd, interest } = spec.epoll_plan() {
                                let mask = match interest {
                                    Interest::Read => libc::POLLIN | libc::POLLRDHUP,
                                    Interest::Write => libc::POLLOUT,
                                };
                                let entry =
                                    opcode::PollAdd::new(types::Fd(fd), mask as u32).build();
                                let slot = self.submit(entry, cx.waker());
                                *state = OpState::Uring {
                                    slot,
                                    spec,
                                    polling: true,
                                };
                                return Poll::Pending;
                            }
                        }
                        return Poll::Ready(spec.complete(cqe_result(res)));
                    }
                    Slot::Waiting(waker) => {
                        store_waker(waker, cx.waker());
                        *state = OpState::Uring {
                            slot,
                            spec,
                            polling,
                        };
                        return Poll::Pending;
                    }
                    Slot::Abandoned { .. } => {
                        unreachable!("a live future's slot is never abandoned")
                    }
                },
                OpState::Pool { .. } | OpState::Timer { .. } => {
                    unreachable!("epoll-backend state on the io_uring driver")
                }
                OpState::Done => panic!("I/O operation polled after completion"),
            }
        }
    }

    /// Queues `entry` under a new slot that wakes `waker` on completion.
    fn submit(&mut self, entry: squeue::Entry, waker: &Waker) -> usize {
        let slot = self.slots.insert(Slot::Waiting(Some(waker.clone())));
        // SAFETY: entries built by `OpSpec::uring_entry` point into their spec's heap memory,
        // which the op's state keeps alive (and `abandon_op` keeps alive after a drop) until
        // the CQE for `slot` arrives; poll entries carry no pointers.
        unsafe { self.push(&entry.user_data(slot as u64)) };
        slot
    }

    /// Takes over an operation whose future was dropped while in flight.
    pub(crate) fn abandon_op<S: OpSpec>(&mut self, state: OpState<S>) {
        let OpState::Uring {
            slot,
            spec,
            polling,
        } = state
        else {
            return;
        };
        match std::mem::replace(&mut self.slots[slot], Slot::Completed(0)) {
            Slot::Completed(res) => {
                self.slots.remove(slot);
                // The result arrived but was never collected: release what it created. A poll's
                // result is an event mask; the operation itself never ran again.
                if !polling {
                    spec.orphaned(cqe_result(res));
                }
            }
            Slot::Waiting(_) => {
                self.slots[slot] = Slot::Abandoned { spec, polling };
                self.abandoned += 1;
                let cancel = opcode::AsyncCancel::new(slot as u64)
                    .build()
                    .user_data(CANCEL_TOKEN);
                // SAFETY: a cancel request carries no pointers.
                unsafe { self.push(&cancel) };
            }
            Slot::Abandoned { .. } => unreachable!("an operation is abandoned once"),
        }
    }

    /// Queues an SQE, flushing the submission queue to the kernel when it is full.
    ///
    /// # Safety
    /// Memory the entry points to must stay valid until its completion is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: forwarded from the caller.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel. EBUSY means the completion queue is
            // backed up; reaping makes room.
            if let Err(e) = self.ring.submit() {
                if !is_transient(&e) {
                    panic!("io_uring submit failed: {e}");
                }
                self.reap();
            }
        }
    }

    fn arm_wake_read(&mut self) {
        if self.wake_armed {
            return;
        }
        let ptr = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(types::Fd(self.wake_fd), ptr, 8)
            .build()
            .user_data(WAKE_TOKEN);
        // SAFETY: `wake_buf` is boxed and owned by the driver, which lives until its ring is
        // closed; the eventfd outlives the driver.
        unsafe { self.push(&entry) };
        self.wake_armed = true;
    }

    pub(crate) fn turn(&mut self, block: bool, deadline: Option<Instant>) -> io::Result<()> {
        self.arm_wake_read();
        let result = if block {
            match deadline {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let ts = types::Timespec::from(wait);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                None => self.ring.submit_and_wait(1),
            }
        } else if self.ring.submission().is_empty() && !self.ring.submission().taskrun() {
            // Nothing to submit and no completion work pending in the kernel: reaping the
            // completion queue needs no system call.
            Ok(0)
        } else {
            self.ring.submit()
        };
        match result {
            Ok(_) => {}
            // ETIME: the deadline passed; EINTR: a signal; EBUSY/EAGAIN: reap and come back.
            Err(e) if is_transient(&e) || e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) => return Err(e),
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        // Completions are collected first so that no ring borrow is held while waking tasks.
        let cq = self.ring.completion();
        let completions: Vec<(u64, i32)> = cq.map(|cqe| (cqe.user_data(), cqe.result())).collect();
        for (user_data, res) in completions {
            match user_data {
                CANCEL_TOKEN => {}
                WAKE_TOKEN => self.wake_armed = false,
                slot => self.complete_slot(slot as usize, res),
            }
        }
    }

    fn complete_slot(&mut self, slot: usize, res: i32) {
        let Some(entry) = self.slots.get_mut(slot) else {
            debug_assert!(false, "completion for unknown slot {slot}");
            return;
        };
        match std::mem::replace(entry, Slot::Completed(res)) {
            Slot::Waiting(waker) => {
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Slot::Abandoned { spec, polling } => {
                self.slots.remove(slot);
                self.abandoned -= 1;
                if !polling {
                    spec.finish(cqe_result(res));
                }
            }
            Slot::Completed(_) => debug_assert!(false, "two completions for slot {slot}"),
        }
    }

    pub(crate) fn stats(&self) -> DriverStats {
        DriverStats {
            ops_in_flight: self.slots.len(),
            ops_abandoned: self.abandoned,
            registered_fds: 0,
            timers: 0,
        }
    }

    pub(crate) fn drain_in_flight(&mut self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while self.abandoned > 0 && Instant::now() < deadline {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            let ts = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = self.ring.submitter().submit_with_args(1, &args) {
                if !is_transient(&e) && e.raw_os_error() != Some(libc::ETIME) {
                    break;
                }
            }
            self.reap();
        }
        self.abandoned
    }

    /// Called when the shard stops: anything still abandoned is leaked rather than freed, since
    /// the kernel may still write into it while it tears the ring down.
    pub(crate) fn leak_outstanding(&mut self) {
        for slot in self.slots.drain() {
            std::mem::forget(slot);
        }
        if self.wake_armed {
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        self.leak_outstanding();
    }
}
