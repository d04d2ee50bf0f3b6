//! Every topic config Kafka 3.9 defines (LogConfig, TopicConfig), plus Runnel's own
//! `flush.policy` and `flush.bytes`: type, default, valid values, the broker configs that
//! supply its default (Kafka's ServerTopicConfigSynonyms, highest priority first), and what
//! Runnel does with it ([`Effect`]).
//!
//! Accepted, not yet acted on (stored, validated and reported, but without effect, because
//! Runnel lacks the feature; see [`Effect::NotYet`]): `file.delete.delay.ms`,
//! `flush.messages`, `follower.replication.throttled.replicas`,
//! `leader.replication.throttled.replicas`, `local.retention.bytes`, `local.retention.ms`,
//! `message.downconversion.enable`, `message.timestamp.after.max.ms`,
//! `message.timestamp.before.max.ms`, `message.timestamp.difference.max.ms`,
//! `remote.log.copy.disable`, `remote.log.delete.on.disable`, `segment.jitter.ms`.
//! `message.format.version` is deprecated and ignored, as
//! Kafka 3.x ignores it ([`Effect::Ignored`]).
//!
//! Values Runnel refuses although Kafka takes them, because accepting them would pretend:
//! `remote.storage.enable=true` (no tiered storage: Kafka refuses it too when its broker has
//! none), `min.insync.replicas` above 1 on a lone broker (a single replica could never satisfy
//! acks=all; a cluster takes it).

use super::schema::{Check, ConfigDef, ConfigType};

/// What Runnel does with a topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Governs the topic's log.
    Applied,
    /// Accepted and reported; the feature it tunes is not implemented yet.
    NotYet,
    /// Deprecated in Kafka and ignored there too.
    Ignored,
}

/// A broker config that supplies a topic config's default. `ms_per_unit` converts its value to
/// the topic config's unit (`log.retention.hours` is in hours, `retention.ms` in ms).
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: Option<&'static str>,
    pub ms_per_unit: i64,
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub def: ConfigDef,
    pub synonyms: &'static [Synonym],
    pub effect: Effect,
}

const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// Compression codecs a topic may ask for (Kafka's BrokerCompressionType).
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

const fn syn(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
) -> Synonym {
    Synonym {
        name,
        config_type,
        default,
        ms_per_unit: 1,
    }
}

const fn topic(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    check: Check,
    synonyms: &'static [Synonym],
    effect: Effect,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        def: ConfigDef {
            name,
            config_type,
            default: Some(default),
            check,
            doc,
        },
        synonyms,
        effect,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Effect::{Applied, Ignored, NotYet};

/// Every topic config, sorted by name (a test checks).
#[rustfmt::skip]
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic("cleanup.policy", List, "delete", Check::ListOf(&["compact", "delete"]),
        &[syn("log.cleanup.policy", List, Some("delete"))], Applied,
        "How old records are cleaned up: 'delete' removes old segments by retention.ms and retention.bytes; 'compact' keeps only the newest record of each key (records without a key are refused); both do both; an empty list keeps everything."),
    topic("compression.gzip.level", Int, "-1", Check::DefaultOrBetween(1, 9),
        &[syn("compression.gzip.level", Int, Some("-1"))], Applied,
        "Level of the gzip codec when compression.type is gzip (-1: the codec's default)."),
    topic("compression.lz4.level", Int, "9", Check::Between(1, 17),
        &[syn("compression.lz4.level", Int, Some("9"))], Applied,
        "Level of the lz4 codec when compression.type is lz4."),
    topic("compression.type", Str, "producer", Check::OneOf(COMPRESSION_TYPES),
        &[syn("compression.type", Str, Some("producer"))], Applied,
        "Codec the topic stores batches in: 'producer' keeps each batch as sent; a codec (or 'uncompressed') makes the broker rewrite batches sent in another codec."),
    topic("compression.zstd.level", Int, "3", Check::Between(-131072, 22),
        &[syn("compression.zstd.level", Int, Some("3"))], Applied,
        "Level of the zstd codec when compression.type is zstd."),
    topic("delete.retention.ms", Long, "86400000", Check::AtLeast(0),
        &[syn("log.cleaner.delete.retention.ms", Long, Some("86400000"))], Applied,
        "How long a tombstone (a keyed record with a null value) stays readable on a compacted topic after the cleaner first reaches it, so consumers catching up see the delete."),
    topic("file.delete.delay.ms", Long, "60000", Check::AtLeast(0),
        &[syn("log.segment.delete.delay.ms", Long, Some("60000"))], NotYet,
        "Delay before a deleted segment's files are removed (accepted; Runnel removes them at once)."),
    topic("flush.bytes", Long, "-1", Check::OffOrPositive,
        &[syn("log.flush.bytes", Long, Some("-1"))], Applied,
        "Runnel: under flush.policy=interval, also sync once this many bytes are unsynced (-1: off)."),
    topic("flush.messages", Long, LONG_MAX, Check::AtLeast(1),
        &[syn("log.flush.interval.messages", Long, Some(LONG_MAX))], NotYet,
        "Messages between forced syncs (accepted; Runnel syncs by flush.policy, flush.ms and flush.bytes)."),
    topic("flush.ms", Long, "100", Check::AtLeast(0),
        &[syn("log.flush.interval.ms", Long, Some("100"))], Applied,
        "Runnel: under flush.policy=interval, the longest an append waits to be synced (Kafka's default is never)."),
    topic("flush.policy", Str, "interval", Check::OneOf(&["always", "interval", "never"]),
        &[syn("log.flush.policy", Str, Some("interval"))], Applied,
        "Runnel: 'always' acknowledges after fdatasync (group commit), 'interval' syncs by flush.ms / flush.bytes, 'never' leaves it to the OS."),
    topic("follower.replication.throttled.replicas", List, "", Check::ThrottledReplicas, &[], NotYet,
        "Replicas whose follower-side replication is throttled (accepted; Runnel has no replication throttling)."),
    topic("index.interval.bytes", Int, "4096", Check::AtLeast(0),
        &[syn("log.index.interval.bytes", Int, Some("4096"))], Applied,
        "Log bytes between entries of the sparse offset index."),
    topic("leader.replication.throttled.replicas", List, "", Check::ThrottledReplicas, &[], NotYet,
        "Replicas whose leader-side replication is throttled (accepted; Runnel has no replication throttling)."),
    topic("local.retention.bytes", Long, "-2", Check::AtLeast(-2),
        &[syn("log.local.retention.bytes", Long, Some("-2"))], NotYet,
        "Local retention by size for tiered topics (accepted; Runnel has no tiered storage)."),
    topic("local.retention.ms", Long, "-2", Check::AtLeast(-2),
        &[syn("log.local.retention.ms", Long, Some("-2"))], NotYet,
        "Local retention by time for tiered topics (accepted; Runnel has no tiered storage)."),
    topic("max.compaction.lag.ms", Long, LONG_MAX, Check::AtLeast(1),
        &[syn("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX))], Applied,
        "Longest a record stays uncompacted on a compacted topic: older dirty records make the log cleanable whatever its dirty ratio."),
    topic("max.message.bytes", Int, "1048588", Check::AtLeast(0),
        &[syn("message.max.bytes", Int, Some("1048588"))], Applied,
        "Largest record batch the topic accepts (after recompression, when compression.type asks for it)."),
    topic("message.downconversion.enable", Boolean, "true", Check::Any,
        &[syn("log.message.downconversion.enable", Boolean, Some("true"))], NotYet,
        "Whether old fetch versions get converted batches (accepted; Runnel serves RecordBatch v2 only)."),
    topic("message.format.version", Str, "3.0-IV1", Check::KafkaVersion,
        &[syn("log.message.format.version", Str, Some("3.0-IV1"))], Ignored,
        "Deprecated: ignored, as Kafka 3.x ignores it (every batch is RecordBatch v2)."),
    topic("message.timestamp.after.max.ms", Long, LONG_MAX, Check::AtLeast(0),
        &[syn("log.message.timestamp.after.max.ms", Long, Some(LONG_MAX))], NotYet,
        "How far ahead of the broker's clock a CreateTime timestamp may be (accepted; not enforced yet)."),
    topic("message.timestamp.before.max.ms", Long, LONG_MAX, Check::AtLeast(0),
        &[syn("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX))], NotYet,
        "How far behind the broker's clock a CreateTime timestamp may be (accepted; not enforced yet)."),
    topic("message.timestamp.difference.max.ms", Long, LONG_MAX, Check::AtLeast(0),
        &[syn("log.message.timestamp.difference.max.ms", Long, Some(LONG_MAX))], NotYet,
        "Deprecated bound on a timestamp's distance from the broker's clock (accepted; not enforced)."),
    topic("message.timestamp.type", Str, "CreateTime", Check::OneOf(&["CreateTime", "LogAppendTime"]),
        &[syn("log.message.timestamp.type", Str, Some("CreateTime"))], Applied,
        "Whether batches keep the producer's CreateTime or are stamped with the broker's LogAppendTime."),
    topic("min.cleanable.dirty.ratio", Double, "0.5", Check::Ratio,
        &[syn("log.cleaner.min.cleanable.ratio", Double, Some("0.5"))], Applied,
        "Share of a compacted log's bytes not yet compacted (dirty) at which the cleaner compacts it."),
    topic("min.compaction.lag.ms", Long, "0", Check::AtLeast(0),
        &[syn("log.cleaner.min.compaction.lag.ms", Long, Some("0"))], Applied,
        "Shortest time a record stays uncompacted on a compacted topic (superseded records younger than this are kept)."),
    topic("min.insync.replicas", Int, "1", Check::AtLeast(1),
        &[syn("min.insync.replicas", Int, Some("1"))], Applied,
        "Replicas that must acknowledge an acks=all write; a single broker has one, so only 1 is accepted."),
    topic("preallocate", Boolean, "false", Check::Any,
        &[syn("log.preallocate", Boolean, Some("false"))], Applied,
        "Reserve segment space ahead of the writes with fallocate."),
    topic("remote.log.copy.disable", Boolean, "false", Check::Any, &[], NotYet,
        "Stop copying segments to tiered storage (accepted; Runnel has no tiered storage)."),
    topic("remote.log.delete.on.disable", Boolean, "false", Check::Any, &[], NotYet,
        "Delete tiered data when tiering is disabled (accepted; Runnel has no tiered storage)."),
    topic("remote.storage.enable", Boolean, "false", Check::Any, &[], NotYet,
        "Tiered storage for the topic; Runnel has none, so only false is accepted."),
    topic("retention.bytes", Long, "-1", Check::Any,
        &[syn("log.retention.bytes", Long, Some("-1"))], Applied,
        "Oldest segments are deleted while a partition is larger than this (-1: no limit)."),
    topic("retention.ms", Long, "604800000", Check::AtLeast(-1),
        &[
            syn("log.retention.ms", Long, None),
            Synonym { name: "log.retention.minutes", config_type: Int, default: None, ms_per_unit: MINUTE_MS },
            Synonym { name: "log.retention.hours", config_type: Int, default: Some("168"), ms_per_unit: HOUR_MS },
        ],
        Applied,
        "Segments whose newest record is older than this are deleted (-1: keep forever)."),
    topic("segment.bytes", Int, "1073741824", Check::AtLeast(14),
        &[syn("log.segment.bytes", Int, Some("1073741824"))], Applied,
        "Size at which a partition rolls to a new segment."),
    topic("segment.index.bytes", Int, "10485760", Check::AtLeast(4),
        &[syn("log.index.size.max.bytes", Int, Some("10485760"))], Applied,
        "Size of a segment's offset index; a full index rolls the segment."),
    topic("segment.jitter.ms", Long, "0", Check::AtLeast(0),
        &[
            syn("log.roll.jitter.ms", Long, None),
            Synonym { name: "log.roll.jitter.hours", config_type: Int, default: Some("0"), ms_per_unit: HOUR_MS },
        ],
        NotYet,
        "Random delay subtracted from segment.ms (accepted; Runnel rolls without jitter)."),
    topic("segment.ms", Long, "604800000", Check::AtLeast(1),
        &[
            syn("log.roll.ms", Long, None),
            Synonym { name: "log.roll.hours", config_type: Int, default: Some("168"), ms_per_unit: HOUR_MS },
        ],
        Applied,
        "Time after a segment's first append at which it rolls."),
    topic("unclean.leader.election.enable", Boolean, "false", Check::Any,
        &[syn("unclean.leader.election.enable", Boolean, Some("false"))], Applied,
        "Let an out-of-sync replica become leader (accepted; a single broker has no other replica)."),
];

/// The topic config named `name`.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|c| c.def.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(pair[0].def.name < pair[1].def.name, "{}", pair[1].def.name);
        }
        for config in TOPIC_CONFIGS {
            let default = config.def.default.unwrap();
            config.def.validate(default).unwrap();
            assert_eq!(
                topic_config(config.def.name).unwrap().def.name,
                config.def.name
            );
            for synonym in config.synonyms {
                // A synonym in the topic's unit supplies the topic's default.
                if synonym.ms_per_unit == 1 {
                    if let Some(d) = synonym.default {
                        assert_eq!(d, default, "{}", synonym.name);
                    }
                }
            }
        }
        assert!(topic_config("no.such.config").is_none());
    }

    #[test]
    #[rustfmt::skip]
    fn kafka_3_9_topic_configs_are_all_here() {
        let kafka = [
            "cleanup.policy", "compression.gzip.level", "compression.lz4.level",
            "compression.type", "compression.zstd.level", "delete.retention.ms",
            "file.delete.delay.ms", "flush.messages", "flush.ms",
            "follower.replication.throttled.replicas", "index.interval.bytes",
            "leader.replication.throttled.replicas", "local.retention.bytes",
            "local.retention.ms", "max.compaction.lag.ms", "max.message.bytes",
            "message.downconversion.enable", "message.format.version",
            "message.timestamp.after.max.ms", "message.timestamp.before.max.ms",
            "message.timestamp.difference.max.ms", "message.timestamp.type",
            "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas",
            "preallocate", "remote.log.copy.disable", "remote.log.delete.on.disable",
            "remote.storage.enable", "retention.bytes", "retention.ms", "segment.bytes",
            "segment.index.bytes", "segment.jitter.ms", "segment.ms",
            "unclean.leader.election.enable",
        ];
        for name in kafka {
            assert!(topic_config(name).is_some(), "{name}");
        }
        assert_eq!(TOPIC_CONFIGS.len(), kafka.len() + 2, "plus flush.policy and flush.bytes");
    }
}
