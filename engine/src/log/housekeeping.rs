//! A shard's logs, and the background task that applies retention to them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::partition::Log;
use crate::rt;

/// The logs one shard owns, by name (`<topic>-<partition>`).
#[derive(Debug, Default)]
pub struct LogSet {
    logs: RefCell<BTreeMap<String, Log>>,
}

impl LogSet {
    pub fn new() -> Rc<Self> {
        Rc::new(LogSet::default())
    }

    pub fn insert(&self, name: impl Into<String>, log: Log) -> Option<Log> {
        self.logs.borrow_mut().insert(name.into(), log)
    }

    pub fn get(&self, name: &str) -> Option<Log> {
        self.logs.borrow().get(name).cloned()
    }

    pub fn remove(&self, name: &str) -> Option<Log> {
        self.logs.borrow_mut().remove(name)
    }

    pub fn len(&self) -> usize {
        self.logs.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.logs.borrow().is_empty()
    }

    /// The logs at this moment (the set may change while the caller awaits).
    pub fn snapshot(&self) -> Vec<(String, Log)> {
        self.logs
            .borrow()
            .iter()
            .map(|(name, log)| (name.clone(), log.clone()))
            .collect()
    }

    /// Applies retention to every log once; returns the segments deleted.
    pub async fn enforce_retention(&self) -> usize {
        let mut deleted = 0;
        for (name, log) in self.snapshot() {
            match log.enforce_retention().await {
                Ok(n) => deleted += n,
                Err(e) => tracing::warn!(log = %name, error = %e, "retention failed"),
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

    /// Closes every log (see [`Log::close`]); returns how many failed to close cleanly.
    pub async fn close_all(&self) -> usize {
        let mut failures = 0;
        for (name, log) in self.snapshot() {
            if let Err(e) = log.close().await {
                tracing::error!(log = %name, error = %e, "closing the log failed");
                failures += 1;
            }
        }
        failures
    }
}
