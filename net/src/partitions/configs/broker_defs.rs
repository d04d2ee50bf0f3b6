//! The broker configs DescribeConfigs reports and AlterConfigs may change on a BROKER resource:
//! every broker synonym of a topic config (the `log.*` defaults), and the broker's other
//! settings, read-only (they come from its config file).
//!
//! Which are dynamic follows Kafka 3.9's DynamicLogConfig: the first synonym of each topic
//! config (`log.retention.ms`, but not `log.retention.hours`), except the deprecated
//! `log.message.format.version`. `num.partitions` and `default.replication.factor` are static
//! in Kafka too.

use super::schema::{Check, ConfigDef, ConfigType};
use super::topic_defs::{TopicConfigDef, TOPIC_CONFIGS};

/// One broker config.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    pub def: ConfigDef,
    /// May be changed with AlterConfigs / IncrementalAlterConfigs.
    pub dynamic: bool,
    /// The topic config whose default this supplies, and its place among that config's
    /// synonyms (0: the one read first, in the topic config's unit).
    pub topic: Option<(&'static TopicConfigDef, usize)>,
}

impl BrokerConfigDef {
    /// The topic config this sets directly (same unit), if it is a dynamic log default.
    pub fn topic_name(&self) -> Option<&'static str> {
        match self.topic {
            Some((topic, 0)) => Some(topic.def.name),
            _ => None,
        }
    }

    /// The broker configs naming the same setting, highest priority first (Kafka's
    /// `brokerConfigSynonyms`: log.retention.ms, log.retention.minutes, log.retention.hours).
    pub fn synonyms(&self) -> Vec<&'static str> {
        match self.topic {
            Some((topic, _)) => topic.synonyms.iter().map(|s| s.name).collect(),
            None => vec![self.def.name],
        }
    }
}

const fn fixed(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        check: Check::Any,
        doc,
    }
}

/// The broker's own settings (read-only here), with Kafka's defaults.
#[rustfmt::skip]
pub static STATIC_BROKER_CONFIGS: &[ConfigDef] = &[
    fixed("advertised.listeners", ConfigType::String, None, "host:port clients are told to connect to."),
    fixed("auto.create.topics.enable", ConfigType::Boolean, Some("true"), "Create topics that Metadata requests name."),
    fixed("broker.id", ConfigType::Int, Some("-1"), "This broker's id."),
    fixed("connections.max.idle.ms", ConfigType::Long, Some("600000"), "Idle connections are closed after this long."),
    fixed("default.replication.factor", ConfigType::Int, Some("1"), "Replicas of auto-created topics (a single broker: 1)."),
    fixed("listeners", ConfigType::String, Some("PLAINTEXT://:9092"), "Address the broker listens on."),
    fixed("log.dirs", ConfigType::String, None, "The data directory."),
    fixed("max.connections.per.ip", ConfigType::Int, Some("2147483647"), "Open connections allowed from one address."),
    fixed("node.id", ConfigType::Int, Some("-1"), "This broker's id."),
    fixed("num.partitions", ConfigType::Int, Some("1"), "Partitions of topics created without a count, or auto-created."),
    fixed("producer.id.expiration.ms", ConfigType::Int, Some("86400000"), "An idempotent producer that has not appended to a partition for this long is forgotten there."),
    fixed("log.retention.check.interval.ms", ConfigType::Long, Some("30000"), "How often retention runs and expired producers are forgotten."),
    fixed("log.cleaner.enable", ConfigType::Boolean, Some("true"), "Run the log cleaner, which compacts topics whose cleanup.policy has compact."),
    fixed("log.cleaner.dedupe.buffer.size", ConfigType::Long, Some("134217728"), "Memory for the cleaners' offset maps, shared evenly by the shards (Kafka: by the cleaner threads)."),
    fixed("log.cleaner.io.max.bytes.per.second", ConfigType::Double, Some("1.7976931348623157E308"), "The cleaners' read and write rate, shared evenly by the shards."),
    fixed("log.cleaner.backoff.ms", ConfigType::Long, Some("15000"), "How long a cleaner waits when no log needs cleaning."),
    fixed("offsets.topic.num.partitions", ConfigType::Int, Some("50"), "Partitions of __consumer_offsets."),
    fixed("offsets.topic.segment.bytes", ConfigType::Int, Some("104857600"), "segment.bytes of __consumer_offsets when it is created."),
    fixed("queued.max.request.bytes", ConfigType::Long, Some("-1"), "Bytes of requests read but not yet answered (-1: no cap)."),
    fixed("socket.request.max.bytes", ConfigType::Int, Some("104857600"), "Largest request accepted."),
];

/// The broker config named `name`.
pub fn broker_config(name: &str) -> Option<BrokerConfigDef> {
    all().into_iter().find(|c| c.def.name == name)
}

/// Every broker config: the topic configs' synonyms, then the static settings.
pub fn all() -> Vec<BrokerConfigDef> {
    let mut configs = Vec::with_capacity(64);
    for topic in TOPIC_CONFIGS {
        for (i, synonym) in topic.synonyms.iter().enumerate() {
            configs.push(BrokerConfigDef {
                def: ConfigDef {
                    name: synonym.name,
                    config_type: synonym.config_type,
                    default: synonym.default,
                    // In the topic config's unit, its own check applies; in hours or minutes
                    // (read-only), none is needed.
                    check: if i == 0 { topic.def.check } else { Check::Any },
                    doc: topic.def.doc,
                },
                dynamic: i == 0 && synonym.name != "log.message.format.version",
                topic: Some((topic, i)),
            });
        }
    }
    configs.extend(STATIC_BROKER_CONFIGS.iter().map(|def| BrokerConfigDef {
        def: *def,
        dynamic: false,
        topic: None,
    }));
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_log_defaults_follow_kafka() {
        let dynamic = |name: &str| broker_config(name).unwrap().dynamic;
        for name in [
            "log.retention.ms",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.roll.ms",
            "log.flush.interval.ms",
            "log.flush.interval.messages",
            "log.cleanup.policy",
            "log.message.timestamp.type",
            "compression.type",
            "message.max.bytes",
            "log.flush.policy",
            "log.flush.bytes",
            "min.insync.replicas",
            "log.cleaner.min.cleanable.ratio",
            "log.cleaner.delete.retention.ms",
            "log.cleaner.min.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
        ] {
            assert!(dynamic(name), "{name}");
        }
        for (broker, topic) in [
            ("log.cleanup.policy", "cleanup.policy"),
            (
                "log.cleaner.min.cleanable.ratio",
                "min.cleanable.dirty.ratio",
            ),
            ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
            ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
            ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
        ] {
            assert_eq!(broker_config(broker).unwrap().topic_name(), Some(topic));
        }
        for name in [
            "log.retention.hours",
            "log.retention.minutes",
            "log.roll.hours",
            "log.message.format.version",
            "num.partitions",
            "default.replication.factor",
            "log.dirs",
            "node.id",
        ] {
            assert!(!dynamic(name), "{name}");
        }
        assert!(broker_config("no.such.config").is_none());
        let hours = broker_config("log.retention.hours").unwrap();
        assert_eq!(
            hours.synonyms(),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(hours.topic_name(), None);
        assert_eq!(
            broker_config("log.retention.ms").unwrap().topic_name(),
            Some("retention.ms")
        );
    }

    #[test]
    fn names_are_unique() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|c| c.def.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
