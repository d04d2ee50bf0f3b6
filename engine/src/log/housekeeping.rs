//! A shard's logs, and the background task that applies retention to them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::rc::Rc;
use std::time::Duration;

use super::partition::Log;
use crate::rt;

/// The logs one shard owns, by key: the broker keys them by topic and partition. An entry may
/// be the [`Log`] itself or a richer value holding one (the broker's replica state), so the
/// housekeeping here serves whatever the caller keeps.
#[derive(Debug)]
pub struct LogSet<K, V = Log> {
    logs: RefCell<BTreeMap<K, V>>,
}

impl<K, V> Default for LogSet<K, V> {
    fn default() -> Self {
        LogSet {
            logs: RefCell::new(BTreeMap::new()),
        }
    }
}

impl<K, V> LogSet<K, V>
where
    K: Ord + Clone + Display,
    V: Clone + AsRef<Log>,
{
    pub fn new() -> Rc<Self> {
        Rc::new(LogSet::default())
    }

    pub fn insert(&self, key: K, entry: V) -> Option<V> {
        self.logs.borrow_mut().insert(key, entry)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.logs.borrow().get(key).cloned()
    }

    pub fn remove(&self, key: &K) -> Option<V> {
        self.logs.borrow_mut().remove(key)
    }

    pub fn len(&self) -> usize {
        self.logs.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.logs.borrow().is_empty()
    }

    /// The entries at this moment (the set may change while the caller awaits).
    pub fn snapshot(&self) -> Vec<(K, V)> {
        self.logs
            .borrow()
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect()
    }

    /// Applies retention to every log once, and forgets idle idempotent producers; returns
    /// the segments deleted.
    pub async fn enforce_retention(&self) -> usize {
        let mut deleted = 0;
        for (key, entry) in self.snapshot() {
            entry.as_ref().expire_producers();
            match entry.as_ref().enforce_retention().await {
                Ok(n) => deleted += n,
                Err(e) => tracing::warn!(log = %key, error = %e, "retention failed"),
            }
        }
        deleted
    }

    /// Runs retention every `every` until the shard shuts down (Kafka's
    /// `log.retention.check.interval.ms`). Spawn one per shard.
    pub async fn run_housekeeping(self: Rc<Self>, every: Duration) {
        loop {
            match rt::select(rt::sleep(every), rt::shutdown_requested()).await {
                rt::Either::Left(()) => {
                    self.enforce_retention().await;
                }
                rt::Either::Right(()) => return,
            }
        }
    }

    /// Closes every log (see [`Log::close`]), all at once: each close waits for its own syncs
    /// and index writes, and a shard with thousands of partitions must finish within the
    /// shutdown grace period. Returns how many failed to close cleanly.
    pub async fn close_all(&self) -> usize
    where
        K: 'static,
        V: 'static,
    {
        let closing: Vec<_> = self
            .snapshot()
            .into_iter()
            .map(|(key, entry)| {
                rt::spawn_local(async move {
                    let closed = entry.as_ref().close().await;
                    if let Err(e) = &closed {
                        tracing::error!(log = %key, error = %e, "closing the log failed");
                    }
                    closed.is_ok()
                })
            })
            .collect();
        let mut failures = 0;
        for close in closing {
            if !close.await {
                failures += 1;
            }
        }
        failures
    }
}

impl AsRef<Log> for Log {
    fn as_ref(&self) -> &Log {
        self
    }
}
