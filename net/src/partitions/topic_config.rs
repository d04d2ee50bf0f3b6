//! A topic's configs (Kafka's names) checked against the catalogue
//! ([`configs::topic_defs`](super::configs::topic_defs)) and turned into its log's settings.

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::{Compression, TimestampType};
use runnel_engine::log::{CleanupPolicy, LogConfig, TopicCompression};

use super::configs::schema::list_items;
use super::configs::topic_defs::topic_config;

/// The configs in force for a topic: the broker's defaults (its config file's
/// `[topic_defaults]` under its dynamic log defaults), overridden by the topic's own.
pub fn effective(
    broker_defaults: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = broker_defaults.clone();
    all.extend(topic.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// Checks every config as Kafka does (known name, type, range, valid values; an unknown name
/// is refused, so a typo never passes silently), then the combinations and the values Runnel
/// cannot honour; the error is the message INVALID_CONFIG carries.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in configs {
        let config =
            topic_config(key).ok_or_else(|| format!("Unknown topic config name: {key}"))?;
        config.def.validate(value)?;
    }
    let long = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i64>().ok());
    if let (Some(min), Some(max)) = (
        long("min.compaction.lag.ms").or(Some(0)),
        long("max.compaction.lag.ms").or(Some(i64::MAX)),
    ) {
        if min > max {
            return Err(format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            ));
        }
    }
    if configs
        .get("remote.storage.enable")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err("remote.storage.enable=true: you have to enable remote storage via remote.log.storage.system.enable on the broker side; this broker has no tiered storage".into());
    }
    if let Some(n) = long("min.insync.replicas").filter(|&n| n != 1) {
        if !super::authority::in_cluster() {
            return Err(format!(
                "min.insync.replicas={n}: a single broker has one replica"
            ));
        }
    }
    Ok(())
}

/// The topic's `min.insync.replicas` (validated configs; 1 when unset).
pub fn min_insync_replicas(configs: &BTreeMap<String, String>) -> i32 {
    configs
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// Builds the log settings for a topic: built-in defaults, then the given configs (checked
/// with [`validate`] first). Configs Runnel does not act on yet are checked and ignored here.
pub fn log_config(configs: &BTreeMap<String, String>) -> Result<LogConfig, String> {
    validate(configs)?;
    let mut config = LogConfig::default();
    let get = |key: &str| configs.get(key).map(|v| v.trim());
    // Validated above: every number parses and is in range.
    let number = |key: &str| get(key).and_then(|v| v.parse::<i64>().ok());
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    if let Some(v) = number("segment.bytes") {
        config.segment_bytes = as_u64(v);
    }
    if let Some(v) = number("segment.ms") {
        config.segment_ms = Duration::from_millis(as_u64(v));
    }
    if let Some(v) = number("segment.index.bytes") {
        config.segment_index_bytes = as_u64(v) as usize;
    }
    if let Some(v) = number("index.interval.bytes") {
        config.index_interval_bytes = as_u64(v) as usize;
    }
    if let Some(v) = number("max.message.bytes") {
        config.max_message_bytes = as_u64(v) as usize;
    }
    if get("message.timestamp.type") == Some("LogAppendTime") {
        config.timestamp_type = TimestampType::LogAppendTime;
    }
    match number("retention.ms") {
        Some(-1) => config.retention_ms = None,
        Some(ms) => config.retention_ms = Some(Duration::from_millis(as_u64(ms))),
        None => {}
    }
    // Kafka treats any negative retention.bytes as no limit.
    if let Some(bytes) = number("retention.bytes") {
        config.retention_bytes = u64::try_from(bytes).ok();
    }
    if let Some(policy) = get("cleanup.policy") {
        config.cleanup_policy = cleanup_policy(policy);
    }
    // Without "delete" in cleanup.policy (compact alone, or an empty list), nothing is
    // removed by retention, whatever retention.ms and retention.bytes say (as in Kafka).
    if !config.cleanup_policy.delete {
        config.retention_ms = None;
        config.retention_bytes = None;
    }
    if let Some(ratio) = get("min.cleanable.dirty.ratio").and_then(|v| v.parse::<f64>().ok()) {
        config.min_cleanable_dirty_ratio = ratio;
    }
    if let Some(ms) = number("min.compaction.lag.ms") {
        config.min_compaction_lag_ms = ms;
    }
    if let Some(ms) = number("max.compaction.lag.ms") {
        config.max_compaction_lag_ms = ms;
    }
    if let Some(ms) = number("delete.retention.ms") {
        config.delete_retention_ms = ms;
    }
    let flush_ms = number("flush.ms").map(as_u64);
    let flush_bytes = number("flush.bytes").filter(|&n| n > 0).map(as_u64);
    if let Some(policy) = get("flush.policy") {
        config.flush = FlushPolicy::from_settings(policy, flush_ms, flush_bytes)?;
    } else if flush_ms.is_some() || flush_bytes.is_some() {
        config.flush = FlushPolicy::from_settings("interval", flush_ms, flush_bytes)?;
    }
    if get("preallocate").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        config.preallocate_bytes = 16 << 20;
    }
    config.compression = compression(configs);
    Ok(config)
}

/// `cleanup.policy` (validated already): which of `delete` and `compact` the list names.
fn cleanup_policy(value: &str) -> CleanupPolicy {
    let items = list_items(value);
    CleanupPolicy {
        delete: items.contains(&"delete"),
        compact: items.contains(&"compact"),
    }
}

/// `compression.type` with the level of its codec (validated already).
fn compression(configs: &BTreeMap<String, String>) -> TopicCompression {
    let level = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i32>().ok());
    let (codec, level) = match configs.get("compression.type").map(|v| v.trim()) {
        None | Some("producer") => return TopicCompression::Producer,
        Some("gzip") => (
            Compression::Gzip,
            level("compression.gzip.level").filter(|&l| l != -1),
        ),
        Some("lz4") => (
            Compression::Lz4,
            Some(level("compression.lz4.level").unwrap_or(9)),
        ),
        Some("zstd") => (Compression::Zstd, level("compression.zstd.level")),
        Some("snappy") => (Compression::Snappy, None),
        Some(_) => (Compression::None, None), // "uncompressed", the only other valid value
    };
    TopicCompression::Codec { codec, level }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::configs::topic_defs::TOPIC_CONFIGS;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_names_map_onto_the_log() {
        let config = log_config(&configs(&[
            ("segment.bytes", "1048576"),
            ("retention.ms", "-1"),
            ("retention.bytes", "5000000"),
            ("flush.policy", "always"),
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "2000000"),
            ("compression.type", "zstd"),
            ("compression.zstd.level", "7"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "100"),
            ("max.compaction.lag.ms", "60000"),
            ("delete.retention.ms", "1000"),
        ]))
        .unwrap();
        assert_eq!(config.segment_bytes, 1 << 20);
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.retention_bytes, Some(5_000_000));
        assert_eq!(config.flush, FlushPolicy::Always);
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.max_message_bytes, 2_000_000);
        assert_eq!(
            config.compression,
            TopicCompression::Codec {
                codec: Compression::Zstd,
                level: Some(7)
            }
        );
        assert_eq!(
            config.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(config.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(config.min_compaction_lag_ms, 100);
        assert_eq!(config.max_compaction_lag_ms, 60_000);
        assert_eq!(config.delete_retention_ms, 1000);
        assert_eq!(log_config(&BTreeMap::new()).unwrap(), LogConfig::default());
    }

    #[test]
    fn cleanup_policy_says_what_removes_old_records() {
        let policy = |value: &str| {
            let config = log_config(&configs(&[
                ("cleanup.policy", value),
                ("retention.ms", "5"),
            ]))
            .unwrap();
            (config.cleanup_policy, config.retention_ms.is_some())
        };
        assert_eq!(policy("delete"), (CleanupPolicy::DELETE, true));
        // Compacted alone, a topic keeps each key's newest record however old it is.
        assert_eq!(policy("compact"), (CleanupPolicy::COMPACT, false));
        assert_eq!(policy(" compact , delete "), (both(), true));
        assert_eq!(policy("delete,compact"), (both(), true));
        let neither = CleanupPolicy {
            delete: false,
            compact: false,
        };
        assert_eq!(policy(""), (neither, false));
        assert_eq!(
            log_config(&BTreeMap::new()).unwrap().cleanup_policy,
            CleanupPolicy::DELETE,
            "Kafka's default"
        );
    }

    fn both() -> CleanupPolicy {
        CleanupPolicy {
            delete: true,
            compact: true,
        }
    }

    #[test]
    fn every_compression_type_maps_to_its_codec() {
        let codec = |t: &str| {
            log_config(&configs(&[("compression.type", t)]))
                .unwrap()
                .compression
        };
        assert_eq!(codec("producer"), TopicCompression::Producer);
        assert_eq!(
            codec("uncompressed"),
            TopicCompression::Codec {
                codec: Compression::None,
                level: None
            }
        );
        assert_eq!(
            codec("gzip"),
            TopicCompression::Codec {
                codec: Compression::Gzip,
                level: None
            }
        );
        assert_eq!(
            codec("snappy"),
            TopicCompression::Codec {
                codec: Compression::Snappy,
                level: None
            }
        );
        assert_eq!(
            codec("lz4"),
            TopicCompression::Codec {
                codec: Compression::Lz4,
                level: Some(9)
            }
        );
        assert!(log_config(&configs(&[("compression.type", "brotli")])).is_err());
    }

    #[test]
    fn the_advertised_defaults_are_the_real_ones() {
        let defaults: BTreeMap<String, String> = TOPIC_CONFIGS
            .iter()
            .map(|c| (c.def.name.to_string(), c.def.default.unwrap().to_string()))
            .collect();
        let from_defaults = log_config(&defaults).unwrap();
        // lz4's level is only used under compression.type=lz4; the rest must match exactly.
        assert_eq!(from_defaults, LogConfig::default());
    }

    #[test]
    fn every_kafka_topic_config_is_accepted_at_a_valid_value() {
        for (key, value) in [
            ("delete.retention.ms", "1000"),
            ("file.delete.delay.ms", "0"),
            ("flush.messages", "10"),
            ("follower.replication.throttled.replicas", "0:0,1:0"),
            ("leader.replication.throttled.replicas", "*"),
            ("local.retention.bytes", "-2"),
            ("local.retention.ms", "1000"),
            ("max.compaction.lag.ms", "1000"),
            ("message.downconversion.enable", "false"),
            ("message.format.version", "2.8"),
            ("message.timestamp.after.max.ms", "1000"),
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.difference.max.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", "10"),
            ("remote.log.copy.disable", "true"),
            ("remote.log.delete.on.disable", "true"),
            ("remote.storage.enable", "false"),
            ("segment.jitter.ms", "10"),
            ("unclean.leader.election.enable", "true"),
            ("compression.gzip.level", "9"),
            ("compression.lz4.level", "17"),
            ("compression.zstd.level", "-5"),
            ("cleanup.policy", ""),
            ("cleanup.policy", "compact"),
            ("cleanup.policy", "compact,delete"),
            ("retention.bytes", "-5"),
        ] {
            log_config(&configs(&[(key, value)])).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        }
    }

    #[test]
    fn an_empty_cleanup_policy_turns_retention_off() {
        let config =
            log_config(&configs(&[("cleanup.policy", ""), ("retention.ms", "5")])).unwrap();
        assert_eq!((config.retention_ms, config.retention_bytes), (None, None));
    }

    #[test]
    fn bad_configs_are_refused_with_their_name() {
        for (key, value) in [
            ("segment.bytes", "big"),
            ("segment.bytes", "13"),
            ("retention.ms", "-7"),
            ("flush.policy", "sometimes"),
            ("cleanup.policy", "delete,shred"),
            ("cleanup.policy", "compaction"),
            ("no.such.config", "1"),
            ("message.timestamp.type", "Now"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "0"),
            ("compression.zstd.level", "23"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "-0.1"),
            ("min.cleanable.dirty.ratio", "half"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "-1"),
            ("preallocate", "maybe"),
            ("remote.storage.enable", "true"),
            ("min.insync.replicas", "2"),
            ("min.insync.replicas", "0"),
            ("message.format.version", "latest"),
            ("leader.replication.throttled.replicas", "x"),
        ] {
            let err = log_config(&configs(&[(key, value)])).unwrap_err();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
        let err = log_config(&configs(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]))
        .unwrap_err();
        assert!(err.contains("conflict"), "{err}");
    }
}
