//! The cluster's [`TopicAuthority`]: every topic change goes to the active controller as the
//! Kafka request the controller decides it by ([`super::admin`]), one topic per request. On
//! success it waits, bounded, until this broker's registry shows the change (the registry
//! follows the committed metadata), so that a client that creates a topic and then produces
//! through the same broker finds it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_engine::rt;

use super::admin::{
    ALTER_CONFIGS_VERSION, BROKER_RESOURCE, CREATE_PARTITIONS_VERSION, CREATE_TOPICS_VERSION,
    DELETE_TOPICS_VERSION, OP_DELETE, OP_SET, TOPIC_RESOURCE,
};
use super::forward::{Failure, Forwarder};
use crate::kafka::error_code as ec;
use crate::partitions::authority::{CreatedTopic, LocalFuture, TopicAuthority, TopicSpec};
use crate::partitions::broker_configs;
use crate::partitions::configs::broker_state::DynamicConfigs;
use crate::partitions::shard::{self, CreateError};
use crate::partitions::topics::Topics;

/// How long a change the controller made may take to show in this broker's registry before
/// the client is answered anyway (the change is committed; the registry catches up).
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(5);

/// How often the registry is looked at while waiting.
const LOCAL_APPLY_POLL: Duration = Duration::from_millis(10);

/// Topic changes decided by the active controller.
#[derive(Debug)]
pub struct ControllerAuthority {
    forwarder: Rc<Forwarder>,
}

impl ControllerAuthority {
    pub fn new(forwarder: Rc<Forwarder>) -> Self {
        ControllerAuthority { forwarder }
    }
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The answer to one topic's change, as the error a handler reports.
fn refused(code: i16, message: Option<&StrBytes>) -> CreateError {
    let message = message.map_or_else(|| format!("error {code}"), |m| m.to_string());
    match code {
        ec::TOPIC_ALREADY_EXISTS => CreateError::Exists(message),
        ec::UNKNOWN_TOPIC_OR_PARTITION => CreateError::Unknown(message),
        ec::INVALID_TOPIC_EXCEPTION => CreateError::InvalidName(message),
        ec::INVALID_PARTITIONS => CreateError::InvalidPartitions(message),
        ec::INVALID_CONFIG => CreateError::InvalidConfig(message),
        ec::INVALID_REQUEST => CreateError::InvalidRequest(message),
        ec::INVALID_REPLICA_ASSIGNMENT => CreateError::InvalidReplicaAssignment(message),
        ec::INVALID_REPLICATION_FACTOR => CreateError::InvalidReplicationFactor(message),
        code => CreateError::Refused { code, message },
    }
}

fn failed((code, message): Failure) -> CreateError {
    CreateError::Refused { code, message }
}

/// Waits until every shard's registry satisfies `shows` (false: not within the wait).
async fn registry_shows(shows: impl Fn(&Topics) -> bool + Clone + Send + 'static) -> bool {
    every_shard_shows(move |state| shows(&state.topics())).await
}

/// Waits until every shard's state satisfies `shows` (false: not within the wait).
async fn every_shard_shows(
    shows: impl Fn(&shard::ShardState) -> bool + Clone + Send + 'static,
) -> bool {
    let deadline = Instant::now() + LOCAL_APPLY_WAIT;
    for shard in 0..rt::shard_count() {
        loop {
            let check = shows.clone();
            let seen = rt::run_on(shard, move || async move { check(&shard::current()) })
                .await
                .unwrap_or(true);
            if seen {
                break;
            }
            if Instant::now() >= deadline {
                return false;
            }
            rt::sleep(LOCAL_APPLY_POLL).await;
        }
    }
    true
}

/// [`registry_shows`], noting when the registry did not catch up in time.
async fn await_local(what: &str, shows: impl Fn(&Topics) -> bool + Clone + Send + 'static) {
    if !registry_shows(shows).await {
        tracing::warn!(
            "{what}: committed by the controller, but not in this broker's topics after {:?}",
            LOCAL_APPLY_WAIT
        );
    }
}

impl TopicAuthority for ControllerAuthority {
    fn create_topic(
        &self,
        topic: TopicSpec,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<CreatedTopic, CreateError>> {
        let forwarder = self.forwarder.clone();
        Box::pin(async move {
            let name = topic.name.clone();
            let mut request = CreateTopicsRequest::default();
            request.topics = vec![creatable(topic)];
            request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            request.validate_only = validate_only;
            let result = forward_one(
                &forwarder,
                (ApiKey::CreateTopics, CREATE_TOPICS_VERSION),
                &request,
                timeout,
                |a: &CreateTopicsResponse| &a.topics[..],
                |t| (t.error_code, t.error_message.as_ref()),
            )
            .await?;
            let id = result.topic_id;
            if !validate_only {
                await_local(&format!("topic {name} created"), move |topics| {
                    topics.get(&name).is_some_and(|t| t.uuid() == id)
                })
                .await;
            }
            Ok(CreatedTopic {
                id,
                partitions: result.num_partitions,
                replication_factor: result.replication_factor,
            })
        })
    }

    fn delete_topic(
        &self,
        name: String,
        timeout: Duration,
    ) -> LocalFuture<Result<uuid::Uuid, CreateError>> {
        let forwarder = self.forwarder.clone();
        Box::pin(async move {
            let mut state = DeleteTopicState::default();
            state.name = Some(TopicName(str(&name)));
            let mut request = DeleteTopicsRequest::default();
            request.topics = vec![state];
            request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            let result = forward_one(
                &forwarder,
                (ApiKey::DeleteTopics, DELETE_TOPICS_VERSION),
                &request,
                timeout,
                |a: &DeleteTopicsResponse| &a.responses[..],
                |t| (t.error_code, t.error_message.as_ref()),
            )
            .await?;
            let id = result.topic_id;
            await_local(&format!("topic {name} deleted"), move |topics| {
                topics.get(&name).is_none_or(|t| t.uuid() != id)
            })
            .await;
            Ok(id)
        })
    }

    fn create_partitions(
        &self,
        name: String,
        total: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>> {
        let forwarder = self.forwarder.clone();
        Box::pin(async move {
            let mut topic = CreatePartitionsTopic::default();
            topic.name = TopicName(str(&name));
            topic.count = total;
            topic.assignments = assignment.map(|partitions| {
                partitions
                    .into_iter()
                    .map(|replicas| {
                        let mut a = CreatePartitionsAssignment::default();
                        a.broker_ids = replicas.into_iter().map(BrokerId).collect();
                        a
                    })
                    .collect()
            });
            let mut request = CreatePartitionsRequest::default();
            request.topics = vec![topic];
            request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            request.validate_only = validate_only;
            forward_one(
                &forwarder,
                (ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSION),
                &request,
                timeout,
                |a: &CreatePartitionsResponse| &a.results[..],
                |t| (t.error_code, t.error_message.as_ref()),
            )
            .await?;
            if !validate_only {
                let wanted = usize::try_from(total).unwrap_or(0);
                await_local(&format!("topic {name} grown"), move |topics| {
                    topics.get(&name).is_some_and(|t| t.shards.len() >= wanted)
                })
                .await;
            }
            Ok(())
        })
    }

    fn alter_topic_configs(
        &self,
        name: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>> {
        let forwarder = self.forwarder.clone();
        Box::pin(async move {
            let request = alter_configs_request(TOPIC_RESOURCE, &name, &changes, validate_only);
            forward_alter_configs(&forwarder, &request, timeout).await?;
            if !validate_only {
                let expected: BTreeMap<String, Option<String>> = changes.into_iter().collect();
                await_local(&format!("configs of topic {name} altered"), move |topics| {
                    topics.get(&name).is_some_and(|t| {
                        expected.iter().all(|(k, v)| t.configs.get(k) == v.as_ref())
                    })
                })
                .await;
            }
            Ok(())
        })
    }

    fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>> {
        let forwarder = self.forwarder.clone();
        Box::pin(async move {
            let name = broker.map_or_else(String::new, |id| id.to_string());
            let request = alter_configs_request(BROKER_RESOURCE, &name, &changes, validate_only);
            forward_alter_configs(&forwarder, &request, timeout).await?;
            if !validate_only {
                let expected: BTreeMap<String, Option<String>> = changes.into_iter().collect();
                let shows = move |dynamic: &DynamicConfigs| {
                    let configs = match broker {
                        None => Some(&dynamic.cluster),
                        Some(id) => dynamic.brokers.get(&id.to_string()),
                    };
                    expected
                        .iter()
                        .all(|(k, v)| configs.and_then(|c| c.get(k)) == v.as_ref())
                };
                // A broker alters only its own configs and the defaults (see BrokerResource).
                if !defaults_show(shows).await {
                    // Refused here (some topic's config would turn invalid under it): the
                    // client must not be told it took effect. Merely late (a replay, an
                    // observer still catching up): it is committed, and will be taken.
                    if let Some(why) = broker_configs::refusal() {
                        return Err(CreateError::InvalidConfig(format!(
                            "the controller committed the change, but this broker refused it: \
                             {why}"
                        )));
                    }
                    tracing::warn!(
                        "broker configs altered: committed by the controller, but not in this \
                         broker's configs after {LOCAL_APPLY_WAIT:?}"
                    );
                }
            }
            Ok(())
        })
    }
}

/// IncrementalAlterConfigs for one resource: SET for `Some`, DELETE for `None`.
fn alter_configs_request(
    resource_type: i8,
    name: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = str(name);
    resource.configs = changes
        .iter()
        .map(|(key, value)| {
            let mut config = AlterableConfig::default();
            config.name = str(key);
            config.config_operation = if value.is_some() { OP_SET } else { OP_DELETE };
            config.value = value.as_deref().map(str);
            config
        })
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    request.validate_only = validate_only;
    request
}

async fn forward_alter_configs(
    forwarder: &Forwarder,
    request: &IncrementalAlterConfigsRequest,
    timeout: Duration,
) -> Result<(), CreateError> {
    forward_one(
        forwarder,
        (ApiKey::IncrementalAlterConfigs, ALTER_CONFIGS_VERSION),
        request,
        timeout,
        |a: &IncrementalAlterConfigsResponse| &a.responses[..],
        |r| (r.error_code, r.error_message.as_ref()),
    )
    .await
    .map(|_| ())
}

/// Waits until every shard's dynamic broker configs satisfy `shows` (false: not within the
/// wait).
async fn defaults_show(shows: impl Fn(&DynamicConfigs) -> bool + Clone + Send + 'static) -> bool {
    every_shard_shows(move |state| shows(&state.defaults().broker.dynamic)).await
}

/// Forwards `request`, about one topic, as `key` and returns the controller's result for that
/// topic, or the error it carries. `results` lists an answer's per-topic results, `outcome`
/// reads one's error code and message.
async fn forward_one<Resp: Decodable, R: Clone>(
    forwarder: &Forwarder,
    (key, version): (ApiKey, i16),
    request: &impl Encodable,
    timeout: Duration,
    results: impl Fn(&Resp) -> &[R],
    outcome: impl Fn(&R) -> (i16, Option<&StrBytes>),
) -> Result<R, CreateError> {
    // The (single) result turns the request away as not the controller's: ask another voter.
    let not_controller =
        |answer: &Resp| results(answer).first().map(|r| outcome(r).0) == Some(ec::NOT_CONTROLLER);
    let answer: Resp = forwarder
        .call(key, version, request, timeout, not_controller)
        .await
        .map_err(failed)?;
    let result = results(&answer).first().cloned().ok_or_else(|| {
        failed((
            ec::UNKNOWN_SERVER_ERROR,
            format!("the controller's {key:?} answer names no topic"),
        ))
    })?;
    let (code, message) = outcome(&result);
    if code != ec::NONE {
        return Err(refused(code, message));
    }
    Ok(result)
}

/// A CreateTopics entry for `topic`: counts of -1 with an explicit assignment, as Kafka wants.
fn creatable(topic: TopicSpec) -> CreatableTopic {
    let mut entry = CreatableTopic::default();
    entry.name = TopicName(str(&topic.name));
    if topic.assignment.is_empty() {
        entry.num_partitions = topic.partitions;
        entry.replication_factor = topic.replication_factor;
    } else {
        entry.num_partitions = -1;
        entry.replication_factor = -1;
        entry.assignments = (0i32..)
            .zip(topic.assignment)
            .map(|(partition, replicas)| {
                let mut a = CreatableReplicaAssignment::default();
                a.partition_index = partition;
                a.broker_ids = replicas.into_iter().map(BrokerId).collect();
                a
            })
            .collect();
    }
    entry.configs = topic
        .configs
        .into_iter()
        .map(|(name, value)| {
            let mut config = CreatableTopicConfig::default();
            config.name = StrBytes::from_string(name);
            config.value = Some(StrBytes::from_string(value));
            config
        })
        .collect();
    entry
}
