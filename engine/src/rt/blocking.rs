//! A small pool of threads for the system calls a shard must not make itself.
//!
//! Under epoll it runs file I/O, which epoll can't make non-blocking. On both backends it runs
//! the rare metadata calls (creating, renaming, removing files and directories) through
//! [`unblock`]: they can wait on the file system's journal for milliseconds, which on a shard
//! thread would stall every connection and partition it owns. io_uring has opcodes for some of
//! them, but not on every kernel we run on, and these calls are too rare to be worth two paths.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use super::context;

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run blocking jobs in submission order (per thread). Dropping the pool lets the
/// threads finish the jobs already queued, then joins them.
pub(crate) struct BlockingPool {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl BlockingPool {
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let (sender, receiver): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let threads = (0..threads.max(1))
            .map(|i| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("runnel-blocking-{i}"))
                    .spawn(move || {
                        while let Ok(job) = receiver.recv() {
                            job();
                        }
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BlockingPool {
            sender: Some(sender),
            threads,
        })
    }

    pub(crate) fn execute(&self, job: Job) {
        if let Some(sender) = &self.sender {
            // The receivers live as long as the pool, so sending can't fail while we hold it.
            let _ = sender.send(job);
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.sender.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Runs `f` on the current shard's blocking pool; the future completes with its result.
///
/// The job is queued when the future is first polled. Once queued it runs to the end even if
/// the future is dropped (a half-done `rename` can't be taken back); its result is then
/// discarded. A panic in `f` is raised again on the shard, where the caller would have seen it.
///
/// # Panics
/// When polled off a shard thread.
pub(crate) fn unblock<T, F>(f: F) -> Unblock<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    Unblock {
        job: Some(f),
        slot: Arc::new(Mutex::new(Slot {
            result: None,
            waker: None,
        })),
    }
}

/// Where a pool job leaves its result for the shard.
struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// The future returned by [`unblock`].
pub(crate) struct Unblock<T, F> {
    /// The job, until it is handed to the pool.
    job: Option<F>,
    slot: Arc<Mutex<Slot<T>>>,
}

// Nothing is pinned in place: the job is moved out whole and the slot is behind an Arc.
impl<T, F> Unpin for Unblock<T, F> {}

impl<T, F> Future for Unblock<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(job) = self.job.take() {
            self.slot.lock().expect("never poisoned").waker = Some(cx.waker().clone());
            let slot = self.slot.clone();
            context::with(|ctx| {
                ctx.pool.execute(Box::new(move || {
                    let result = panic::catch_unwind(AssertUnwindSafe(job));
                    let waker = {
                        let mut slot = slot.lock().expect("never poisoned");
                        slot.result = Some(result);
                        slot.waker.take()
                    };
                    // Wakes the task through the shard's remote queue (and unparks the shard).
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }));
            });
            return Poll::Pending;
        }
        let mut slot = self.slot.lock().expect("never poisoned");
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(panic)) => {
                drop(slot);
                panic::resume_unwind(panic)
            }
            None => {
                super::driver::store_waker(&mut slot.waker, cx.waker());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::rt::{self, BackendChoice, Runtime, RuntimeConfig};

    fn on_shard<T: Send + 'static, Fut: Future<Output = T> + 'static>(
        backend: BackendChoice,
        work: impl FnOnce() -> Fut + Send + 'static,
    ) -> T {
        let config = RuntimeConfig {
            cores: 1,
            backend,
            pin_threads: false,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(config, |_| async {}).expect("runtime starts");
        let output = runtime
            .handle()
            .run_on(0, work)
            .expect("shard runs the work");
        runtime.join().expect("runtime stops");
        output
    }

    /// The backends under test (`RUNNEL_TEST_BACKENDS`, as in the integration tests).
    fn backends() -> Vec<BackendChoice> {
        let enabled = |name: &str| match std::env::var("RUNNEL_TEST_BACKENDS") {
            Ok(list) => list.split(',').any(|b| b.trim() == name),
            Err(_) => true,
        };
        [
            ("uring", BackendChoice::Uring),
            ("epoll", BackendChoice::Epoll),
        ]
        .into_iter()
        .filter(|(name, _)| enabled(name))
        .map(|(_, backend)| backend)
        .collect()
    }

    #[test]
    fn jobs_run_off_the_shard_which_keeps_running() {
        for backend in backends() {
            let (thread, ticks) = on_shard(backend, || async {
                let ticker = rt::spawn_local(async {
                    let mut ticks = 0;
                    let until = Instant::now() + Duration::from_millis(150);
                    while Instant::now() < until {
                        rt::sleep(Duration::from_millis(5)).await;
                        ticks += 1;
                    }
                    ticks
                });
                let thread = unblock(|| {
                    thread::sleep(Duration::from_millis(200));
                    thread::current().name().map(str::to_owned)
                })
                .await;
                (thread, ticker.await)
            });
            let thread = thread.unwrap_or_default();
            assert!(
                thread.starts_with("runnel-blocking-"),
                "{backend}: {thread}"
            );
            assert!(ticks > 5, "{backend}: the shard stalled ({ticks} ticks)");
        }
    }
}
