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
    /// Responses, each with the request bytes it holds until it is sent.
    queue: RefCell<VecDeque<(Outgoing<T>, usize)>>,
    /// Responses queued or being sent, at most.
    capacity: usize,
    /// Request bytes held by queued responses, at most (one request may exceed it alone).
    byte_capacity: usize,
    /// Request bytes held by queued responses and the one being sent.
    held: Cell<usize>,
    /// The writer holds a response it hasn't finished sending, holding this many bytes.
    sending: Cell<Option<usize>>,
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
            .field("held", &self.held.get())
            .field("closed", &self.closed.get())
            .field("failed", &self.failed.get())
            .finish()
    }
}

impl<T> Outbox<T> {
    pub fn new(capacity: usize, byte_capacity: usize) -> Self {
        assert!(capacity > 0, "an outbox needs room for one response");
        Outbox {
            queue: RefCell::new(VecDeque::new()),
            capacity,
            byte_capacity,
            held: Cell::new(0),
            sending: Cell::new(None),
            closed: Cell::new(false),
            failed: Cell::new(false),
            changed: LocalEvent::new(),
        }
    }

    /// Responses queued or being sent.
    pub fn len(&self) -> usize {
        self.queue.borrow().len() + usize::from(self.sending.get().is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues the next response (in request order), holding `bytes` of request data until it
    /// is sent.
    pub fn push(&self, response: Outgoing<T>, bytes: usize) {
        self.queue.borrow_mut().push_back((response, bytes));
        self.held.set(self.held.get() + bytes);
        self.changed.notify_all();
    }

    /// Waits until another response fits, holding `bytes`: fewer than `capacity` responses
    /// and at most `byte_capacity` bytes with it (or nothing else held). False once the writer
    /// has failed.
    pub async fn room_for(&self, bytes: usize) -> bool {
        self.until(|outbox| {
            let held = outbox.held.get();
            outbox.len() < outbox.capacity && (held == 0 || held + bytes <= outbox.byte_capacity)
        })
        .await
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
            if let Some((response, bytes)) = self.queue.borrow_mut().pop_front() {
                self.sending.set(Some(bytes));
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
        if let Some(bytes) = self.sending.take() {
            self.held.set(self.held.get() - bytes);
        }
        self.changed.notify_all();
    }

    /// For the writer: it stopped; queued responses are dropped and the reader is told.
    pub fn fail(&self) {
        self.failed.set(true);
        self.sending.set(None);
        self.queue.borrow_mut().clear();
        self.held.set(0);
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
            let outbox = Rc::new(Outbox::new(8, 1 << 20));
            let finished = Rc::new(LocalEvent::new());
            let slow = finished.clone();
            outbox.push(
                Box::pin(async move {
                    slow.wait().await;
                    1
                }),
                0,
            );
            outbox.push(Box::pin(async { 2 }), 0);
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
    fn held_request_bytes_bound_the_queue_but_never_block_a_lone_request() {
        on_runtime(|| async {
            let outbox = Rc::new(Outbox::<u32>::new(8, 100));
            // A request larger than the whole budget still goes when nothing else is held.
            assert!(outbox.room_for(500).await);
            outbox.push(Box::pin(async { 1 }), 500);
            let second = {
                let outbox = outbox.clone();
                rt::spawn_local(async move { outbox.room_for(10).await })
            };
            rt::yield_now().await;
            assert_eq!(outbox.len(), 1, "the second waits for the first's bytes");
            let first = outbox.next().await.unwrap();
            assert_eq!(first.await, 1);
            outbox.sent();
            assert!(second.await);
            // Small ones share the budget.
            outbox.push(Box::pin(async { 2 }), 60);
            assert!(outbox.room_for(40).await);
            outbox.push(Box::pin(async { 3 }), 40);
            let third = {
                let outbox = outbox.clone();
                rt::spawn_local(async move { outbox.room_for(1).await })
            };
            rt::yield_now().await;
            assert_eq!(outbox.next().await.unwrap().await, 2);
            outbox.sent();
            assert!(third.await, "60 bytes freed");
        });
    }

    #[test]
    fn room_and_idle_wait_for_the_writer_and_fail_releases_them() {
        on_runtime(|| async {
            let outbox = Rc::new(Outbox::<u32>::new(2, 1 << 20));
            outbox.push(Box::pin(async { 1 }), 0);
            assert!(outbox.room_for(0).await, "one of two places taken");
            outbox.push(Box::pin(async { 2 }), 0);
            let waiting = {
                let outbox = outbox.clone();
                rt::spawn_local(async move { (outbox.room_for(0).await, outbox.idle().await) })
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
            assert!(!outbox.room_for(0).await);
        });
    }
}
