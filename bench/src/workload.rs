//! Workload files: what a benchmark run does, in TOML, after OpenMessaging Benchmark's workload
//! files (topics, partitions, message size, producers and consumers per topic, producer rate)
//! with the producer settings a Kafka client would take (acks, batch size, linger).
//!
//! ```toml
//! name = "1-topic-1-partition-1kb"
//! topics = 1
//! partitions_per_topic = 1
//! message_size = 1024
//! producers_per_topic = 1
//! consumers_per_topic = 1
//! producer_rate = 10000          # messages per second over all producers; 0 = as fast as possible
//! acks = 1
//! batch_size = 16384             # bytes per partition batch before it is sent
//! linger_ms = 1
//! warmup_seconds = 5
//! duration_seconds = 60
//! key_distribution = "none"      # none | round-robin | random
//! compression = "none"           # none | gzip | snappy | lz4 | zstd
//! consumer_group = false         # consumers share a consumer group (Kafka's group protocol)
//! find_max_rate = false          # search for the highest rate the broker sustains first
//! ```
//!
//! A round trip (`scenario = "round-trip"`) takes `clients`, `messages_per_request` and
//! `client_interval_ms` (0: each client sends its next request as soon as the last one came
//! back; otherwise one request per client per interval, measured from when it was due).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::compression::Codec;

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Producers send a stream of messages (at `producer_rate`), consumers read them.
    Stream,
    /// `clients` clients each send `messages_per_request` messages in one request and wait
    /// until all of them have been consumed, then go again: the round trip of a request
    /// carried over Kafka (the "100 concurrent requests" scenario).
    RoundTrip,
}

/// Which key each message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    /// No key: the producer spreads messages over partitions itself.
    None,
    /// Keys cycle through the partitions' numbers.
    RoundRobin,
    /// A random key per message.
    Random,
}

/// One benchmark run's shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "scenario_default")]
    pub scenario: Scenario,
    /// Round trip: concurrent clients.
    #[serde(default = "clients_default")]
    pub clients: usize,
    /// Round trip: messages each request carries.
    #[serde(default = "messages_per_request_default")]
    pub messages_per_request: usize,
    /// Round trip: a client starts a request every this many milliseconds (0: back to back).
    #[serde(default)]
    pub client_interval_ms: u64,
    #[serde(default = "one")]
    pub topics: usize,
    #[serde(default = "one")]
    pub partitions_per_topic: usize,
    /// Bytes of each message's value (at least the 16-byte timestamp header).
    pub message_size: usize,
    #[serde(default = "one")]
    pub producers_per_topic: usize,
    /// Consumers per topic, each reading its share of the partitions (0: produce only).
    #[serde(default = "one")]
    pub consumers_per_topic: usize,
    /// The consumers of a topic join one consumer group and read the partitions the group
    /// assigns them (committing their offsets), instead of being given partitions.
    #[serde(default)]
    pub consumer_group: bool,
    /// Before the measured run, search for the highest producer rate the broker sustains
    /// (published and consumed in full, without a growing backlog); the run then uses it.
    #[serde(default)]
    pub find_max_rate: bool,
    /// Messages per second over all producers; 0 runs as fast as the broker takes them.
    #[serde(default)]
    pub producer_rate: u64,
    #[serde(default = "acks_default")]
    pub acks: i16,
    /// Bytes a partition's batch collects before it is sent.
    #[serde(default = "batch_size_default")]
    pub batch_size: usize,
    /// How long a partition's batch may wait for more messages.
    #[serde(default = "linger_default")]
    pub linger_ms: u64,
    /// Produce requests a producer keeps in flight (Kafka's
    /// `max.in.flight.requests.per.connection`).
    #[serde(default = "in_flight_default")]
    pub max_in_flight: usize,
    #[serde(default = "key_default")]
    pub key_distribution: KeyDistribution,
    /// With `random` keys: how many distinct keys there are (0: every message its own), so a
    /// compacted topic has values to supersede.
    #[serde(default)]
    pub key_space: u64,
    /// Replicas of each partition (a cluster's brokers; the bootstrap broker leads them all).
    #[serde(default = "replication_factor_default")]
    pub replication_factor: i16,
    /// Topic configs the benchmark's topics are created with (e.g. `cleanup.policy`).
    #[serde(default)]
    pub topic_configs: std::collections::BTreeMap<String, String>,
    /// The codec producers compress their batches with.
    #[serde(default)]
    pub compression: Codec,
    #[serde(default)]
    pub warmup_seconds: u64,
    pub duration_seconds: u64,
}

fn one() -> usize {
    1
}
fn replication_factor_default() -> i16 {
    1
}
fn scenario_default() -> Scenario {
    Scenario::Stream
}
fn clients_default() -> usize {
    100
}
fn messages_per_request_default() -> usize {
    3
}
fn acks_default() -> i16 {
    1
}
fn batch_size_default() -> usize {
    16 * 1024
}
fn linger_default() -> u64 {
    1
}
fn in_flight_default() -> usize {
    5
}
fn key_default() -> KeyDistribution {
    KeyDistribution::None
}

/// Bytes every message value starts with: the intended send time and the producer's
/// sequence, so consumers can measure end-to-end latency.
pub const MESSAGE_HEADER: usize = 16;

impl Workload {
    pub fn load(path: &Path) -> Result<Workload, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Workload, String> {
        let workload: Workload = toml::from_str(text).map_err(|e| e.to_string())?;
        workload.validate()?;
        Ok(workload)
    }

    fn validate(&self) -> Result<(), String> {
        if self.topics == 0 || self.partitions_per_topic == 0 || self.producers_per_topic == 0 {
            return Err(
                "topics, partitions_per_topic and producers_per_topic must be at least 1".into(),
            );
        }
        if self.message_size < MESSAGE_HEADER {
            return Err(format!(
                "message_size must be at least {MESSAGE_HEADER} bytes"
            ));
        }
        if !(-1..=1).contains(&self.acks) {
            return Err(format!("acks must be -1, 0 or 1, not {}", self.acks));
        }
        if self.replication_factor < 1 {
            return Err(format!(
                "replication_factor must be at least 1, not {}",
                self.replication_factor
            ));
        }
        if self.acks == 0 && self.consumers_per_topic == 0 {
            return Err("acks = 0 without consumers measures nothing".into());
        }
        if self.max_in_flight == 0 || self.batch_size == 0 {
            return Err("max_in_flight and batch_size must be at least 1".into());
        }
        if self.scenario == Scenario::RoundTrip
            && (self.clients == 0 || self.messages_per_request == 0 || self.acks == 0)
        {
            return Err("a round trip needs clients, messages_per_request >= 1 and acks".into());
        }
        if self.find_max_rate && self.scenario == Scenario::RoundTrip {
            return Err("find_max_rate applies to streams, not round trips".into());
        }
        if self.consumer_group && self.scenario == Scenario::RoundTrip {
            return Err(
                "round-trip consumers are plain consumers; consumer_group applies to streams"
                    .into(),
            );
        }
        if self.duration_seconds == 0 {
            return Err("duration_seconds must be at least 1".into());
        }
        Ok(())
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_seconds)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }

    /// Each producer's share of the rate, in messages per second (0: unthrottled).
    pub fn rate_per_producer(&self) -> f64 {
        self.producer_rate as f64 / (self.topics * self.producers_per_topic) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_a_file_leaves_out() {
        let w =
            Workload::parse("name = \"x\"\nmessage_size = 1024\nduration_seconds = 10\n").unwrap();
        assert_eq!(w.topics, 1);
        assert_eq!(w.partitions_per_topic, 1);
        assert_eq!(w.producers_per_topic, 1);
        assert_eq!(w.consumers_per_topic, 1);
        assert_eq!(w.producer_rate, 0);
        assert_eq!(w.acks, 1);
        assert_eq!(w.batch_size, 16 * 1024);
        assert_eq!(w.linger_ms, 1);
        assert_eq!(w.key_distribution, KeyDistribution::None);
        assert_eq!(w.key_space, 0);
        assert!(w.topic_configs.is_empty());
        assert_eq!(w.compression, Codec::None);
        assert!(!w.consumer_group && !w.find_max_rate);
        assert_eq!(w.client_interval_ms, 0);
        assert_eq!(w.warmup(), Duration::ZERO);
        assert_eq!(w.duration(), Duration::from_secs(10));
    }

    #[test]
    fn every_setting_is_read() {
        let w = Workload::parse(
            r#"
            name = "full"
            topics = 2
            partitions_per_topic = 100
            message_size = 3072
            producers_per_topic = 4
            consumers_per_topic = 2
            producer_rate = 10000
            acks = -1
            batch_size = 1048576
            linger_ms = 5
            max_in_flight = 3
            key_distribution = "round-robin"
            compression = "zstd"
            consumer_group = true
            find_max_rate = true
            warmup_seconds = 3
            duration_seconds = 30
            "#,
        )
        .unwrap();
        assert_eq!(
            (w.topics, w.partitions_per_topic, w.message_size),
            (2, 100, 3072)
        );
        assert_eq!((w.producers_per_topic, w.consumers_per_topic), (4, 2));
        assert_eq!(
            (w.producer_rate, w.acks, w.batch_size),
            (10_000, -1, 1 << 20)
        );
        assert_eq!((w.linger_ms, w.max_in_flight), (5, 3));
        assert_eq!(w.key_distribution, KeyDistribution::RoundRobin);
        assert_eq!(w.compression, Codec::Zstd);
        assert!(w.consumer_group && w.find_max_rate);
        assert_eq!(w.rate_per_producer(), 1250.0);
        let w = Workload::parse(
            "name = \"rt\"\nscenario = \"round-trip\"\nmessage_size = 3072\nclients = 7\nmessages_per_request = 2\nclient_interval_ms = 10\nduration_seconds = 5\n",
        )
        .unwrap();
        assert_eq!(w.scenario, Scenario::RoundTrip);
        assert_eq!(
            (w.clients, w.messages_per_request, w.client_interval_ms),
            (7, 2, 10)
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        let base = "name = \"x\"\nduration_seconds = 1\n";
        for (extra, reason) in [
            ("message_size = 8\n", "message_size"),
            ("message_size = 100\nacks = 2\n", "acks"),
            ("message_size = 100\ntopics = 0\n", "topics"),
            ("message_size = 100\nbogus = 1\n", "bogus"),
            ("message_size = 100\nkey_distribution = \"zipf\"\n", "zipf"),
            ("message_size = 100\ncompression = \"brotli\"\n", "brotli"),
            (
                "message_size = 100\nscenario = \"round-trip\"\nfind_max_rate = true\n",
                "find_max_rate",
            ),
        ] {
            let err = Workload::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(err.contains(reason), "{extra:?}: {err}");
        }
    }

    #[test]
    fn the_shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Workload::load(&path).unwrap();
                count += 1;
            }
        }
        assert!(count >= 3, "bench/workloads has the standard workloads");
    }
}
