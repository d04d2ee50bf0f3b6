//! The broker-level configs in force, by where they come from (Kafka's precedence, highest
//! first): set for this broker at run time (DYNAMIC_BROKER_CONFIG), set for every broker at
//! run time (DYNAMIC_DEFAULT_BROKER_CONFIG, the resource named ""), the config file
//! (STATIC_BROKER_CONFIG), built-in defaults (DEFAULT_CONFIG).
//!
//! The dynamic ones persist in `<data_dir>/broker_configs.toml`, replaced atomically on every
//! change, so they survive a restart as Kafka's (kept in its metadata log) do.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use runnel_engine::rt;
use serde::{Deserialize, Serialize};

use super::broker_defs::broker_config;

const FILE: &str = "broker_configs.toml";

/// The configs set at run time (broker names, e.g. `log.retention.ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    /// For every broker (the resource named "").
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
    /// For one broker, by its id.
    #[serde(default)]
    pub brokers: BTreeMap<String, BTreeMap<String, String>>,
}

impl DynamicConfigs {
    /// Reads `<data_dir>/broker_configs.toml` (none yet: nothing set).
    pub fn load(data_dir: &Path) -> io::Result<DynamicConfigs> {
        match std::fs::read_to_string(data_dir.join(FILE)) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{FILE}: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DynamicConfigs::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes `<data_dir>/broker_configs.toml` atomically and durably, off the shard's thread.
    pub async fn save(&self, data_dir: &Path) -> io::Result<()> {
        let text = toml::to_string(self).map_err(io::Error::other)?;
        rt::fs::replace_atomically(data_dir, FILE, text.into_bytes()).await
    }
}

/// Where a value comes from (DescribeConfigsResponse's ConfigSource ids).
pub mod source {
    pub const TOPIC: i8 = 1;
    pub const DYNAMIC_BROKER: i8 = 2;
    pub const DYNAMIC_DEFAULT_BROKER: i8 = 3;
    pub const STATIC_BROKER: i8 = 4;
    pub const DEFAULT: i8 = 5;
}

/// Every broker-level config of this broker, by source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerConfigs {
    pub node_id: i32,
    /// The config file's `[topic_defaults]` (topic names): the static values of the log
    /// defaults.
    pub static_topic_defaults: BTreeMap<String, String>,
    /// The config file's other settings, by Kafka's broker names (`num.partitions`, ...).
    pub static_settings: BTreeMap<String, String>,
    pub dynamic: DynamicConfigs,
}

impl BrokerConfigs {
    /// A static broker setting read as a number (the config file's value, checked at start).
    pub fn static_number(&self, name: &str) -> Option<i64> {
        self.static_parsed(name)
    }

    /// A static broker setting read as a `T` (a bool, a double, ...).
    pub fn static_parsed<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.static_settings.get(name)?.parse().ok()
    }

    /// The dynamic configs set for this broker alone.
    pub fn per_broker(&self) -> Option<&BTreeMap<String, String>> {
        self.dynamic.brokers.get(&self.node_id.to_string())
    }

    /// The static (config file) value of broker config `name`.
    pub fn static_value(&self, name: &str) -> Option<&str> {
        let topic = broker_config(name).and_then(|c| c.topic_name());
        match topic {
            Some(topic) => self.static_topic_defaults.get(topic),
            None => self.static_settings.get(name),
        }
        .map(String::as_str)
    }

    /// Every value broker config `name` has, highest precedence first, with its source.
    pub fn values_of(&self, name: &str) -> Vec<(String, i8)> {
        let mut found = Vec::with_capacity(4);
        if let Some(v) = self.per_broker().and_then(|m| m.get(name)) {
            found.push((v.clone(), source::DYNAMIC_BROKER));
        }
        if let Some(v) = self.dynamic.cluster.get(name) {
            found.push((v.clone(), source::DYNAMIC_DEFAULT_BROKER));
        }
        if let Some(v) = self.static_value(name) {
            found.push((v.to_owned(), source::STATIC_BROKER));
        }
        if let Some(v) = broker_config(name).and_then(|c| c.def.default) {
            found.push((v.to_owned(), source::DEFAULT));
        }
        found
    }

    /// The topic configs (topic names) for topics that don't set them: the config file's
    /// `[topic_defaults]`, under the cluster-wide dynamic log defaults, under this broker's.
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        let mut all = self.static_topic_defaults.clone();
        let layers = [Some(&self.dynamic.cluster), self.per_broker()];
        for layer in layers.into_iter().flatten() {
            for (name, value) in layer {
                if let Some(topic) = broker_config(name).and_then(|c| c.topic_name()) {
                    all.insert(topic.to_owned(), value.clone());
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn configs() -> BrokerConfigs {
        BrokerConfigs {
            node_id: 3,
            static_topic_defaults: map(&[("retention.ms", "1000"), ("segment.bytes", "2000")]),
            static_settings: map(&[("num.partitions", "4")]),
            dynamic: DynamicConfigs {
                cluster: map(&[("log.retention.ms", "3000"), ("log.roll.ms", "9")]),
                brokers: [
                    ("3".to_string(), map(&[("log.retention.ms", "5000")])),
                    ("4".to_string(), map(&[("log.segment.bytes", "1")])),
                ]
                .into(),
            },
        }
    }

    #[test]
    fn precedence_is_kafkas() {
        let c = configs();
        assert_eq!(
            c.values_of("log.retention.ms"),
            vec![
                ("5000".to_string(), source::DYNAMIC_BROKER),
                ("3000".to_string(), source::DYNAMIC_DEFAULT_BROKER),
                ("1000".to_string(), source::STATIC_BROKER),
            ]
        );
        assert_eq!(
            c.values_of("log.retention.hours"),
            vec![("168".to_string(), source::DEFAULT)]
        );
        assert_eq!(
            c.values_of("num.partitions")[0],
            ("4".to_string(), source::STATIC_BROKER)
        );
        let defaults = c.topic_defaults();
        assert_eq!(defaults["retention.ms"], "5000");
        assert_eq!(defaults["segment.ms"], "9");
        assert_eq!(
            defaults["segment.bytes"], "2000",
            "another broker's setting is not ours"
        );
    }

    #[test]
    fn broker_cleaner_defaults_reach_topics_that_set_nothing() {
        let c = BrokerConfigs {
            static_topic_defaults: map(&[("delete.retention.ms", "1000")]),
            dynamic: DynamicConfigs {
                cluster: map(&[
                    ("log.cleanup.policy", "compact"),
                    ("log.cleaner.min.cleanable.ratio", "0.01"),
                    ("log.cleaner.min.compaction.lag.ms", "5"),
                    ("log.cleaner.max.compaction.lag.ms", "60000"),
                ]),
                brokers: BTreeMap::new(),
            },
            ..BrokerConfigs::default()
        };
        let defaults = c.topic_defaults();
        let log = crate::partitions::topic_config::log_config(&defaults).unwrap();
        assert_eq!(
            log.cleanup_policy,
            runnel_engine::log::CleanupPolicy::COMPACT
        );
        assert_eq!(log.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(log.min_compaction_lag_ms, 5);
        assert_eq!(log.max_compaction_lag_ms, 60_000);
        assert_eq!(log.delete_retention_ms, 1000);
        // A topic's own policy wins over the broker's.
        let topic = map(&[("cleanup.policy", "delete")]);
        let effective = crate::partitions::topic_config::effective(&defaults, &topic);
        let log = crate::partitions::topic_config::log_config(&effective).unwrap();
        assert_eq!(
            log.cleanup_policy,
            runnel_engine::log::CleanupPolicy::DELETE
        );
    }

    #[test]
    fn saves_and_loads() {
        let dir =
            std::env::temp_dir().join(format!("runnel-broker-configs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            DynamicConfigs::load(&dir).unwrap(),
            DynamicConfigs::default()
        );
        let dynamic = configs().dynamic;
        let config = rt::RuntimeConfig {
            cores: 1,
            pin_threads: false,
            ..rt::RuntimeConfig::default()
        };
        let runtime = rt::Runtime::start(config, |_| async {}).unwrap();
        let (saved, path) = (dynamic.clone(), dir.clone());
        runtime
            .handle()
            .run_on(0, move || async move { saved.save(&path).await.unwrap() })
            .unwrap();
        runtime.join().unwrap();
        assert_eq!(DynamicConfigs::load(&dir).unwrap(), dynamic);
        std::fs::write(dir.join(FILE), "cluster = 5").unwrap();
        assert!(DynamicConfigs::load(&dir).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
