//! Clusters of real broker processes on 127.0.0.1: the controller quorum forms, fails over,
//! survives the loss of a minority, stops without a majority, and never splits its brain
//! across a network partition.

mod admin;
mod elections;
mod failover;
mod membership;
mod partition;
mod python_client;
mod reassignment;
mod replication;
mod routing;

use std::time::{Duration, Instant};

use runnel_tests::cluster::Cluster;

/// Polls `check` until it holds or `timeout` passes; the last failure explains.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(reason) if Instant::now() >= deadline => {
                panic!("not within {timeout:?}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Node `on`'s view of the brokers: (id, fenced), by id.
pub fn brokers_seen_by(cluster: &Cluster, on: i32) -> Result<Vec<(i32, bool)>, String> {
    let described = cluster.describe(on).map_err(|e| e.to_string())?;
    let mut brokers: Vec<(i32, bool)> = described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect();
    brokers.sort();
    Ok(brokers)
}

/// Waits until every node in `on` sees exactly `expected` as (id, fenced).
pub fn wait_for_brokers(cluster: &Cluster, on: &[i32], expected: &[(i32, bool)]) {
    eventually(Duration::from_secs(15), || {
        for &node in on {
            let seen = brokers_seen_by(cluster, node)?;
            if seen != expected {
                return Err(format!("node {node} sees {seen:?}, not {expected:?}"));
            }
        }
        Ok(())
    });
}
