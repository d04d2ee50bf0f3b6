//! What the log cleaner did to each compacted partition, for `/metrics`: how dirty the log
//! is, passes, bytes read and written, records removed, and how long ago the last pass ended.
//! Counters count since the partition's log opened (a restart starts them again, which
//! Prometheus' `rate` handles as any counter reset).

use std::fmt::Write;

use runnel_engine::log::compaction::CleanerStats;
use runnel_engine::log::Log;

use super::prometheus::{escape, PartitionMetrics};

/// One compacted partition's cleaner figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// Share of the log's bytes not yet compacted (`None` until the engine can tell).
    pub dirty_ratio: Option<f64>,
    pub stats: CleanerStats,
    /// Seconds from the end of the last pass to the scrape; `None` before the first.
    pub seconds_since_last_clean: Option<f64>,
}

impl Compaction {
    /// The figures of `log` at wall-clock time `now_ms`; `None` unless its `cleanup.policy`
    /// has `compact`.
    pub fn of(log: &Log, now_ms: i64) -> Option<Compaction> {
        if !log.config().cleanup_policy.compact {
            return None;
        }
        let stats = log.cleaner_stats();
        Some(Compaction {
            dirty_ratio: log.dirty_ratio(),
            stats,
            seconds_since_last_clean: stats
                .last_clean_ms
                .map(|at| now_ms.saturating_sub(at).max(0) as f64 / 1e3),
        })
    }
}

/// One metric: name, help, type, and its value for a partition (`None`: no sample).
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Compaction) -> Option<f64>,
);

const METRICS: [Metric; 6] = [
    (
        "runnel_partition_dirty_ratio",
        "Share of a compacted partition's log bytes not yet compacted (min.cleanable.dirty.ratio is compared with it).",
        "gauge",
        |c| c.dirty_ratio,
    ),
    (
        "runnel_cleaner_runs_total",
        "Cleaner passes over a compacted partition since its log opened.",
        "counter",
        |c| Some(c.stats.runs as f64),
    ),
    (
        "runnel_cleaner_bytes_read_total",
        "Segment bytes the cleaner read from a partition (the offset map's scan and the rewrite).",
        "counter",
        |c| Some(c.stats.bytes_read as f64),
    ),
    (
        "runnel_cleaner_bytes_written_total",
        "Bytes of the cleaned segments the cleaner wrote for a partition.",
        "counter",
        |c| Some(c.stats.bytes_written as f64),
    ),
    (
        "runnel_cleaner_records_removed_total",
        "Records the cleaner removed from a partition: superseded, expired tombstones.",
        "counter",
        |c| Some(c.stats.records_removed as f64),
    ),
    (
        "runnel_cleaner_seconds_since_last_clean",
        "Seconds since the cleaner last finished a pass over a partition (absent before the first).",
        "gauge",
        |c| c.seconds_since_last_clean,
    ),
];

/// Headings of [`METRICS`]' values, in order, for `runnelctl stats`' table.
pub(super) const HEADINGS: [&str; 6] = ["dirty", "runs", "read", "written", "removed", "since (s)"];

/// The column of metric `name` in [`HEADINGS`], if it is one of the cleaner's.
pub(super) fn column(name: &str) -> Option<usize> {
    METRICS.iter().position(|m| m.0 == name)
}

/// Appends the cleaner's metrics of every compacted partition in `partitions`.
pub(super) fn render(out: &mut String, partitions: &[PartitionMetrics]) {
    for (name, help, kind, value) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in partitions {
            let Some(value) = p.compaction.as_ref().and_then(value) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{}\"}} {value}",
                escape(&p.topic),
                p.partition
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic: &str, compaction: Option<Compaction>) -> PartitionMetrics {
        PartitionMetrics {
            topic: topic.into(),
            partition: 3,
            high_watermark: 10,
            compaction,
        }
    }

    #[test]
    fn compacted_partitions_only() {
        let cleaned = Compaction {
            dirty_ratio: Some(0.25),
            stats: CleanerStats {
                runs: 2,
                bytes_read: 4096,
                bytes_written: 1024,
                records_removed: 90,
                last_clean_ms: Some(1_000),
            },
            seconds_since_last_clean: Some(1.5),
        };
        let never = Compaction {
            dirty_ratio: None,
            stats: CleanerStats::default(),
            seconds_since_last_clean: None,
        };
        let mut out = String::new();
        render(
            &mut out,
            &[
                partition("c", Some(cleaned)),
                partition("fresh", Some(never)),
                partition("plain", None),
            ],
        );
        for line in [
            "runnel_partition_dirty_ratio{topic=\"c\",partition=\"3\"} 0.25",
            "runnel_cleaner_runs_total{topic=\"c\",partition=\"3\"} 2",
            "runnel_cleaner_bytes_read_total{topic=\"c\",partition=\"3\"} 4096",
            "runnel_cleaner_bytes_written_total{topic=\"c\",partition=\"3\"} 1024",
            "runnel_cleaner_records_removed_total{topic=\"c\",partition=\"3\"} 90",
            "runnel_cleaner_seconds_since_last_clean{topic=\"c\",partition=\"3\"} 1.5",
            "runnel_cleaner_runs_total{topic=\"fresh\",partition=\"3\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(
            !out.contains("plain"),
            "not compacted: no cleaner figures\n{out}"
        );
        assert!(
            !out.contains("dirty_ratio{topic=\"fresh\"")
                && !out.contains("since_last_clean{topic=\"fresh\""),
            "unknown figures are left out\n{out}"
        );
    }
}
