//! One holder at a time, on one shard: an async lock without data, for steps of a log's
//! maintenance that must not interleave (two checkpoint writes racing through one temporary
//! file; the cleaner replacing segments while retention deletes them), and for the broker's
//! own such steps (a follower's truncation against its partition taking up leadership).

use std::cell::Cell;

use crate::rt::LocalEvent;

#[derive(Debug, Default)]
pub struct Exclusive {
    busy: Cell<bool>,
    released: LocalEvent,
}

impl Exclusive {
    /// Waits for the turn. The turn passes on when the returned guard drops, also when the
    /// holder's future is dropped mid-way.
    pub async fn acquire(&self) -> Turn<'_> {
        while self.busy.replace(true) {
            self.released.wait().await;
        }
        Turn(self)
    }
}

/// Holds the turn; passes it on when dropped.
#[derive(Debug)]
pub struct Turn<'a>(&'a Exclusive);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
        self.0.released.notify_all();
    }
}
