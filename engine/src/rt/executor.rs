//! The single-threaded task executor each shard runs.
//!
//! Tasks are `!Send` futures stored in a slab. Wakers are thread-safe (a reply from another
//! shard may wake a task): a wake on the owning shard pushes onto the local ready queue; a wake
//! from elsewhere goes through the shard's remote-wake queue and unparks it. A `queued` flag
//! keeps a task in the ready queue at most once.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use super::context;
use super::shard::ShardShared;

/// Identifies a task; the generation tells a reused slot from the task a stale wake was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskKey {
    index: usize,
    generation: u64,
}

pub(crate) struct TaskWaker {
    key: TaskKey,
    shard: Arc<ShardShared>,
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let key = self.key;
        let local = context::try_with(|ctx| {
            if Arc::ptr_eq(&ctx.shared, &self.shard) {
                ctx.executor.ready.borrow_mut().push_back(key);
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            self.shard.wake_remote(key);
        }
    }
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

struct Task {
    generation: u64,
    /// `None` while the task is being polled (its future is out of the slab then).
    future: Option<LocalFuture>,
    waker: Waker,
    wake_state: Arc<TaskWaker>,
}

pub(crate) struct Executor {
    tasks: RefCell<Slab<Task>>,
    ready: RefCell<VecDeque<TaskKey>>,
    next_generation: Cell<u64>,
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            tasks: RefCell::new(Slab::with_capacity(256)),
            ready: RefCell::new(VecDeque::with_capacity(256)),
            next_generation: Cell::new(0),
        }
    }

    pub(crate) fn spawn(&self, shard: &Arc<ShardShared>, future: LocalFuture) {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = TaskKey {
            index: entry.key(),
            generation,
        };
        let wake_state = Arc::new(TaskWaker {
            key,
            shard: shard.clone(),
            queued: AtomicBool::new(true),
        });
        let waker = Waker::from(wake_state.clone());
        entry.insert(Task {
            generation,
            future: Some(future),
            waker,
            wake_state,
        });
        self.ready.borrow_mut().push_back(key);
    }

    /// Queues a task woken from another thread (its `queued` flag is already set).
    pub(crate) fn schedule(&self, key: TaskKey) {
        self.ready.borrow_mut().push_back(key);
    }

    /// Polls up to `budget` ready tasks; returns how many were polled.
    pub(crate) fn run_ready(&self, budget: usize) -> usize {
        let mut polled = 0;
        while polled < budget {
            let Some(key) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            let taken = {
                let mut tasks = self.tasks.borrow_mut();
                match tasks.get_mut(key.index) {
                    Some(task) if task.generation == key.generation => {
                        task.wake_state.queued.store(false, Ordering::Release);
                        task.future.take().map(|f| (f, task.waker.clone()))
                    }
                    // A stale wake for a finished task.
                    _ => None,
                }
            };
            let Some((mut future, waker)) = taken else {
                continue;
            };
            polled += 1;
            let done = future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready();
            let mut tasks = self.tasks.borrow_mut();
            if done {
                let task = tasks.remove(key.index);
                drop(tasks);
                // The task's remaining state (the finished future) drops outside the borrow.
                drop(task);
                drop(future);
            } else if let Some(task) = tasks.get_mut(key.index) {
                task.future = Some(future);
            }
        }
        polled
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Drops every task (cancelling their operations); used when the shard stops.
    pub(crate) fn drop_all(&self) {
        loop {
            // Dropping a task may spawn or drop others, so take them out in rounds and drop
            // them with no borrow held.
            let tasks: Vec<Task> = self.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            drop(tasks);
        }
        self.ready.borrow_mut().clear();
    }
}

/// Spawns a task on the current shard. It runs until it completes, whether or not the handle is
/// kept; awaiting the handle yields its output.
///
/// # Panics
/// When called outside a shard thread.
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(RefCell::new(JoinState {
        output: None,
        waker: None,
    }));
    let task_state = state.clone();
    let task = async move {
        let output = future.await;
        let waker = {
            let mut state = task_state.borrow_mut();
            state.output = Some(output);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    };
    context::with(|ctx| ctx.executor.spawn(&ctx.shared, Box::pin(task)));
    JoinHandle { state }
}

struct JoinState<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// Awaits a task spawned with [`spawn_local`]. Dropping it detaches the task.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().output.is_some()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        match state.output.take() {
            Some(output) => Poll::Ready(output),
            None => {
                super::driver::store_waker(&mut state.waker, cx.waker());
                Poll::Pending
            }
        }
    }
}

/// Yields once to let other ready tasks and I/O run.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
