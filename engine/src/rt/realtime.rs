//! Real-time shards ([`RuntimeConfig::realtime_priority`](super::RuntimeConfig)): a shard runs
//! under `SCHED_FIFO` while it and its io_uring workers leave room on their core, and under
//! normal scheduling while they don't.
//!
//! Why real-time at all: under normal scheduling any other process on the core (on a shared
//! VM, the host's agent at nice -10) preempts the shard mid-request for milliseconds; under
//! `SCHED_FIFO` it waits for the shard. io_uring's workers must share the priority (they start
//! with the shard's policy, and keep it): measured, an end-to-end p99.9 of 1.9-2.3 ms with
//! them real-time against 5.1-5.6 ms with only the shard real-time (bench/RESULTS.md).
//!
//! Why it must be given up: the kernel lets real-time threads use only `sched_rt_runtime_us` of
//! each second on a core (95%) and then stops them for the rest of the second. A saturated
//! shard hits that: measured, round trips of seconds under 100 clients and the maximum
//! sustainable rate down from 490k to 280k msg/s. A saturated shard gains nothing from the
//! priority (its latency is its queue), so it steps down until it has room again.
//!
//! The workers are found by name: the kernel calls them `iou-wrk-<tid>` after the thread that
//! started them, by its id in the initial PID namespace. Inside another PID namespace (a
//! container without the host's) a shard's own id differs from that and it could not step its
//! workers down, so real-time shards are refused there ([`workers_identifiable`]).

use std::time::{Duration, Instant};

use super::sys;

/// How often the shard measures how busy it is.
const WINDOW: Duration = Duration::from_millis(100);
/// Busier than this share of a core (percent) over a window: normal scheduling. Below the
/// kernel's 95% with room for error; a shard serving one partition's 10k msg/s end to end
/// (a request each way per message) is already 65% busy on a 2-vCPU VM.
const DEMOTE_ABOVE_PERCENT: u128 = 90;
/// Less busy than this while demoted: real-time again.
const PROMOTE_BELOW_PERCENT: u128 = 80;

/// Whether a shard can find its io_uring workers by name: only in the initial PID namespace.
/// Real-time shards are refused otherwise, with the returned reason.
pub fn workers_identifiable() -> Result<(), String> {
    // PROC_PID_INIT_INO: the initial PID namespace's fixed inode number.
    const INITIAL_PID_NAMESPACE: &str = "pid:[4026531836]";
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(link) if link.as_os_str() == INITIAL_PID_NAMESPACE => Ok(()),
        Ok(link) => Err(format!(
            "real-time shards need the host's PID namespace, and this process is in {}: \
             io_uring names its worker threads by host thread ids, which a shard must match to \
             step its workers down with it (run the container with the host's PID namespace, \
             or leave the priority off)",
            link.display()
        )),
        Err(e) => Err(format!(
            "real-time shards need /proc/self/ns/pid to find their io_uring workers: {e}"
        )),
    }
}

/// The policy, with time and CPU use given: whether the shard should be real-time.
#[derive(Debug)]
pub(crate) struct Busyness {
    realtime: bool,
    window_start: Instant,
}

impl Busyness {
    /// A shard that starts real-time at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Busyness {
            realtime: true,
            window_start: now,
        }
    }

    /// A window has passed: measure the CPU used since the last observation and
    /// [`observe`](Self::observe) it.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now.duration_since(self.window_start) >= WINDOW
    }

    /// `busy`: CPU time the shard and its workers used since the last observation. Returns the
    /// new mode (true: real-time) when it changes.
    pub(crate) fn observe(&mut self, now: Instant, busy: Duration) -> Option<bool> {
        let elapsed = now.duration_since(self.window_start);
        self.window_start = now;
        if elapsed.is_zero() {
            return None;
        }
        let (busy, elapsed) = (busy.as_nanos() * 100, elapsed.as_nanos());
        let realtime = if self.realtime {
            busy <= elapsed * DEMOTE_ABOVE_PERCENT
        } else {
            busy < elapsed * PROMOTE_BELOW_PERCENT
        };
        (realtime != self.realtime).then(|| {
            self.realtime = realtime;
            realtime
        })
    }

    /// The switch [`observe`](Self::observe) asked for could not be made: the shard is still
    /// in its old mode, and the next window decides again.
    pub(crate) fn switch_failed(&mut self) {
        self.realtime = !self.realtime;
    }
}

/// CPU time used by a shard thread and the io_uring workers it started. Workers may run on
/// other cores; counting them against the shard's one core makes it step down earlier, never
/// later.
#[derive(Debug)]
struct CpuMeter {
    shard_tid: libc::pid_t,
    /// Each thread's CPU time at the last reading.
    last: Vec<(libc::pid_t, Duration)>,
}

impl CpuMeter {
    fn new(shard_tid: libc::pid_t) -> Self {
        let mut meter = CpuMeter {
            shard_tid,
            last: Vec::new(),
        };
        meter.used_since_last();
        meter
    }

    /// The shard's io_uring workers: threads named `iou-wrk-<tid of the thread that
    /// started them>`.
    fn workers(&self) -> Vec<libc::pid_t> {
        let name = format!("iou-wrk-{}", self.shard_tid);
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|task| {
                let task = task.ok()?;
                let tid = task.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                (comm.trim_end() == name).then_some(tid)
            })
            .collect()
    }

    /// The workers the last [`used_since_last`](Self::used_since_last) measured.
    fn measured_workers(&self) -> impl Iterator<Item = libc::pid_t> + '_ {
        let shard = self.shard_tid;
        self.last
            .iter()
            .map(|&(tid, _)| tid)
            .filter(move |&tid| tid != shard)
    }

    /// CPU time the shard and its workers used since the last call. A worker that exited in
    /// between takes its last share with it (at most one window's worth).
    fn used_since_last(&mut self) -> Duration {
        let mut now = Vec::with_capacity(self.last.len());
        let mut used = Duration::ZERO;
        for tid in std::iter::once(self.shard_tid).chain(self.workers()) {
            let Ok(cpu) = sys::thread_cpu_time(tid) else {
                continue; // exited since it was listed
            };
            let before = self
                .last
                .iter()
                .find(|(t, _)| *t == tid)
                .map_or(Duration::ZERO, |(_, c)| *c);
            used += cpu.saturating_sub(before);
            now.push((tid, cpu));
        }
        self.last = now;
        used
    }
}

/// A shard thread under a real-time priority, stepping down while it is busy.
#[derive(Debug)]
pub(crate) struct RealtimeShard {
    priority: i32,
    busyness: Busyness,
    meter: CpuMeter,
}

impl RealtimeShard {
    /// For the calling thread, already under `SCHED_FIFO` at `priority`.
    pub(crate) fn new(priority: u8, now: Instant) -> Self {
        RealtimeShard {
            priority: priority.into(),
            busyness: Busyness::new(now),
            meter: CpuMeter::new(sys::gettid()),
        }
    }

    /// Called from the shard's loop: once a window, measures and switches if it must.
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.busyness.due(now) {
            return;
        }
        let used = self.meter.used_since_last();
        if let Some(realtime) = self.busyness.observe(now, used) {
            tracing::debug!(realtime, ?used, "shard scheduling changes");
            if let Err(e) = sys::set_thread_scheduling(0, realtime.then_some(self.priority)) {
                tracing::warn!(error = %e, realtime, "could not change a shard's scheduling");
                self.busyness.switch_failed();
                return;
            }
            self.apply_to_workers(realtime);
        }
    }

    /// Moves the shard's workers, as the measurement just listed them, where the shard just
    /// went. One that fails (or started since) keeps its old policy until the next switch (a
    /// worker is short-lived: its successors start with the shard's policy).
    fn apply_to_workers(&self, realtime: bool) {
        for worker in self.meter.measured_workers() {
            match sys::set_thread_scheduling(worker, realtime.then_some(self.priority)) {
                // Exited since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    tracing::warn!(error = %e, worker, realtime, "could not change an io_uring worker's scheduling")
                }
                Ok(()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_shard_steps_down_and_returns_once_it_has_room() {
        let start = Instant::now();
        let mut b = Busyness::new(start);
        let at = |ms| start + Duration::from_millis(ms);
        assert!(!b.due(at(50)));
        assert!(b.due(at(100)));
        assert_eq!(
            b.observe(at(100), Duration::from_millis(90)),
            None,
            "90%: stays"
        );
        assert_eq!(b.observe(at(200), Duration::from_millis(91)), Some(false));
        // Hysteresis: between the two thresholds it stays where it is.
        assert_eq!(b.observe(at(300), Duration::from_millis(85)), None);
        assert_eq!(
            b.observe(at(400), Duration::from_millis(80)),
            None,
            "80% is not below"
        );
        assert_eq!(b.observe(at(500), Duration::from_millis(79)), Some(true));
        assert_eq!(b.observe(at(600), Duration::from_millis(85)), None);
        // A late observation counts over the whole time since the last one.
        assert_eq!(
            b.observe(at(1000), Duration::from_millis(340)),
            None,
            "85 ms per 100"
        );
        assert_eq!(
            b.observe(at(1000), Duration::from_millis(10)),
            None,
            "no time: no verdict"
        );
    }

    #[test]
    fn a_failed_switch_is_decided_again() {
        let start = Instant::now();
        let mut b = Busyness::new(start);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(b.observe(at(100), Duration::from_millis(95)), Some(false));
        b.switch_failed();
        assert_eq!(
            b.observe(at(200), Duration::from_millis(95)),
            Some(false),
            "asked again"
        );
    }

    #[test]
    fn the_meter_counts_this_threads_cpu() {
        let tid = sys::gettid();
        let mut meter = CpuMeter::new(tid);
        // Spin until the thread's own clock says 20 ms (wall time says nothing on a busy host).
        let start = sys::thread_cpu_time(tid).unwrap();
        while sys::thread_cpu_time(tid).unwrap() - start < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let used = meter.used_since_last();
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(
            meter.used_since_last() < Duration::from_millis(20),
            "counted once"
        );
    }

    #[test]
    fn outside_the_initial_pid_namespace_the_reason_is_named() {
        // The test machines run tests outside containers; elsewhere this names the reason.
        if let Err(reason) = workers_identifiable() {
            assert!(
                reason.contains("PID namespace") || reason.contains("ns/pid"),
                "{reason}"
            );
        }
    }
}
