//! Cross-shard messaging: bounded mailboxes per shard pair and `submit_to`.
//!
//! A message is a closure run on the target shard; `submit_to` wraps the caller's closure so
//! that it spawns the future it returns and sends the output back through a one-shot reply.
//! Each ordered pair of shards has its own bounded queue, so a sender that fills it waits
//! (back-pressure) without blocking its thread: its task parks until the receiver drains the
//! queue and signals "space available". Threads outside the runtime use an unbounded injection
//! queue per shard.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::{ArrayQueue, SegQueue};

use super::context;
use super::executor::spawn_local;
use super::shard::{ShardId, ShardShared};

type Message = Box<dyn FnOnce() + Send>;

/// The target shard has stopped (or stopped before running the work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard stopped before completing the submitted work")]
pub struct ShardStopped;

struct Pair {
    queue: ArrayQueue<Message>,
    /// The sender has tasks waiting for room in `queue`.
    sender_waiting: AtomicBool,
}

impl Pair {
    /// Wakes the sending shard's blocked tasks if it has any waiting on this pair.
    fn wake_waiting_sender(&self, sender: &ShardShared) {
        if self.sender_waiting.swap(false, Ordering::SeqCst) {
            sender.space_available.store(true, Ordering::Release);
            sender.unpark();
        }
    }
}

pub(crate) struct Mailboxes {
    shards: usize,
    /// `pairs[from * shards + to]`.
    pairs: Vec<Pair>,
    /// Messages from threads outside the runtime, per target shard.
    injectors: Vec<SegQueue<Message>>,
}

enum PostError {
    Full(Message),
    Stopped,
}

impl Mailboxes {
    pub(crate) fn new(shards: usize, capacity: usize) -> Self {
        Mailboxes {
            shards,
            pairs: (0..shards * shards)
                .map(|_| Pair {
                    queue: ArrayQueue::new(capacity.max(1)),
                    sender_waiting: AtomicBool::new(false),
                })
                .collect(),
            injectors: (0..shards).map(|_| SegQueue::new()).collect(),
        }
    }

    fn pair(&self, from: ShardId, to: ShardId) -> &Pair {
        &self.pairs[from * self.shards + to]
    }

    /// Posts `message` from shard `from` (or from outside the runtime) to shard `to`.
    fn post(
        &self,
        from: Option<ShardId>,
        target: &ShardShared,
        message: Message,
    ) -> Result<(), PostError> {
        if target.stopped.load(Ordering::SeqCst) {
            return Err(PostError::Stopped);
        }
        match from {
            Some(from) => self
                .pair(from, target.id)
                .queue
                .push(message)
                .map_err(PostError::Full)?,
            None => self.injectors[target.id].push(message),
        }
        // If the target stopped while we posted, its final discard may have missed our message;
        // discard it ourselves so that the reply reports `ShardStopped` instead of hanging.
        fence(Ordering::SeqCst);
        if target.stopped.load(Ordering::SeqCst) {
            self.discard_inbound(target.id);
        } else {
            target.unpark();
        }
        Ok(())
    }

    /// Runs up to `batch` messages from each sender to shard `me`.
    pub(crate) fn receive(&self, me: ShardId, batch: usize, shards: &[Arc<ShardShared>]) {
        for (from, sender) in shards.iter().enumerate() {
            let pair = self.pair(from, me);
            let mut taken = 0;
            while taken < batch {
                let Some(message) = pair.queue.pop() else {
                    break;
                };
                taken += 1;
                message();
            }
            if taken > 0 {
                pair.wake_waiting_sender(sender);
            }
        }
        for _ in 0..batch {
            let Some(message) = self.injectors[me].pop() else {
                break;
            };
            message();
        }
    }

    pub(crate) fn has_pending(&self, me: ShardId) -> bool {
        (0..self.shards).any(|from| !self.pair(from, me).queue.is_empty())
            || !self.injectors[me].is_empty()
    }

    /// Drops every message queued for shard `me` (which has stopped); their reply senders drop
    /// with them and wake the waiting callers with `ShardStopped`.
    pub(crate) fn discard_inbound(&self, me: ShardId) {
        for from in 0..self.shards {
            while self.pair(from, me).queue.pop().is_some() {}
        }
        while self.injectors[me].pop().is_some() {}
    }

    /// Called once shard `me` has stopped: wakes the tasks still waiting for room in a mailbox
    /// to it, so that their retry reports `ShardStopped` instead of waiting forever.
    pub(crate) fn release_waiting_senders(&self, me: ShardId, shards: &[Arc<ShardShared>]) {
        for (from, sender) in shards.iter().enumerate() {
            self.pair(from, me).wake_waiting_sender(sender);
        }
    }
}

/// Runs `work` on shard `target` and resolves to its output.
///
/// `work` is sent to the target (so it must be `Send`), called there, and the future it returns
/// runs as a task on the target shard (so that future need not be `Send`). The output comes back
/// to the caller. When the mailbox to the target is full, the returned future waits for room.
///
/// Resolves to `Err(ShardStopped)` if the target shard stops before finishing the work.
///
/// # Panics
/// When polled outside a shard thread (use [`RuntimeHandle::submit_to`](super::RuntimeHandle)
/// from other threads), or when `target` is not a shard of this runtime.
pub fn submit_to<F, Fut>(target: ShardId, work: F) -> SubmitTo<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let (sender, receiver) = reply_channel();
    SubmitTo {
        message: Some(wrap(work, sender)),
        target,
        from_outside: None,
        receiver,
    }
}

/// Runs `work` on shard `target` and resolves to its output: in place when `target` is this
/// shard (no message, no task), else through [`submit_to`].
pub async fn run_on<F, Fut>(target: ShardId, work: F) -> Result<Fut::Output, ShardStopped>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    if target == super::shard_id() {
        Ok(work().await)
    } else {
        submit_to(target, work).await
    }
}

fn wrap<F, Fut>(work: F, sender: ReplySender<Fut::Output>) -> Message
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    Box::new(move || {
        let future = work();
        // Detached: the output travels through the reply channel, not the join handle.
        drop(spawn_local(async move { sender.send(future.await) }));
    })
}

/// The future returned by [`submit_to`].
#[must_use = "the work is only sent when the future is polled"]
pub struct SubmitTo<T> {
    message: Option<Message>,
    target: ShardId,
    /// Set when submitting from outside the runtime.
    from_outside: Option<Arc<super::runtime::RuntimeShared>>,
    receiver: ReplyReceiver<T>,
}

impl<T> fmt::Debug for SubmitTo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitTo")
            .field("target", &self.target)
            .field("sent", &self.message.is_none())
            .finish()
    }
}

impl<T> SubmitTo<T> {
    pub(crate) fn from_outside<F, Fut>(
        runtime: Arc<super::runtime::RuntimeShared>,
        target: ShardId,
        work: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (sender, receiver) = reply_channel();
        SubmitTo {
            message: Some(wrap(work, sender)),
            target,
            from_outside: Some(runtime),
            receiver,
        }
    }

    /// Completes once the work is in the target's mailbox: at once, unless the mailbox is full.
    /// Work one shard posts to another runs there in the order it was posted, so a caller that
    /// awaits this before submitting its next piece of work orders the two without waiting for
    /// either to run. Await the `SubmitTo` itself afterwards for the output.
    pub fn posted(&mut self) -> Posted<'_, T> {
        Posted { submit: self }
    }

    fn try_send(&mut self, cx: &mut Context<'_>) -> Result<(), ShardStopped> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        if let Some(runtime) = &self.from_outside {
            let target = runtime
                .shards
                .get(self.target)
                .expect("submit_to: no such shard");
            return match runtime.mailboxes.post(None, target, message) {
                Ok(()) => Ok(()),
                Err(PostError::Stopped) => Err(ShardStopped),
                Err(PostError::Full(_)) => unreachable!("injection queues are unbounded"),
            };
        }
        context::with(|ctx| {
            let runtime = &ctx.runtime;
            let target = runtime
                .shards
                .get(self.target)
                .expect("submit_to: no such shard");
            let from = ctx.shared.id;
            match runtime.mailboxes.post(Some(from), target, message) {
                Ok(()) => Ok(()),
                Err(PostError::Stopped) => Err(ShardStopped),
                Err(PostError::Full(message)) => {
                    // Announce that we wait, then try once more: the receiver may have drained
                    // the queue before it could see our flag.
                    let pair = runtime.mailboxes.pair(from, self.target);
                    pair.sender_waiting.store(true, Ordering::SeqCst);
                    fence(Ordering::SeqCst);
                    match runtime.mailboxes.post(Some(from), target, message) {
                        Ok(()) => Ok(()),
                        Err(PostError::Stopped) => Err(ShardStopped),
                        Err(PostError::Full(message)) => {
                            self.message = Some(message);
                            ctx.blocked_senders.borrow_mut().push(cx.waker().clone());
                            Ok(())
                        }
                    }
                }
            }
        })
    }
}

impl<T> Future for SubmitTo<T> {
    type Output = Result<T, ShardStopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.try_send(cx)?;
        if self.message.is_some() {
            return Poll::Pending;
        }
        Pin::new(&mut self.receiver).poll(cx)
    }
}

/// The future returned by [`SubmitTo::posted`].
#[derive(Debug)]
#[must_use = "the work is only sent when the future is polled"]
pub struct Posted<'a, T> {
    submit: &'a mut SubmitTo<T>,
}

impl<T> Future for Posted<'_, T> {
    type Output = Result<(), ShardStopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.submit.try_send(cx)?;
        if self.submit.message.is_some() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

// The one-shot reply. A Mutex is fine here: it is touched once by each side per call.
enum ReplyState<T> {
    Waiting(Option<Waker>),
    Ready(T),
    Closed,
    Taken,
}

struct ReplySender<T> {
    inner: Arc<Mutex<ReplyState<T>>>,
}

struct ReplyReceiver<T> {
    inner: Arc<Mutex<ReplyState<T>>>,
}

fn reply_channel<T>() -> (ReplySender<T>, ReplyReceiver<T>) {
    let inner = Arc::new(Mutex::new(ReplyState::Waiting(None)));
    (
        ReplySender {
            inner: inner.clone(),
        },
        ReplyReceiver { inner },
    )
}

impl<T> ReplySender<T> {
    fn finish(&self, state: ReplyState<T>) {
        let previous = {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match &*guard {
                ReplyState::Waiting(_) => std::mem::replace(&mut *guard, state),
                _ => return,
            }
        };
        if let ReplyState::Waiting(Some(waker)) = previous {
            waker.wake();
        }
    }

    fn send(self, value: T) {
        self.finish(ReplyState::Ready(value));
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        self.finish(ReplyState::Closed);
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Result<T, ShardStopped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *guard, ReplyState::Taken) {
            ReplyState::Ready(value) => Poll::Ready(Ok(value)),
            ReplyState::Closed => Poll::Ready(Err(ShardStopped)),
            ReplyState::Waiting(mut waker) => {
                super::driver::store_waker(&mut waker, cx.waker());
                *guard = ReplyState::Waiting(waker);
                Poll::Pending
            }
            ReplyState::Taken => panic!("submit_to reply polled after completion"),
        }
    }
}
