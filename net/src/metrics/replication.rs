//! Replication's figures for `/metrics` (Kafka's names in the comments).
//!
//! - Gauges computed when scraped, from each shard's open partitions ([`ReplicaGauges`]):
//!   partitions led and followed, led partitions under-replicated or under
//!   `min.insync.replicas`, and the furthest any follower of a led partition is behind.
//! - Counters recorded as things happen, per shard like the rest of [`super::Snapshot`]
//!   ([`Counters`]): ISR changes the controller committed (shrinks, expands) or did not, and
//!   on the follower side what the fetchers appended, their failed requests and partition
//!   errors, and each Fetch's round trip to the leader.

use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::prometheus::summary;
use super::{histogram, micros, Snapshot, SHARD};
use crate::replication::leader::LeaderSummary;
use crate::replication::Role;

/// This broker's replicas as they stand (summed over shards; the lag is the largest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaGauges {
    /// Partitions this broker leads (every partition of a lone broker).
    pub led: u64,
    /// Partitions this broker follows (leaderless ones included).
    pub followed: u64,
    pub under_replicated: u64,
    pub under_min_isr: u64,
    /// The most messages a follower of a partition led here is behind its leader log end.
    pub max_follower_lag_messages: i64,
}

impl ReplicaGauges {
    /// Counts one partition with this broker's `role` in it and, while it leads it in a
    /// cluster, its leader summary.
    pub fn add(&mut self, role: Role, leading: Option<LeaderSummary>) {
        match role {
            Role::Leader => self.led += 1,
            Role::Follower => self.followed += 1,
        }
        if let Some(s) = leading {
            self.under_replicated += u64::from(s.under_replicated());
            self.under_min_isr += u64::from(s.under_min_isr());
            if let Some(lag) = s.max_follower_lag_messages {
                self.max_follower_lag_messages = self.max_follower_lag_messages.max(lag);
            }
        }
    }

    pub fn merge(&mut self, other: &ReplicaGauges) {
        self.led += other.led;
        self.followed += other.followed;
        self.under_replicated += other.under_replicated;
        self.under_min_isr += other.under_min_isr;
        self.max_follower_lag_messages = self
            .max_follower_lag_messages
            .max(other.max_follower_lag_messages);
    }

    /// This shard's open partitions (call on a shard).
    pub fn of_shard() -> ReplicaGauges {
        let mut gauges = ReplicaGauges::default();
        for (_, partition) in crate::partitions::shard::current().logs.snapshot() {
            gauges.add(partition.role(), partition.replica.leader_summary());
        }
        gauges
    }
}

/// The requests a follower's fetcher sends its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetcherRequest {
    Fetch = 0,
    OffsetForLeaderEpoch = 1,
    ListOffsets = 2,
}

const FETCHER_REQUESTS: [(FetcherRequest, &str); 3] = [
    (FetcherRequest::Fetch, "Fetch"),
    (FetcherRequest::OffsetForLeaderEpoch, "OffsetForLeaderEpoch"),
    (FetcherRequest::ListOffsets, "ListOffsets"),
];

/// Replication's counters on one shard (or several merged).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// ISR changes the controller committed that removed members (Kafka's IsrShrinksPerSec)
    /// or added some (IsrExpandsPerSec).
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    /// ISR changes refused or left unanswered (Kafka's FailedIsrUpdatesPerSec).
    pub isr_change_failures: u64,
    /// What fetchers appended to follower logs (Kafka's ReplicationBytesInPerSec).
    pub replica_messages_in: u64,
    pub replica_bytes_in: u64,
    /// Fetcher requests that failed whole (no answer, or a top-level error), by
    /// [`FetcherRequest`].
    pub fetcher_requests_failed: [u64; 3],
    /// Partitions a Fetch answer gave an error for, left out, or whose records could not be
    /// appended.
    pub fetch_partition_errors: u64,
    /// Fetch round trips to leaders, µs (the leader's long-poll wait included).
    pub fetch_latency: Option<Histogram<u64>>,
    /// Figures read from the partitions when scraped (not recorded; see [`ReplicaGauges`]).
    pub gauges: ReplicaGauges,
}

impl Counters {
    pub fn merge(&mut self, other: &Counters) {
        self.isr_shrinks += other.isr_shrinks;
        self.isr_expands += other.isr_expands;
        self.isr_change_failures += other.isr_change_failures;
        self.replica_messages_in += other.replica_messages_in;
        self.replica_bytes_in += other.replica_bytes_in;
        for (mine, theirs) in self
            .fetcher_requests_failed
            .iter_mut()
            .zip(other.fetcher_requests_failed)
        {
            *mine += theirs;
        }
        self.fetch_partition_errors += other.fetch_partition_errors;
        if let Some(h) = &other.fetch_latency {
            self.fetch_latency
                .get_or_insert_with(histogram)
                .add(h)
                .expect("same bounds");
        }
        self.gauges.merge(&other.gauges);
    }
}

/// How a committed ISR differs from the one before: (members removed, members added). A
/// change may do both (the controller answers with the ISR as it is, whatever was asked).
pub fn isr_change_kind(previous: &[i32], committed: &[i32]) -> (bool, bool) {
    let shrank = previous.iter().any(|id| !committed.contains(id));
    let expanded = committed.iter().any(|id| !previous.contains(id));
    (shrank, expanded)
}

fn with_counters(f: impl FnOnce(&mut Counters)) {
    SHARD.with(|s| f(&mut s.borrow_mut().replication));
}

/// The leader applied a committed ISR change: `previous` was its ISR before.
pub fn record_isr_change(previous: &[i32], committed: &[i32]) {
    let (shrank, expanded) = isr_change_kind(previous, committed);
    if shrank || expanded {
        with_counters(|c| {
            c.isr_shrinks += u64::from(shrank);
            c.isr_expands += u64::from(expanded);
        });
    }
}

/// An ISR change the controller refused or did not answer.
pub fn record_isr_change_failed() {
    with_counters(|c| c.isr_change_failures += 1);
}

/// A fetcher appended `messages` records of `bytes` to a follower's log.
pub fn record_replica_append(messages: u64, bytes: u64) {
    with_counters(|c| {
        c.replica_messages_in += messages;
        c.replica_bytes_in += bytes;
    });
}

/// A fetcher's request got no usable answer.
pub fn record_fetcher_request_failed(request: FetcherRequest) {
    with_counters(|c| c.fetcher_requests_failed[request as usize] += 1);
}

/// A partition of a Fetch answer came with an error, was missing, or failed to append.
pub fn record_fetch_partition_error() {
    with_counters(|c| c.fetch_partition_errors += 1);
}

/// A Fetch to a leader was answered after `took`.
pub fn record_fetch_round_trip(took: Duration) {
    with_counters(|c| {
        c.fetch_latency
            .get_or_insert_with(histogram)
            .record(micros(took))
            .expect("clamped");
    });
}

/// Appends replication's metrics.
pub(super) fn render(out: &mut String, snapshot: &Snapshot) {
    let c = &snapshot.replication;
    let g = &c.gauges;
    let plain = [
        // Kafka: ReplicaManager LeaderCount.
        (
            "runnel_leader_partitions",
            "Partitions this broker leads.",
            "gauge",
            g.led as f64,
        ),
        // Kafka: ReplicaManager PartitionCount minus LeaderCount.
        (
            "runnel_follower_partitions",
            "Partitions this broker follows (leaderless ones included).",
            "gauge",
            g.followed as f64,
        ),
        // Kafka: ReplicaManager UnderReplicatedPartitions.
        (
            "runnel_under_replicated_partitions",
            "Partitions this broker leads whose ISR is smaller than their replica list.",
            "gauge",
            g.under_replicated as f64,
        ),
        // Kafka: ReplicaManager UnderMinIsrPartitionCount.
        (
            "runnel_under_min_isr_partitions",
            "Partitions this broker leads whose ISR is smaller than min.insync.replicas (acks=all produces are refused).",
            "gauge",
            g.under_min_isr as f64,
        ),
        // Leader side (Kafka's MaxLag is the follower's view, per fetcher).
        (
            "runnel_leader_max_follower_lag_messages",
            "The most messages any follower of a partition this broker leads is behind the leader's log end.",
            "gauge",
            g.max_follower_lag_messages as f64,
        ),
        // Kafka: ReplicaManager IsrShrinksPerSec.
        (
            "runnel_isr_shrinks_total",
            "Committed ISR changes that removed replicas, on partitions this broker leads.",
            "counter",
            c.isr_shrinks as f64,
        ),
        // Kafka: ReplicaManager IsrExpandsPerSec.
        (
            "runnel_isr_expands_total",
            "Committed ISR changes that added replicas, on partitions this broker leads.",
            "counter",
            c.isr_expands as f64,
        ),
        // Kafka: ReplicaManager FailedIsrUpdatesPerSec.
        (
            "runnel_isr_change_failures_total",
            "ISR changes (AlterPartition) the controller refused or did not answer.",
            "counter",
            c.isr_change_failures as f64,
        ),
        // Kafka: BrokerTopicMetrics ReplicationBytesInPerSec (and the messages behind it).
        (
            "runnel_replica_messages_in_total",
            "Records the follower fetchers appended to this broker's replicas.",
            "counter",
            c.replica_messages_in as f64,
        ),
        (
            "runnel_replica_bytes_in_total",
            "Record bytes the follower fetchers appended to this broker's replicas.",
            "counter",
            c.replica_bytes_in as f64,
        ),
        (
            "runnel_replica_fetch_partition_errors_total",
            "Partitions a follower's Fetch answer gave an error for, left out, or that could not be appended.",
            "counter",
            c.fetch_partition_errors as f64,
        ),
    ];
    for (name, help, kind, value) in plain {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let name = "runnel_replica_fetcher_requests_failed_total";
    let _ = writeln!(
        out,
        "# HELP {name} Follower fetcher requests to leaders with no usable answer (none, or a top-level error), per API.\n# TYPE {name} counter"
    );
    for (request, api) in FETCHER_REQUESTS {
        let value = c.fetcher_requests_failed[request as usize];
        let _ = writeln!(out, "{name}{{api=\"{api}\"}} {value}");
    }
    // Kafka: the FetchFollower request's TotalTimeMs, seen from the follower.
    let name = "runnel_replica_fetch_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} A follower's Fetch to its leader, sent to answered (the leader's long-poll wait, up to replica.fetch.wait.max.ms, included).\n# TYPE {name} summary"
    );
    if let Some(h) = &c.fetch_latency {
        summary(out, name, "", h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(isr: usize, replicas: usize, min_insync: i32, lag: Option<i64>) -> LeaderSummary {
        LeaderSummary {
            isr_len: isr,
            replicas_len: replicas,
            min_insync,
            max_follower_lag_messages: lag,
        }
    }

    #[test]
    fn shrinks_and_expands_are_told_apart() {
        assert_eq!(isr_change_kind(&[1, 2, 3], &[1, 3]), (true, false));
        assert_eq!(isr_change_kind(&[1, 3], &[3, 1, 2]), (false, true));
        assert_eq!(isr_change_kind(&[1, 2], &[1, 3]), (true, true));
        assert_eq!(isr_change_kind(&[1, 2], &[2, 1]), (false, false));
    }

    #[test]
    fn gauges_count_roles_and_led_partitions_short_of_replicas() {
        let mut a = ReplicaGauges::default();
        a.add(Role::Leader, None); // a lone broker's partition
        a.add(Role::Leader, Some(led(3, 3, 2, Some(5))));
        a.add(Role::Leader, Some(led(2, 3, 2, Some(700))));
        a.add(Role::Follower, None);
        let mut b = ReplicaGauges::default();
        b.add(Role::Leader, Some(led(1, 3, 2, None)));
        b.add(Role::Follower, None);
        a.merge(&b);
        assert_eq!(
            a,
            ReplicaGauges {
                led: 4,
                followed: 2,
                under_replicated: 2,
                under_min_isr: 1,
                max_follower_lag_messages: 700,
            }
        );
    }

    #[test]
    fn recording_on_a_thread_lands_in_its_snapshot() {
        std::thread::spawn(|| {
            record_isr_change(&[1, 2, 3], &[1, 2]);
            record_isr_change(&[1, 2], &[1, 2, 3]);
            record_isr_change(&[1, 2], &[1, 2]);
            record_isr_change_failed();
            record_replica_append(10, 1000);
            record_fetcher_request_failed(FetcherRequest::ListOffsets);
            record_fetch_partition_error();
            record_fetch_round_trip(Duration::from_millis(3));
            let s = super::super::shard_snapshot().replication;
            assert_eq!((s.isr_shrinks, s.isr_expands), (1, 1));
            assert_eq!(s.isr_change_failures, 1);
            assert_eq!((s.replica_messages_in, s.replica_bytes_in), (10, 1000));
            assert_eq!(s.fetcher_requests_failed, [0, 0, 1]);
            assert_eq!(s.fetch_partition_errors, 1);
            assert_eq!(s.fetch_latency.as_ref().unwrap().len(), 1);
            let mut merged = s.clone();
            merged.merge(&s);
            assert_eq!(merged.isr_shrinks, 2);
            assert_eq!(merged.fetcher_requests_failed, [0, 0, 2]);
            assert_eq!(merged.fetch_latency.as_ref().unwrap().len(), 2);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn renders_every_replication_metric() {
        let mut snapshot = Snapshot::default();
        let c = &mut snapshot.replication;
        c.isr_shrinks = 3;
        c.isr_expands = 2;
        c.isr_change_failures = 1;
        c.replica_messages_in = 40;
        c.replica_bytes_in = 4096;
        c.fetcher_requests_failed = [5, 0, 1];
        c.fetch_partition_errors = 7;
        let mut h = histogram();
        h.record(2_000).unwrap();
        c.fetch_latency = Some(h);
        c.gauges = ReplicaGauges {
            led: 6,
            followed: 12,
            under_replicated: 2,
            under_min_isr: 1,
            max_follower_lag_messages: 900,
        };
        let mut out = String::new();
        render(&mut out, &snapshot);
        for line in [
            "runnel_leader_partitions 6",
            "runnel_follower_partitions 12",
            "runnel_under_replicated_partitions 2",
            "runnel_under_min_isr_partitions 1",
            "runnel_leader_max_follower_lag_messages 900",
            "runnel_isr_shrinks_total 3",
            "runnel_isr_expands_total 2",
            "runnel_isr_change_failures_total 1",
            "runnel_replica_messages_in_total 40",
            "runnel_replica_bytes_in_total 4096",
            "runnel_replica_fetch_partition_errors_total 7",
            "runnel_replica_fetcher_requests_failed_total{api=\"Fetch\"} 5",
            "runnel_replica_fetcher_requests_failed_total{api=\"OffsetForLeaderEpoch\"} 0",
            "runnel_replica_fetcher_requests_failed_total{api=\"ListOffsets\"} 1",
            "runnel_replica_fetch_latency_seconds{quantile=\"0.5\"} 0.002",
            "runnel_replica_fetch_latency_seconds_count 1",
            "# TYPE runnel_under_replicated_partitions gauge",
            "# TYPE runnel_isr_shrinks_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        // A broker that never fetched still shows the summary's heading, with no samples.
        let mut out = String::new();
        render(&mut out, &Snapshot::default());
        assert!(out.contains("# TYPE runnel_replica_fetch_latency_seconds summary"));
        assert!(!out.contains("runnel_replica_fetch_latency_seconds_count"));
        assert!(out
            .lines()
            .any(|l| l == "runnel_under_replicated_partitions 0"));
    }
}
