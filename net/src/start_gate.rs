//! The start-up gate: no shard serves until every shard has opened its partitions (so no
//! request finds a partition whose log isn't open yet), and a shard that fails while opening
//! (a panic unwinds its thread) stops the start with an error instead of leaving main and the
//! other shards waiting for it forever, as a plain barrier would.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

/// Main's side: learns that every shard is ready, or which one failed.
#[derive(Debug)]
pub struct StartGate {
    reports: Vec<Receiver<()>>,
    decision: Arc<Decision>,
}

/// A shard's side, moved into the shard's start-up task.
#[derive(Debug)]
pub struct ShardStart {
    report: Sender<()>,
    decision: Arc<Decision>,
}

#[derive(Debug, Default)]
struct Decision {
    /// `Some(true)`: serve; `Some(false)`: the start failed, stop.
    go: Mutex<Option<bool>>,
    decided: Condvar,
}

/// A gate for `shards` shards: main keeps the gate, shard `i` takes the `i`th `ShardStart`.
pub fn start_gate(shards: usize) -> (StartGate, Vec<ShardStart>) {
    let decision = Arc::new(Decision::default());
    let (reports, starts) = (0..shards)
        .map(|_| {
            let (report, received) = channel();
            let start = ShardStart {
                report,
                decision: decision.clone(),
            };
            (received, start)
        })
        .unzip();
    (StartGate { reports, decision }, starts)
}

impl StartGate {
    /// Waits until every shard has reported; `Err(shard)` names the first one that went away
    /// without reporting (the others are then told not to serve).
    pub fn wait(self) -> Result<(), usize> {
        for (shard, report) in self.reports.iter().enumerate() {
            if report.recv().is_err() {
                self.decision.decide(false);
                return Err(shard);
            }
        }
        self.decision.decide(true);
        Ok(())
    }
}

impl ShardStart {
    /// Reports this shard ready, then blocks (the shard serves nothing yet) until every shard
    /// is: true to serve, false when the start failed.
    pub fn ready(self) -> bool {
        // Main gone means the process is exiting: don't serve.
        if self.report.send(()).is_err() {
            return false;
        }
        let mut go = self.decision.go.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *go {
                return go;
            }
            go = self
                .decision
                .decided
                .wait(go)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Decision {
    fn decide(&self, go: bool) {
        *self.go.lock().unwrap_or_else(|e| e.into_inner()) = Some(go);
        self.decided.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_ready_opens_the_gate() {
        let (gate, starts) = start_gate(3);
        let shards: Vec<_> = starts
            .into_iter()
            .map(|s| std::thread::spawn(move || s.ready()))
            .collect();
        assert_eq!(gate.wait(), Ok(()));
        for shard in shards {
            assert!(shard.join().unwrap());
        }
    }

    #[test]
    fn a_shard_that_dies_fails_the_start_and_releases_the_others() {
        let (gate, mut starts) = start_gate(3);
        let failing = starts.remove(1);
        let healthy: Vec<_> = starts
            .into_iter()
            .map(|s| std::thread::spawn(move || s.ready()))
            .collect();
        let dead = std::thread::spawn(move || {
            let _start = failing;
            panic!("opening partitions failed");
        });
        assert!(dead.join().is_err());
        assert_eq!(gate.wait(), Err(1));
        for shard in healthy {
            assert!(!shard.join().unwrap(), "told not to serve");
        }
    }
}
