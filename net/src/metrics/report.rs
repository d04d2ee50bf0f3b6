//! Reading the admin port's `/metrics` back, for people: `runnelctl stats` prints the broker's
//! latency summaries as a table in milliseconds, the log cleaner's figures per compacted
//! partition as another, then the other counters and gauges.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The body of `GET /metrics` from the admin port at `admin` (`host:port`).
pub fn fetch(admin: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(admin)
        .map_err(|e| format!("cannot reach the admin port {admin}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n")
        .map_err(|e| format!("sending to {admin}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading from {admin}: {e}"))?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!(
            "unexpected answer from {admin}: {}",
            response.lines().next().unwrap_or("(nothing)")
        )),
    }
}

/// One summary's figures.
#[derive(Debug, Default)]
struct Summary {
    count: u64,
    /// Quantile (as written) -> seconds.
    quantiles: BTreeMap<String, f64>,
}

/// The quantiles the table shows, as the exposition writes them.
const SHOWN: [&str; 5] = ["0.5", "0.95", "0.99", "0.999", "0.9999"];

/// Formats Prometheus text (as the admin port serves it) for a terminal: one row per latency
/// summary (count and quantiles in milliseconds), then every other sample as it is.
pub fn table(text: &str) -> String {
    let mut summaries: BTreeMap<(String, String), Summary> = BTreeMap::new();
    let mut cleaned: BTreeMap<String, [Option<String>; 6]> = BTreeMap::new();
    let mut others = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let (mut kept, mut quantile) = (Vec::new(), None);
        for label in split_labels(labels) {
            match label.strip_prefix("quantile=") {
                Some(q) => quantile = Some(q.trim_matches('"').to_owned()),
                None => kept.push(label),
            }
        }
        let labels = kept.join(",");
        if let Some(column) = super::compaction::column(name) {
            cleaned.entry(labels).or_default()[column] = Some(value.to_owned());
        } else if let Some(q) = quantile {
            let seconds = value.parse().unwrap_or(f64::NAN);
            let key = (name.to_owned(), labels);
            summaries
                .entry(key)
                .or_default()
                .quantiles
                .insert(q, seconds);
        } else if let Some(base) = name.strip_suffix("_count") {
            let key = (base.to_owned(), labels);
            summaries.entry(key).or_default().count = value.parse().unwrap_or(0);
        } else if !name.ends_with("_sum") {
            others.push(line.to_owned());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<60} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p95", "p99", "p99.9", "p99.99"
    );
    for ((name, labels), summary) in &summaries {
        let short = name
            .trim_start_matches("runnel_")
            .trim_end_matches("_seconds");
        let series = if labels.is_empty() {
            short.to_owned()
        } else {
            format!("{short}{{{labels}}}")
        };
        let _ = write!(out, "{series:<60} {:>10}", summary.count);
        for q in SHOWN {
            match summary.quantiles.get(q) {
                Some(seconds) => {
                    let _ = write!(out, " {:>9.3}", seconds * 1e3);
                }
                None => {
                    let _ = write!(out, " {:>9}", "-");
                }
            }
        }
        out.push('\n');
    }
    if !cleaned.is_empty() {
        compaction_table(&mut out, &cleaned);
    }
    if !others.is_empty() {
        out.push('\n');
        for line in others {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The cleaner's figures, one row per compacted partition ("-": not known yet).
fn compaction_table(out: &mut String, rows: &BTreeMap<String, [Option<String>; 6]>) {
    let _ = write!(out, "\n{:<60}", "compaction");
    for heading in super::compaction::HEADINGS {
        let _ = write!(out, " {heading:>12}");
    }
    out.push('\n');
    for (partition, values) in rows {
        let _ = write!(out, "{partition:<60}");
        for value in values {
            let _ = write!(out, " {:>12}", value.as_deref().unwrap_or("-"));
        }
        out.push('\n');
    }
}

/// Splits `a="x",b="y,z"` at the commas between labels (not those inside quotes).
fn split_labels(labels: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in labels.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

    use runnel_engine::log::compaction::CleanerStats;

    use super::super::compaction::Compaction;
    use super::super::prometheus::{render, PartitionMetrics};
    use super::super::{Snapshot, TopicCounters};
    use super::*;

    #[test]
    fn the_rendered_metrics_read_back_as_a_table() {
        let mut snapshot = Snapshot::default();
        let mut produce = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for micros in 1..=1000 {
            produce.record(micros).unwrap(); // 1 µs .. 1 ms
        }
        snapshot.requests.insert((0, 9), produce);
        let mut sync = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        sync.record(250).unwrap();
        snapshot.sync = Some(sync);
        snapshot.topics.insert(
            "a,b\"c".into(),
            TopicCounters {
                messages_in: 7,
                bytes_in: 70,
                bytes_out: 0,
            },
        );
        snapshot.connections = 3;
        let watermarks = [
            PartitionMetrics {
                topic: "t".into(),
                partition: 0,
                high_watermark: 42,
                compaction: None,
            },
            PartitionMetrics {
                topic: "keyed".into(),
                partition: 1,
                high_watermark: 9,
                compaction: Some(Compaction {
                    dirty_ratio: Some(0.5),
                    stats: CleanerStats {
                        runs: 3,
                        bytes_read: 2000,
                        bytes_written: 700,
                        records_removed: 12,
                        last_clean_ms: Some(5),
                    },
                    seconds_since_last_clean: Some(2.25),
                }),
            },
        ];
        let text = table(&render(&snapshot, &watermarks));
        let row = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} row in\n{text}"))
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let produce = row("request_latency{api=\"Produce\",version=\"9\"}");
        assert_eq!(produce[0], "1000", "count");
        let p50: f64 = produce[1].parse().unwrap();
        let p99: f64 = produce[3].parse().unwrap();
        assert!((0.49..=0.51).contains(&p50), "{text}");
        assert!((0.98..=1.0).contains(&p99), "{text}");
        let fsync = row("fsync_latency ");
        assert_eq!(fsync[0], "1");
        assert!(fsync[1].starts_with("0.25"), "{text}");
        assert!(
            text.contains("runnel_messages_in_total{topic=\"a,b\\\"c\"} 7"),
            "{text}"
        );
        assert!(text.contains("runnel_partition_high_watermark{topic=\"t\",partition=\"0\"} 42"));
        assert!(text.contains("runnel_connections 3"));
        let cleaned = row("topic=\"keyed\",partition=\"1\"");
        assert_eq!(cleaned, ["0.5", "3", "2000", "700", "12", "2.25"], "{text}");
        assert!(
            !text.contains("runnel_cleaner_runs_total"),
            "the cleaner's figures are in their table: {text}"
        );
        assert!(!text.contains("_sum"), "sums are left out");
    }

    #[test]
    fn labels_split_outside_quotes_only() {
        assert_eq!(
            split_labels(r#"topic="a,b",quantile="0.5""#),
            vec![r#"topic="a,b""#.to_owned(), r#"quantile="0.5""#.to_owned()]
        );
        assert_eq!(split_labels(""), Vec::<String>::new());
    }
}
