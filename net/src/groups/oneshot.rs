//! A shard-local one-shot: how a group operation that must wait (a JoinGroup until the
//! rebalance completes, a follower's SyncGroup until the leader's assignment arrives) gets its
//! answer. Both ends stay on the coordinator's shard.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use runnel_engine::rt::LocalEvent;

struct Shared<T> {
    value: RefCell<Option<T>>,
    /// The sending side was dropped without an answer.
    abandoned: Cell<bool>,
    event: LocalEvent,
}

/// The answering side, kept by the group.
pub struct Sender<T>(Option<Rc<Shared<T>>>);

/// The waiting side, awaited by the request.
pub struct Pending<T>(Rc<Shared<T>>);

pub fn channel<T>() -> (Sender<T>, Pending<T>) {
    let slot = Rc::new(Shared {
        value: RefCell::new(None),
        abandoned: Cell::new(false),
        event: LocalEvent::new(),
    });
    (Sender(Some(slot.clone())), Pending(slot))
}

impl<T> Sender<T> {
    /// Whether the waiting side is still there to take an answer.
    pub fn is_awaited(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|slot| Rc::strong_count(slot) > 1)
    }

    pub fn send(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            *slot.value.borrow_mut() = Some(value);
            slot.event.notify_all();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.abandoned.set(true);
            slot.event.notify_all();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl<T> Pending<T> {
    /// The answer if it has arrived (for tests, which drive groups without a runtime).
    #[cfg(test)]
    pub fn try_take(&self) -> Option<T> {
        self.0.value.borrow_mut().take()
    }

    /// The answer, or `None` if the group dropped the request without one (the group was
    /// unloaded or the coordinator stopped).
    pub async fn recv(self) -> Option<T> {
        loop {
            let wait = self.0.event.wait();
            if let Some(value) = self.0.value.borrow_mut().take() {
                return Some(value);
            }
            if self.0.abandoned.get() {
                return None;
            }
            wait.await;
        }
    }
}
