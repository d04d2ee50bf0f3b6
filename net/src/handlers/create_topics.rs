//! CreateTopics (key 19): new topics with partition counts or explicit replica assignments
//! (checked as Kafka's controller does, see [`crate::partitions::assignment`]), and configs.
//! `validate_only` checks everything and creates nothing. From v5 a success carries the
//! topic's partitions, replication factor and configs in force, validate-only ones included.
//! Changes are made by shard 0 (see [`crate::partitions::shard::create_topic_as`]), which in a
//! cluster asks the active controller.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_change_error;
use crate::controller::view;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;
use crate::partitions::assignment::{self, Layout, PartitionReplicas};
use crate::partitions::authority::{self, TopicSpec};
use crate::partitions::brokers::{self, Brokers};
use crate::partitions::configs::describe;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::shard;
use runnel_engine::rt;

crate::api!(CreateTopics, 2..=7, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    // Kafka refuses every topic named more than once in one request.
    let mut seen = BTreeMap::<String, usize>::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        let outcome = if seen.get(topic.name.0.as_str()).is_some_and(|&n| n > 1) {
            Err((
                error_code::INVALID_REQUEST,
                "Duplicate topic name.".to_string(),
            ))
        } else {
            let timeout = authority::request_timeout(request.timeout_ms);
            create(broker, &topic, request.validate_only, timeout).await
        };
        match outcome {
            Ok(created) => {
                result.error_code = error_code::NONE;
                if let Some(id) = created.id {
                    result.topic_id = id;
                }
                if version >= 5 {
                    result.num_partitions = created.layout.partitions;
                    result.replication_factor = created.layout.replication_factor;
                    result.configs = Some(configs_in_force(&created.configs));
                }
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        response.topics.push(result);
    }
    response
}

/// A topic created, or one that would be (validate-only: no id).
struct Created {
    id: Option<uuid::Uuid>,
    layout: Layout,
    configs: BTreeMap<String, String>,
}

/// Checks and (unless `validate_only`) creates one topic. In a cluster the names, configs and
/// shape of the request are checked here and the rest (the brokers, the replication factor,
/// whether the name is taken meanwhile) by the active controller, which validates too.
async fn create(
    broker: &BrokerInfo,
    topic: &CreatableTopic,
    validate_only: bool,
    timeout: std::time::Duration,
) -> Result<Created, (i16, String)> {
    let name = topic.name.0.to_string();
    if is_internal(&name) {
        return Err((
            error_code::INVALID_REQUEST,
            "internal topic: the broker creates it for its coordinators".to_string(),
        ));
    }
    let configs: BTreeMap<String, String> = topic
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    let mut assignments: Vec<PartitionReplicas> = topic
        .assignments
        .iter()
        .map(|a| PartitionReplicas {
            partition: a.partition_index,
            replicas: a.broker_ids.iter().map(|id| id.0).collect(),
        })
        .collect();
    let layout = assignment::new_topic_layout(
        topic.num_partitions,
        topic.replication_factor,
        &assignments,
        shard::current().defaults().num_partitions,
        &registered_brokers(broker.node_id),
    );
    // Kafka checks the name, whether the topic exists and the configs before the layout, so
    // those errors come first (a layout error stands in one partition for the check). In a
    // cluster the controller says whether the name is taken: this broker's registry can lag
    // behind a deletion it committed.
    let partitions = layout.as_ref().map_or(1, |l| l.partitions);
    let in_cluster = authority::in_cluster();
    let topics = shard::current().topics();
    let registry = (!in_cluster).then_some(&*topics);
    shard::validate_new_topic(registry, &name, partitions, &configs).map_err(topic_change_error)?;
    let layout = layout.map_err(topic_change_error)?;
    if validate_only && !in_cluster {
        return Ok(Created {
            id: None,
            layout,
            configs,
        });
    }
    // The layout checked the partition ids: 0..n, each once.
    assignments.sort_by_key(|a| a.partition);
    let spec = TopicSpec {
        name: name.clone(),
        partitions: layout.partitions,
        // -1 stays -1: the controller knows the cluster's default.
        replication_factor: topic.replication_factor,
        assignment: assignments.into_iter().map(|a| a.replicas).collect(),
        configs: configs.clone(),
    };
    let created = rt::run_on(0, move || {
        shard::create_topic_as(spec, validate_only, timeout)
    })
    .await;
    let created = match created {
        Ok(Ok(created)) => created,
        Ok(Err(e)) => return Err(topic_change_error(e)),
        Err(_) => return Err((error_code::NOT_CONTROLLER, "shutting down".to_string())),
    };
    let layout = Layout {
        partitions: created.partitions,
        replication_factor: created.replication_factor,
    };
    if validate_only {
        return Ok(Created {
            id: None,
            layout,
            configs,
        });
    }
    if let Some((partition, reason)) = shard::current().offline.of_topic(&name).first() {
        // Created, but a partition's log could not be opened: say so, rather than report a
        // topic that refuses every write as healthy.
        return Err((
            error_code::KAFKA_STORAGE_ERROR,
            format!(
                "topic created, but partition {partition} cannot be opened ({reason}); retrying"
            ),
        ));
    }
    Ok(Created {
        id: Some(created.id),
        layout,
        configs,
    })
}

/// The brokers replicas may be assigned to: the cluster's registered brokers as this broker
/// last heard of them, or this broker alone.
pub(super) fn registered_brokers(this_broker: i32) -> Brokers {
    match view::current() {
        Some(cluster) => Brokers::of(cluster.brokers.iter().map(|b| b.id)),
        None => brokers::registered(this_broker),
    }
}

/// Every topic config in force for a topic with `configs` set, by name, with where its value
/// comes from: what Kafka v5+ returns so a client needs no DescribeConfigs after creating.
fn configs_in_force(configs: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    let defaults = shard::current().defaults();
    let mut all: Vec<CreatableTopicConfigs> = describe::topic_entries(configs, &defaults.broker)
        .into_iter()
        .map(|entry| {
            let mut config = CreatableTopicConfigs::default();
            config.name = StrBytes::from_string(entry.name);
            config.value = entry.value.map(StrBytes::from_string);
            config.read_only = entry.read_only;
            config.config_source = entry.source;
            config
        })
        .collect();
    // By name, as Kafka lists them.
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}
