//! What DescribeConfigs reports of a topic or of the broker, as Kafka's ConfigHelper builds it:
//! each config's value, its source (the first of its synonyms that has a value), whether it is
//! read-only, its type and documentation, and its synonyms: the topic's own value, then every
//! broker config that could supply it with each source that sets it (`retention.ms` on a fresh
//! broker: `log.retention.hours=168` from DEFAULT_CONFIG).

use std::collections::BTreeMap;

use super::broker_defs::{self, BrokerConfigDef};
use super::broker_state::{source, BrokerConfigs};
use super::topic_defs::TOPIC_CONFIGS;

/// One reported config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// `None`: Kafka's null (a broker config with no value and no default).
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub config_type: i8,
    pub doc: &'static str,
    pub synonyms: Vec<Synonym>,
}

/// One synonym of a reported config: a name, a value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: i8,
}

fn synonyms_of(broker: &BrokerConfigs, names: &[&str]) -> Vec<Synonym> {
    names
        .iter()
        .flat_map(|name| {
            broker
                .values_of(name)
                .into_iter()
                .map(|(value, source)| Synonym {
                    name: (*name).to_owned(),
                    value,
                    source,
                })
        })
        .collect()
}

/// Every topic config of a topic whose own settings are `topic`, in force under `broker`.
pub fn topic_entries(topic: &BTreeMap<String, String>, broker: &BrokerConfigs) -> Vec<Entry> {
    let defaults = broker.topic_defaults();
    TOPIC_CONFIGS
        .iter()
        .map(|config| {
            let name = config.def.name;
            let names: Vec<&str> = config.synonyms.iter().map(|s| s.name).collect();
            let mut synonyms = synonyms_of(broker, &names);
            // A topic-only config set in the config file's [topic_defaults] has no broker name.
            if names.is_empty() {
                if let Some(v) = broker.static_topic_defaults.get(name) {
                    synonyms.push(Synonym {
                        name: name.to_owned(),
                        value: v.clone(),
                        source: source::STATIC_BROKER,
                    });
                }
            }
            if let Some(v) = topic.get(name) {
                synonyms.insert(
                    0,
                    Synonym {
                        name: name.to_owned(),
                        value: v.clone(),
                        source: source::TOPIC,
                    },
                );
            }
            let value = topic
                .get(name)
                .or_else(|| defaults.get(name))
                .cloned()
                .or_else(|| config.def.default.map(str::to_owned));
            Entry {
                name: name.to_owned(),
                value,
                source: synonyms.first().map_or(source::DEFAULT, |s| s.source),
                read_only: false,
                config_type: config.def.config_type.id(),
                doc: config.def.doc,
                synonyms,
            }
        })
        .collect()
}

fn broker_entry(config: &BrokerConfigDef, broker: &BrokerConfigs, cluster_level: bool) -> Entry {
    let mut synonyms = synonyms_of(broker, &config.synonyms());
    if cluster_level {
        synonyms.retain(|s| s.source == source::DYNAMIC_DEFAULT_BROKER);
    }
    let value = broker
        .values_of(config.def.name)
        .into_iter()
        .next()
        .map(|(v, _)| v);
    Entry {
        name: config.def.name.to_owned(),
        value,
        source: synonyms.first().map_or(source::DEFAULT, |s| s.source),
        read_only: !config.dynamic,
        config_type: config.def.config_type.id(),
        doc: config.def.doc,
        synonyms,
    }
}

/// The broker resource: named by this broker's id, every broker config; named "" (the
/// cluster-wide defaults), only those set at that level, as Kafka reports them.
pub fn broker_entries(broker: &BrokerConfigs, cluster_level: bool) -> Vec<Entry> {
    let mut entries: Vec<Entry> = broker_defs::all()
        .iter()
        .filter(|c| !cluster_level || broker.dynamic.cluster.contains_key(c.def.name))
        .map(|c| broker_entry(c, broker, cluster_level))
        .collect();
    entries.extend(custom_entries(broker, cluster_level));
    entries
}

/// Dynamic configs this broker doesn't know (kept as set, acting on nothing): each with its
/// most specific value, as strings.
fn custom_entries(broker: &BrokerConfigs, cluster_level: bool) -> Vec<Entry> {
    let per_broker = broker.per_broker().filter(|_| !cluster_level);
    let mut custom: BTreeMap<&str, (&str, i8)> = BTreeMap::new();
    let cluster = broker.dynamic.cluster.iter();
    for (name, value) in cluster.filter(|(n, _)| broker_defs::broker_config(n).is_none()) {
        custom.insert(name, (value, source::DYNAMIC_DEFAULT_BROKER));
    }
    for (name, value) in per_broker.into_iter().flatten() {
        if broker_defs::broker_config(name).is_none() {
            custom.insert(name, (value, source::DYNAMIC_BROKER));
        }
    }
    custom
        .into_iter()
        .map(|(name, (value, source))| Entry {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            source,
            read_only: false,
            config_type: super::schema::ConfigType::String.id(),
            doc: "",
            synonyms: vec![Synonym {
                name: name.to_owned(),
                value: value.to_owned(),
                source,
            }],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::configs::broker_state::DynamicConfigs;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
        entries.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn a_fresh_topic_reports_defaults_with_kafkas_synonyms() {
        let entries = topic_entries(&BTreeMap::new(), &BrokerConfigs::default());
        assert_eq!(entries.len(), TOPIC_CONFIGS.len());
        let retention = find(&entries, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!(retention.source, source::DEFAULT);
        assert_eq!(
            retention.synonyms,
            vec![Synonym {
                name: "log.retention.hours".into(),
                value: "168".into(),
                source: source::DEFAULT
            }]
        );
        let policy = find(&entries, "cleanup.policy");
        assert_eq!((policy.config_type, policy.read_only), (7, false));
        let throttled = find(&entries, "leader.replication.throttled.replicas");
        assert!(throttled.synonyms.is_empty());
        assert_eq!(throttled.source, source::DEFAULT);
    }

    #[test]
    fn topic_values_come_from_the_highest_source() {
        let broker = BrokerConfigs {
            node_id: 1,
            static_topic_defaults: map(&[("retention.ms", "100")]),
            dynamic: DynamicConfigs {
                cluster: map(&[("log.retention.ms", "200")]),
                brokers: [("1".to_string(), map(&[("log.segment.bytes", "3000")]))].into(),
            },
            ..BrokerConfigs::default()
        };
        let entries = topic_entries(&map(&[("retention.ms", "50")]), &broker);
        let retention = find(&entries, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("50"));
        let sources: Vec<_> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("retention.ms", source::TOPIC),
                ("log.retention.ms", source::DYNAMIC_DEFAULT_BROKER),
                ("log.retention.ms", source::STATIC_BROKER),
                ("log.retention.hours", source::DEFAULT),
            ]
        );
        let segment = find(&entries, "segment.bytes");
        assert_eq!(
            (segment.value.as_deref(), segment.source),
            (Some("3000"), source::DYNAMIC_BROKER)
        );
        let entries = topic_entries(&BTreeMap::new(), &broker);
        let retention = find(&entries, "retention.ms");
        assert_eq!(
            (retention.value.as_deref(), retention.source),
            (Some("200"), source::DYNAMIC_DEFAULT_BROKER)
        );
    }

    #[test]
    fn broker_entries_per_broker_and_cluster_wide() {
        let broker = BrokerConfigs {
            dynamic: DynamicConfigs {
                cluster: map(&[("log.retention.ms", "200")]),
                ..DynamicConfigs::default()
            },
            ..BrokerConfigs::default()
        };
        let all = broker_entries(&broker, false);
        let hours = find(&all, "log.retention.hours");
        assert!(hours.read_only);
        assert_eq!(hours.value.as_deref(), Some("168"));
        let ms = find(&all, "log.retention.ms");
        assert!(!ms.read_only);
        assert_eq!(
            (ms.value.as_deref(), ms.source),
            (Some("200"), source::DYNAMIC_DEFAULT_BROKER)
        );
        let minutes = find(&all, "log.retention.minutes");
        assert_eq!(
            minutes.value, None,
            "no value and no default: null, as Kafka reports it"
        );
        assert!(find(&all, "num.partitions").read_only);
        let cluster = broker_entries(&broker, true);
        assert_eq!(cluster.len(), 1);
        assert_eq!(cluster[0].synonyms.len(), 1);
        assert_eq!(cluster[0].source, source::DYNAMIC_DEFAULT_BROKER);
    }
}
