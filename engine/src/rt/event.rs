//! A shard-local broadcast signal: tasks wait for the next [`LocalEvent::notify_all`].
//!
//! Single-threaded by design (`!Send`): the log uses it to wake appenders waiting for a group
//! commit and readers waiting for new data, all on the owning shard. No missed wake-ups: a
//! [`Wait`] future compares generations, so a notification between its creation and its first
//! poll still completes it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// A notification that wakes every task waiting at the time.
#[derive(Debug, Default)]
pub struct LocalEvent {
    generation: Cell<u64>,
    waiters: RefCell<Slab<Waker>>,
}

impl LocalEvent {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every current waiter.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Completes at the first [`notify_all`](Self::notify_all) after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            generation: self.generation.get(),
            key: None,
        }
    }

    /// Number of registered waiters (for tests and stats).
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future returned by [`LocalEvent::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    event: &'a LocalEvent,
    generation: u64,
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            // notify_all emptied the slab: our key is gone with it.
            self.key = None;
            return Poll::Ready(());
        }
        let mut waiters = self.event.waiters.borrow_mut();
        match self.key {
            Some(key) => match waiters.get_mut(key) {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                Some(waker) => waker.clone_from(cx.waker()),
                None => unreachable!("waiters are only cleared together with a generation bump"),
            },
            None => {
                let key = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if self.event.generation.get() == self.generation {
                self.event.waiters.borrow_mut().try_remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll(wait: &mut Wait<'_>, flag: &Arc<Flag>) -> Poll<()> {
        let waker = Waker::from(flag.clone());
        Pin::new(wait).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn notify_wakes_registered_waiters_once() {
        let event = LocalEvent::new();
        let flag = Arc::new(Flag(false.into()));
        let mut wait = event.wait();
        assert!(poll(&mut wait, &flag).is_pending());
        assert!(poll(&mut wait, &flag).is_pending());
        assert_eq!(event.waiters(), 1, "re-polling must not register twice");
        event.notify_all();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(poll(&mut wait, &flag).is_ready());
        assert_eq!(event.waiters(), 0);
    }

    #[test]
    fn notification_before_first_poll_is_not_missed() {
        let event = LocalEvent::new();
        let flag = Arc::new(Flag(false.into()));
        let mut wait = event.wait();
        event.notify_all();
        assert!(poll(&mut wait, &flag).is_ready());
    }

    #[test]
    fn dropped_waiters_unregister() {
        let event = LocalEvent::new();
        let flag = Arc::new(Flag(false.into()));
        let mut wait = event.wait();
        assert!(poll(&mut wait, &flag).is_pending());
        drop(wait);
        assert_eq!(event.waiters(), 0);
        // A waiter dropped after a notification must not remove someone else's slot.
        let mut first = event.wait();
        assert!(poll(&mut first, &flag).is_pending());
        event.notify_all();
        let mut second = event.wait();
        assert!(poll(&mut second, &flag).is_pending());
        drop(first);
        assert_eq!(event.waiters(), 1);
    }
}
