//! The Prometheus text exposition format (version 0.0.4) of a [`Snapshot`] (replication's
//! figures included, [`super::replication`]), plus each partition's high watermark and, for
//! compacted ones, the cleaner's figures.

use std::fmt::Write;

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

use super::compaction::{self, Compaction};
use super::replication;
use super::Snapshot;

const QUANTILES: [(f64, &str); 6] = [
    (0.5, "0.5"),
    (0.75, "0.75"),
    (0.95, "0.95"),
    (0.99, "0.99"),
    (0.999, "0.999"),
    (0.9999, "0.9999"),
];

/// A partition's figures: its high watermark (`runnel_partition_high_watermark`) and, if it
/// is compacted, its cleaner's ([`super::compaction`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionMetrics {
    pub topic: String,
    pub partition: usize,
    pub high_watermark: i64,
    pub compaction: Option<Compaction>,
}

/// Label values escaped as the format asks (backslash, quote, newline).
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| key.to_string(), |k| format!("{k:?}"))
}

/// A summary: quantiles in seconds, `_sum` and `_count`.
pub(super) fn summary(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (q, text) in QUANTILES {
        let seconds = h.value_at_quantile(q) as f64 / 1e6;
        let _ = writeln!(out, "{name}{{{labels}{sep}quantile=\"{text}\"}} {seconds}");
    }
    let sum: f64 = h
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
        .sum::<f64>()
        / 1e6;
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {}", h.len());
}

pub fn render(snapshot: &Snapshot, partitions: &[PartitionMetrics]) -> String {
    let mut out = String::new();
    out.push_str("# HELP runnel_request_latency_seconds Time from a decoded request to its response, per API and version.\n");
    out.push_str("# TYPE runnel_request_latency_seconds summary\n");
    for ((key, version), h) in &snapshot.requests {
        let labels = format!("api=\"{}\",version=\"{version}\"", api_name(*key));
        summary(&mut out, "runnel_request_latency_seconds", &labels, h);
    }
    out.push_str(
        "# HELP runnel_append_latency_seconds One partition append of a produce request.\n",
    );
    out.push_str("# TYPE runnel_append_latency_seconds summary\n");
    if let Some(h) = &snapshot.append {
        summary(&mut out, "runnel_append_latency_seconds", "", h);
    }
    for (name, help, h) in [
        (
            "runnel_fsync_latency_seconds",
            "One group-commit round's fdatasyncs (flush.policy always, interval flushes, rolls).",
            &snapshot.sync,
        ),
        (
            "runnel_log_write_latency_seconds",
            "One append's write into the page cache.",
            &snapshot.write,
        ),
        (
            "runnel_request_queueing_seconds",
            "A decoded request waiting for its connection's earlier requests.",
            &snapshot.queueing,
        ),
        (
            "runnel_response_send_seconds",
            "A ready response being written to its socket.",
            &snapshot.send,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        if let Some(h) = h {
            summary(&mut out, name, "", h);
        }
    }
    for (name, help, pick) in [
        (
            "runnel_messages_in_total",
            "Messages appended, per topic.",
            0,
        ),
        (
            "runnel_bytes_in_total",
            "Record bytes appended, per topic.",
            1,
        ),
        (
            "runnel_bytes_out_total",
            "Record bytes sent in fetch responses, per topic.",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (topic, c) in &snapshot.topics {
            let value = [c.messages_in, c.bytes_in, c.bytes_out][pick];
            let _ = writeln!(out, "{name}{{topic=\"{}\"}} {value}", escape(topic));
        }
    }
    out.push_str("# HELP runnel_partition_high_watermark The high watermark of each partition.\n");
    out.push_str("# TYPE runnel_partition_high_watermark gauge\n");
    for p in partitions {
        let _ = writeln!(
            out,
            "runnel_partition_high_watermark{{topic=\"{}\",partition=\"{}\"}} {}",
            escape(&p.topic),
            p.partition,
            p.high_watermark
        );
    }
    compaction::render(&mut out, partitions);
    replication::render(&mut out, snapshot);
    out.push_str("# HELP runnel_connections Open client connections.\n");
    out.push_str("# TYPE runnel_connections gauge\n");
    let _ = writeln!(out, "runnel_connections {}", snapshot.connections);
    queued_request_bytes(&mut out, &crate::conn_limits::queued::QUEUED_REQUEST_BYTES);
    out
}

/// The broker-wide `queued.max.request.bytes` pool: in use now, the most ever, and the cap.
fn queued_request_bytes(out: &mut String, pool: &crate::conn_limits::queued::QueuedRequestBytes) {
    let gauges = [
        (
            "runnel_queued_request_bytes",
            "Bytes of request frames read and not yet answered.",
            Some(pool.used()),
        ),
        (
            "runnel_queued_request_bytes_peak",
            "The most runnel_queued_request_bytes has been since start.",
            Some(pool.peak()),
        ),
        (
            "runnel_queued_request_bytes_cap",
            "queued.max.request.bytes (absent: no cap).",
            pool.cap(),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::TopicCounters;

    #[test]
    fn renders_summaries_counters_and_gauges() {
        let mut snapshot = Snapshot::default();
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in [100, 200, 300, 400] {
            h.record(us).unwrap();
        }
        snapshot.requests.insert((0, 9), h.clone());
        snapshot.append = Some(h);
        snapshot.topics.insert(
            "a\"b".into(),
            TopicCounters {
                messages_in: 4,
                bytes_in: 4096,
                bytes_out: 1024,
            },
        );
        snapshot.connections = 3;
        let text = render(
            &snapshot,
            &[PartitionMetrics {
                topic: "t".into(),
                partition: 1,
                high_watermark: 42,
                compaction: None,
            }],
        );
        assert!(text.contains("runnel_request_latency_seconds{api=\"Produce\",version=\"9\",quantile=\"0.5\"} 0.0002"), "{text}");
        assert!(
            text.contains("runnel_request_latency_seconds_count{api=\"Produce\",version=\"9\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("runnel_append_latency_seconds_count 4"),
            "{text}"
        );
        assert!(
            text.contains("runnel_messages_in_total{topic=\"a\\\"b\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("runnel_bytes_out_total{topic=\"a\\\"b\"} 1024"),
            "{text}"
        );
        assert!(
            text.contains("runnel_partition_high_watermark{topic=\"t\",partition=\"1\"} 42"),
            "{text}"
        );
        assert!(text.contains("runnel_connections 3"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(
                value.parse::<f64>().is_ok(),
                "a number ends every sample: {line}"
            );
        }
    }
}
