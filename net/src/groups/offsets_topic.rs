//! `__consumer_offsets`' own settings: made with Kafka's (GroupCoordinator's
//! `offsetsTopicConfigs`: compacted, `offsets.topic.segment.bytes` segments, batches stored as
//! the coordinator writes them), and brought to them when an older Runnel made it.
//!
//! Compacted, the topic keeps each group's newest metadata and each partition's newest commit
//! (tombstones remove deleted ones), so its size follows the number of groups and partitions,
//! not the number of commits.
//!
//! Runnel before compaction made the topic with `retention.ms=-1` and no `cleanup.policy`
//! (keep every commit, whatever the broker's `log.cleanup.policy`). At start-up such a topic
//! gets Kafka's settings ([`upgrade`]): the missing `cleanup.policy` is the sign, since every
//! Runnel that compacts sets it. A `cleanup.policy` an operator set later with AlterConfigs is
//! left alone, as Kafka leaves it.

use std::collections::BTreeMap;

use super::OFFSETS_TOPIC;
use crate::partitions::shard::{self, ConfigChange, CreateError};

/// The configs `__consumer_offsets` is made with.
pub fn configs(segment_bytes: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), segment_bytes.to_string()),
        ("compression.type".to_owned(), "producer".to_owned()),
    ])
}

/// The configs an offsets topic made before compaction should have now; `None` when `stored`
/// already says how it is cleaned up.
pub fn upgraded(
    stored: &BTreeMap<String, String>,
    segment_bytes: i32,
) -> Option<BTreeMap<String, String>> {
    if stored.contains_key("cleanup.policy") {
        return None;
    }
    let mut configs = stored.clone();
    // It stood in for compaction: without delete in the policy, retention removes nothing.
    if configs
        .get("retention.ms")
        .is_some_and(|v| v.trim() == "-1")
    {
        configs.remove("retention.ms");
    }
    for (key, value) in self::configs(segment_bytes) {
        configs.entry(key).or_insert(value);
    }
    Some(configs)
}

/// Gives an offsets topic made before compaction Kafka's settings (on shard 0, once every
/// shard has started): saved in the topic registry and applied to its open logs, so the
/// cleaner starts compacting it.
pub async fn upgrade(segment_bytes: i32) {
    let topics = shard::current().topics();
    let Some(topic) = topics.get(OFFSETS_TOPIC) else {
        return;
    };
    let Some(configs) = upgraded(&topic.configs, segment_bytes) else {
        return;
    };
    let change = ConfigChange::Replace(configs.clone());
    let timeout = crate::partitions::authority::DEFAULT_TIMEOUT;
    match shard::alter_topic_configs(OFFSETS_TOPIC.to_owned(), change, false, timeout).await {
        Ok(()) => tracing::info!(
            ?configs,
            "{OFFSETS_TOPIC} was made before compaction: it is compacted from now on"
        ),
        Err(CreateError::Unknown(_)) => {}
        Err(e) => tracing::warn!(error = %e, "cannot make {OFFSETS_TOPIC} compacted"),
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

    #[test]
    fn made_as_kafka_makes_it() {
        let configs = configs(104_857_600);
        assert_eq!(
            configs,
            map(&[
                ("cleanup.policy", "compact"),
                ("compression.type", "producer"),
                ("segment.bytes", "104857600"),
            ])
        );
        crate::partitions::topic_config::log_config(&configs).unwrap();
    }

    #[test]
    fn a_topic_made_before_compaction_is_brought_to_kafkas_settings() {
        let old = map(&[("retention.ms", "-1"), ("segment.bytes", "104857600")]);
        assert_eq!(upgraded(&old, 1 << 20), Some(configs(104_857_600)));
        // What an operator set otherwise is kept.
        let tuned = map(&[
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
            ("compression.type", "zstd"),
        ]);
        assert_eq!(
            upgraded(&tuned, 104_857_600),
            Some(map(&[
                ("cleanup.policy", "compact"),
                ("compression.type", "zstd"),
                ("segment.bytes", "1048576"),
            ]))
        );
        let log =
            crate::partitions::topic_config::log_config(&upgraded(&old, 1 << 20).unwrap()).unwrap();
        assert!(log.cleanup_policy.compact && !log.cleanup_policy.delete);
    }

    #[test]
    fn a_topic_that_says_how_it_is_cleaned_is_left_alone() {
        assert_eq!(upgraded(&configs(104_857_600), 104_857_600), None);
        let chosen = map(&[("cleanup.policy", "compact,delete"), ("retention.ms", "-1")]);
        assert_eq!(upgraded(&chosen, 104_857_600), None);
    }
}
