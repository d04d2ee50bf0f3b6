//! A connection's responses waiting to be sent, in request order.
//!
//! The connection's reader pushes each request's response (or the future that will produce it)
//! here; one writer task takes them from the front, awaits each in turn and sends it. Responses
//! thus leave in request order even when the requests behind them finish first, which is what
//! lets pipelined Produce requests be written and synced together.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use runnel_engine::rt::LocalEvent;

/// A response that may not be ready yet.
pub type Outgoing<T> = Pin<Box<dyn Future<Output = T>>>;

/// The in-order queue between a connection's reader and its writer. Shard-local.
pub struct Outbox<T> {
    queue: RefCell<VecDeque<Outgoing<T>>>,
    /// Responses queued or being sent, at most.
    capacity: usize,
    /// The writer holds a response it hasn't finished sending.
    sending: Cell<bool>,
    /// The reader will push nothing more.
    closed: Cell<bool>,
    /// The writer stopped (send failed or a response couldn't be encoded).
    failed: Cell<bool>,
    /// Any of the above changed.
    changed: LocalEvent,
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("closed", &self.closed.get())
            .field("failed", &self.failed.get())
            .finish()
    }
}

impl<T> Outbox<T> {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "an outbox needs room for one response");
        Outbox {
            queue: RefCell::new(VecDeque::new()),
            capacity,
            sending: Cell::new(false),
            closed: Cell::new(false),
            failed: Cell::new(false),
            changed: LocalEvent::new(),
        }
    }

    /// Responses queued or being sent.
    pub fn len(&self) -> usize {
        self.queue.borrow().len() + usize::from(self.sending.get())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues the next response (in request order).
    pub fn push(&self, response: Outgoing<T>) {
        self.queue.borrow_mut().push_back(response);
        self.changed.notify_all();
    }

    /// Waits until another response fits. False once the writer has failed.
    pub async fn room(&self) -> bool {
        self.until(|outbox| outbox.len() < outbox.capacity).await
    }

    /// Waits until every queued response has been sent. False once the writer has failed.
    pub async fn idle(&self) -> bool {
        self.until(Self::is_empty).await
    }

    /// Waits until `ready` holds or the writer fails; returns whether the writer still runs.
    async fn until(&self, ready: impl Fn(&Self) -> bool) -> bool {
        loop {
            // Taken before the check, so a change in between is not missed.
            let changed = self.changed.wait();
            if self.failed.get() {
                return false;
            }
            if ready(self) {
                return true;
            }
            changed.await;
        }
    }

    /// The reader closed the outbox and every response has been sent.
    pub fn is_closed_and_empty(&self) -> bool {
        self.closed.get() && self.is_empty()
    }

    /// The reader is done: the writer sends what is queued and then stops.
    pub fn close(&self) {
        self.closed.set(true);
        self.changed.notify_all();
    }

    /// For the writer: the next response to send, or `None` once the reader has closed and
    /// everything is sent. Call [`sent`](Self::sent) after sending it.
    pub async fn next(&self) -> Option<Outgoing<T>> {
        loop {
            let changed = self.changed.wait();
            if let Some(response) = self.queue.borrow_mut().pop_front() {
                self.sending.set(true);
                return Some(response);
            }
            if self.closed.get() || self.failed.get() {
                return None;
            }
            changed.await;
        }
    }

    /// For the writer: the response taken with [`next`](Self::next) is sent.
    pub fn sent(&self) {
        self.sending.set(false);
        self.changed.notify_all();
    }

    /// For the writer: it stopped; queued responses are dropped and the reader is told.
    pub fn fail(&self) {
        self.failed.set(true);
        self.sending.set(false);
        self.queue.borrow_mut().clear();
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use runnel_engine::rt::{self, Runtime, RuntimeConfig};

    use super::*;

    fn on_runtime<F, Fut>(test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime = Runtime::start(
            RuntimeConfig {
                cores: 1,
                pin_threads: false,
                ..RuntimeConfig::default()
            },
            |_| async {},
        )
        .expect("runtime starts");
        runtime.handle().run_on(0, test).expect("shard runs");
        runtime.join().expect("runtime stops");
    }

    #[test]
    fn responses_leave_in_push_order_even_when_later_ones_finish_first() {
        on_runtime(|| async {
            let outbox = Rc::new(Outbox::new(8));
            let finished = Rc::new(LocalEvent::new());
            let slow = finished.clone();
            outbox.push(Box::pin(async move {
                slow.wait().await;
                1
            }));
            outbox.push(Box::pin(async { 2 }));
            outbox.close();
            let writer = {
                let outbox = outbox.clone();
                rt::spawn_local(async move {
                    let mut sent = Vec::new();
                    while let Some(response) = outbox.next().await {
                        sent.push(response.await);
                        outbox.sent();
                    }
                    sent
                })
            };
            rt::sleep(std::time::Duration::from_millis(2)).await;
            assert_eq!(outbox.len(), 2, "the writer waits on the first response");
            finished.notify_all();
            assert_eq!(writer.await, vec![1, 2]);
            assert!(outbox.idle().await);
        });
    }

    #[test]
    fn room_and_idle_wait_for_the_writer_and_fail_releases_them() {
        on_runtime(|| async {
            let outbox = Rc::new(Outbox::<u32>::new(2));
            outbox.push(Box::pin(async { 1 }));
            assert!(outbox.room().await, "one of two places taken");
            outbox.push(Box::pin(async { 2 }));
            let waiting = {
                let outbox = outbox.clone();
                rt::spawn_local(async move { (outbox.room().await, outbox.idle().await) })
            };
            let first = outbox.next().await.unwrap();
            assert_eq!(
                outbox.len(),
                2,
                "a response being sent still takes its place"
            );
            assert_eq!(first.await, 1);
            outbox.sent();
            // Room now, but not idle until the second is sent; then the writer fails instead.
            rt::yield_now().await;
            outbox.fail();
            assert_eq!(waiting.await, (true, false));
            assert!(
                outbox.next().await.is_none(),
                "a failed outbox hands out nothing"
            );
            assert!(!outbox.room().await);
        });
    }
}
