//! Topic configs by Kafka's names, validated and turned into the log's settings.

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::TimestampType;
use runnel_engine::log::LogConfig;

/// Kafka's config types, as DescribeConfigs reports them.
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const LIST: i8 = 7;
}

/// The topic configs this broker understands, with their defaults and types. Others are
/// refused (INVALID_CONFIG), so a typo never passes silently.
pub const DEFAULTS: &[(&str, &str, i8)] = &[
    ("cleanup.policy", "delete", config_type::LIST),
    ("flush.bytes", "-1", config_type::LONG),
    ("flush.ms", "100", config_type::LONG),
    ("flush.policy", "interval", config_type::STRING),
    ("index.interval.bytes", "4096", config_type::INT),
    ("max.message.bytes", "1048588", config_type::INT),
    ("message.timestamp.type", "CreateTime", config_type::STRING),
    ("min.insync.replicas", "1", config_type::INT),
    ("preallocate", "false", config_type::BOOLEAN),
    ("retention.bytes", "-1", config_type::LONG),
    ("retention.ms", "604800000", config_type::LONG),
    ("segment.bytes", "1073741824", config_type::INT),
    ("segment.index.bytes", "10485760", config_type::INT),
    ("segment.ms", "604800000", config_type::LONG),
];

/// Whether `key` is a topic config this broker knows.
pub fn is_known(key: &str) -> bool {
    DEFAULTS.iter().any(|(k, _, _)| *k == key)
}

/// The configs in force for a topic: the broker's `[topic_defaults]`, overridden by the
/// topic's own.
pub fn effective(
    broker_defaults: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = broker_defaults.clone();
    all.extend(topic.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// Builds the log settings for a topic: built-in defaults, then the given configs.
pub fn log_config(configs: &BTreeMap<String, String>) -> Result<LogConfig, String> {
    let mut config = LogConfig::default();
    let get = |key: &str| configs.get(key).map(String::as_str);
    for key in configs.keys() {
        if !is_known(key) {
            return Err(format!("unknown topic config {key:?}"));
        }
    }
    let number = |key: &str| -> Result<Option<i64>, String> {
        get(key)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{key}={v:?} is not a number"))
            })
            .transpose()
    };
    let positive = |key: &str| -> Result<Option<u64>, String> {
        match number(key)? {
            Some(n) if n > 0 => Ok(Some(n as u64)),
            Some(n) => Err(format!("{key}={n} must be positive")),
            None => Ok(None),
        }
    };
    if let Some(v) = positive("segment.bytes")? {
        if v < 14 {
            return Err(format!("segment.bytes={v} is below 14"));
        }
        config.segment_bytes = v;
    }
    if let Some(v) = positive("segment.ms")? {
        config.segment_ms = Duration::from_millis(v);
    }
    if let Some(v) = positive("segment.index.bytes")? {
        config.segment_index_bytes = v as usize;
    }
    if let Some(v) = number("index.interval.bytes")? {
        config.index_interval_bytes = usize::try_from(v)
            .map_err(|_| "index.interval.bytes must not be negative".to_string())?;
    }
    if let Some(v) = positive("max.message.bytes")? {
        config.max_message_bytes = v as usize;
    }
    match get("message.timestamp.type") {
        None | Some("CreateTime") => {}
        Some("LogAppendTime") => config.timestamp_type = TimestampType::LogAppendTime,
        Some(other) => {
            return Err(format!(
                "message.timestamp.type={other:?} is not CreateTime or LogAppendTime"
            ))
        }
    }
    match number("retention.ms")? {
        None => {}
        Some(-1) => config.retention_ms = None,
        Some(ms) if ms >= 0 => config.retention_ms = Some(Duration::from_millis(ms as u64)),
        Some(ms) => return Err(format!("retention.ms={ms} must be -1 or at least 0")),
    }
    match number("retention.bytes")? {
        None | Some(-1) => {}
        Some(bytes) if bytes >= 0 => config.retention_bytes = Some(bytes as u64),
        Some(bytes) => return Err(format!("retention.bytes={bytes} must be -1 or at least 0")),
    }
    let flush_ms = positive("flush.ms")?;
    let flush_bytes = match number("flush.bytes")? {
        None | Some(-1) => None,
        Some(n) if n > 0 => Some(n as u64),
        Some(n) => return Err(format!("flush.bytes={n} must be -1 or positive")),
    };
    if let Some(policy) = get("flush.policy") {
        config.flush = FlushPolicy::from_settings(policy, flush_ms, flush_bytes)?;
    } else if flush_ms.is_some() || flush_bytes.is_some() {
        config.flush = FlushPolicy::from_settings("interval", flush_ms, flush_bytes)?;
    }
    match get("preallocate") {
        None | Some("false") => {}
        Some("true") => config.preallocate_bytes = 16 << 20,
        Some(other) => return Err(format!("preallocate={other:?} is not true or false")),
    }
    match get("cleanup.policy") {
        // Compaction is not implemented yet: "compact" is refused rather than ignored.
        None | Some("delete") => {}
        Some(other) => {
            return Err(format!(
                "cleanup.policy={other:?} is not supported (only delete)"
            ))
        }
    }
    if let Some(n) = number("min.insync.replicas")? {
        if n != 1 {
            return Err(format!(
                "min.insync.replicas={n}: a single broker has one replica"
            ));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ]))
        .unwrap();
        assert_eq!(config.segment_bytes, 1 << 20);
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.retention_bytes, Some(5_000_000));
        assert_eq!(config.flush, FlushPolicy::Always);
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.max_message_bytes, 2_000_000);
        assert_eq!(log_config(&BTreeMap::new()).unwrap(), LogConfig::default());
    }

    #[test]
    fn the_advertised_defaults_are_the_real_ones() {
        let defaults: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v, _)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(log_config(&defaults).unwrap(), LogConfig::default());
    }

    #[test]
    fn bad_configs_are_refused_with_their_name() {
        for (key, value) in [
            ("segment.bytes", "big"),
            ("segment.bytes", "-3"),
            ("retention.ms", "-7"),
            ("flush.policy", "sometimes"),
            ("cleanup.policy", "compact"),
            ("no.such.config", "1"),
            ("message.timestamp.type", "Now"),
        ] {
            let err = log_config(&configs(&[(key, value)])).unwrap_err();
            assert!(
                err.contains(key) || err.contains(value),
                "{key}={value}: {err}"
            );
        }
    }
}
