//! Changes to the broker-level configs (AlterConfigs and IncrementalAlterConfigs on a BROKER
//! resource). Made on shard 0 under the same turn as topic changes: checked, saved to the data
//! directory, then given to every shard, which applies the new defaults to the logs of the
//! topics that don't override them before the change is acknowledged.
//!
//! In a cluster the metadata holds them, as KRaft's does: a change checked here is decided by
//! the active controller ([`authority`]), and every broker takes the cluster-wide defaults and
//! its own configs from the metadata it follows ([`follow_metadata`]), the same way.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_engine::rt;

use super::authority::{self, Decider};
use super::configs::broker_defs::broker_config;
use super::configs::ops;
use super::shard::{self, change_turn, ConfigChange, CreateError, TopicDefaults};
use super::topic_config;

/// Which broker resource: the cluster-wide defaults (named "") or this broker (its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerResource {
    Cluster,
    ThisBroker,
}

impl BrokerResource {
    /// The resource a request names, if it is this broker's: "" or this broker's id. Kafka
    /// refuses another id with INVALID_REQUEST.
    pub fn parse(name: &str, node_id: i32) -> Result<BrokerResource, CreateError> {
        if name.is_empty() {
            Ok(BrokerResource::Cluster)
        } else if name == node_id.to_string() {
            Ok(BrokerResource::ThisBroker)
        } else {
            Err(CreateError::InvalidRequest(format!(
                "Unexpected broker id, expected {node_id} or empty string, but received {name}"
            )))
        }
    }
}

/// Changes the dynamic configs of `resource` (on shard 0); every shard applies them.
pub async fn alter_broker_configs(
    resource: BrokerResource,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), CreateError> {
    let decider = authority::decider()?;
    let turn = change_turn().await;
    let state = shard::current();
    let old = state.defaults();
    let mut broker = old.broker.clone();
    let node = broker.node_id.to_string();
    let current = match resource {
        BrokerResource::Cluster => broker.dynamic.cluster.clone(),
        BrokerResource::ThisBroker => broker
            .dynamic
            .brokers
            .get(&node)
            .cloned()
            .unwrap_or_default(),
    };
    let configs = changed(current.clone(), change)?;
    check(&configs)?;
    let changes = differences(&current, &configs);
    refuse_unenforced(&changes)?;
    match resource {
        BrokerResource::Cluster => broker.dynamic.cluster = configs,
        BrokerResource::ThisBroker if configs.is_empty() => {
            broker.dynamic.brokers.remove(&node);
        }
        BrokerResource::ThisBroker => {
            broker.dynamic.brokers.insert(node, configs);
        }
    }
    let new = TopicDefaults::new(old.num_partitions, broker, old.version + 1);
    valid_for_every_topic(&state, &new)?;
    if let Decider::Cluster(authority) = decider {
        // The turn is the follower's too, to take the decided change in: not held meanwhile.
        drop(turn);
        if changes.is_empty() {
            return Ok(());
        }
        let broker = match resource {
            BrokerResource::Cluster => None,
            BrokerResource::ThisBroker => Some(old.broker.node_id),
        };
        return authority
            .alter_broker_configs(broker, changes, validate_only, authority::DEFAULT_TIMEOUT)
            .await;
    }
    if validate_only {
        return Ok(());
    }
    install(&state, new).await
}

/// New defaults must make a valid log config on their own and for every topic under its own
/// configs: a topic whose config turned invalid would have no config to open its logs with.
fn valid_for_every_topic(
    state: &shard::ShardState,
    new: &TopicDefaults,
) -> Result<(), CreateError> {
    topic_config::log_config(&new.configs).map_err(CreateError::InvalidConfig)?;
    for topic in state.topics().by_name.values() {
        topic_config::log_config(&topic_config::effective(&new.configs, &topic.configs))
            .map_err(|e| CreateError::InvalidConfig(format!("topic {}: {e}", topic.name)))?;
    }
    Ok(())
}

/// Saves and installs new defaults on every shard.
async fn install(state: &shard::ShardState, new: TopicDefaults) -> Result<(), CreateError> {
    new.broker
        .dynamic
        .save(&state.data_dir)
        .await
        .map_err(|e| CreateError::Storage(format!("saving broker configs: {e}")))?;
    let new = Arc::new(new);
    state.set_defaults(new.clone());
    broadcast(new).await;
    Ok(())
}

/// What turns `old` into `new`: each name set (`Some`) or removed (`None`). Only those go to
/// the controller, so changes to other names made meanwhile through other brokers are kept.
fn differences(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>)> {
    let set = new
        .iter()
        .filter(|(name, value)| old.get(*name) != Some(*value))
        .map(|(name, value)| (name.clone(), Some(value.clone())));
    let removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|name| (name.clone(), None));
    set.chain(removed).collect()
}

/// Takes the cluster-wide defaults and this broker's own configs from the cluster's metadata
/// (on shard 0), when they differ from those in force. Configs other brokers kept locally
/// before joining the cluster are dropped: the metadata is the truth now. Returns whether
/// anything changed; an error names configs that would make some log's config invalid (on
/// their own or for some topic), which are then not taken: this broker keeps the configs it
/// has rather than open a topic's logs with none.
pub async fn follow_metadata(
    cluster: BTreeMap<String, String>,
    mine: BTreeMap<String, String>,
) -> Result<bool, CreateError> {
    let followed = take_from_metadata(cluster, mine).await;
    REFUSAL.with(|refusal| *refusal.borrow_mut() = followed.as_ref().err().map(|e| e.to_string()));
    followed
}

thread_local! {
    /// Shard 0: why this broker did not take the configs the metadata holds now, if it did
    /// not (cleared when it takes a set).
    static REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Why this broker did not take the broker configs the metadata holds (on shard 0): a change
/// the controller committed but this broker refused is answered with this, not as a success.
pub fn refusal() -> Option<String> {
    REFUSAL.with(|refusal| refusal.borrow().clone())
}

async fn take_from_metadata(
    cluster: BTreeMap<String, String>,
    mine: BTreeMap<String, String>,
) -> Result<bool, CreateError> {
    let _turn = change_turn().await;
    let state = shard::current();
    let old = state.defaults();
    let node = old.broker.node_id.to_string();
    let mut dynamic = old.broker.dynamic.clone();
    dynamic.cluster = cluster;
    dynamic.brokers.clear();
    if !mine.is_empty() {
        dynamic.brokers.insert(node, mine);
    }
    if dynamic == old.broker.dynamic {
        return Ok(false);
    }
    let mut broker = old.broker.clone();
    broker.dynamic = dynamic;
    let new = TopicDefaults::new(old.num_partitions, broker, old.version + 1);
    valid_for_every_topic(&state, &new)?;
    install(&state, new).await?;
    Ok(true)
}

/// The resource's configs after `change`.
fn changed(
    mut configs: BTreeMap<String, String>,
    change: ConfigChange,
) -> Result<BTreeMap<String, String>, CreateError> {
    match change {
        ConfigChange::Replace(all) => Ok(all),
        ConfigChange::Incremental(changes) => {
            let schema =
                |name: &str| broker_config(name).map(|c| (c.def.config_type, c.def.default));
            ops::apply(&mut configs, &changes, &schema).map_err(CreateError::InvalidConfig)?;
            Ok(configs)
        }
    }
}

/// Kafka's replication throttles, which Runnel does not enforce: refused rather than kept,
/// so that `kafka-reassign-partitions.sh --throttle` says so instead of moving replicas at
/// full speed while the operator believes them throttled.
const UNENFORCED_THROTTLES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// Refuses a change that sets one of the [`UNENFORCED_THROTTLES`] (one stored before they
/// were refused can still be deleted, and does not block other changes).
fn refuse_unenforced(changes: &[(String, Option<String>)]) -> Result<(), CreateError> {
    match changes
        .iter()
        .find(|(name, value)| value.is_some() && UNENFORCED_THROTTLES.contains(&name.as_str()))
    {
        Some((name, _)) => Err(CreateError::InvalidConfig(format!(
            "{name}: replication throttles are not supported by this broker (replicas are \
             copied at full speed)"
        ))),
        None => Ok(()),
    }
}

/// A config this broker knows must be one that may change at run time, with a valid value.
/// Names it doesn't know are kept and reported but act on nothing, as Kafka keeps them (for
/// plugins, or Kafka settings Runnel has no use for, such as its SASL ones), except the
/// replication throttles ([`refuse_unenforced`]).
fn check(configs: &BTreeMap<String, String>) -> Result<(), CreateError> {
    let mut fixed = Vec::new();
    for name in configs.keys() {
        if broker_config(name).is_some_and(|c| !c.dynamic) {
            fixed.push(name.as_str());
        }
    }
    if !fixed.is_empty() {
        // Kafka's words (DynamicBrokerConfig), and its error: INVALID_REQUEST.
        return Err(CreateError::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({})",
            fixed.join(", ")
        )));
    }
    for (name, value) in configs {
        if let Some(config) = broker_config(name) {
            config
                .def
                .validate(value)
                .map_err(CreateError::InvalidConfig)?;
        }
    }
    Ok(())
}

/// Gives every shard the new defaults and waits until each has applied them to its logs.
async fn broadcast(defaults: Arc<TopicDefaults>) {
    let handles: Vec<_> = (0..rt::shard_count())
        .map(|shard| {
            let defaults = defaults.clone();
            rt::spawn_local(rt::run_on(shard, move || async move {
                shard::current().apply_defaults(defaults).await;
            }))
        })
        .collect();
    for handle in handles {
        if handle.await.is_err() {
            tracing::warn!("a shard stopped before adopting new broker configs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::configs::ops::ConfigOp;

    #[test]
    fn resources_are_this_broker_or_the_cluster() {
        assert_eq!(
            BrokerResource::parse("", 3).unwrap(),
            BrokerResource::Cluster
        );
        assert_eq!(
            BrokerResource::parse("3", 3).unwrap(),
            BrokerResource::ThisBroker
        );
        assert!(matches!(
            BrokerResource::parse("4", 3),
            Err(CreateError::InvalidRequest(_))
        ));
    }

    #[test]
    fn only_known_dynamic_configs_with_valid_values_pass() {
        let one = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        check(&one("log.retention.ms", "1000")).unwrap();
        check(&one("log.cleanup.policy", "")).unwrap();
        assert!(
            matches!(check(&one("num.partitions", "3")), Err(CreateError::InvalidRequest(m)) if m.contains("num.partitions"))
        );
        assert!(matches!(
            check(&one("log.retention.hours", "3")),
            Err(CreateError::InvalidRequest(_))
        ));
        assert!(matches!(
            check(&one("log.retention.ms", "-9")),
            Err(CreateError::InvalidConfig(_))
        ));
        // Unknown names are kept, as Kafka keeps custom broker configs.
        assert!(check(&one("sasl.kerberos.min.time.before.relogin", "60000")).is_ok());
        // But not throttles that would not throttle: setting one is refused, deleting one
        // stored before is not.
        for name in UNENFORCED_THROTTLES {
            let set = [(name.to_string(), Some("1000000".to_string()))];
            assert!(
                matches!(refuse_unenforced(&set), Err(CreateError::InvalidConfig(m)) if m.contains("not supported")),
                "{name}"
            );
            assert!(refuse_unenforced(&[(name.to_string(), None)]).is_ok());
        }
    }

    #[test]
    fn the_controller_is_sent_only_the_names_a_change_touches() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = map(&[("a", "1"), ("b", "20"), ("d", "4")]);
        assert_eq!(
            differences(&old, &new),
            vec![
                ("b".to_string(), Some("20".to_string())),
                ("d".to_string(), Some("4".to_string())),
                ("c".to_string(), None),
            ]
        );
        assert!(differences(&old, &old).is_empty());
    }

    #[test]
    fn incremental_changes_to_the_broker_list_default() {
        let out = changed(
            BTreeMap::new(),
            ConfigChange::Incremental(vec![ConfigOp::Subtract(
                "log.cleanup.policy".into(),
                "delete".into(),
            )]),
        )
        .unwrap();
        assert_eq!(out["log.cleanup.policy"], "");
    }
}
