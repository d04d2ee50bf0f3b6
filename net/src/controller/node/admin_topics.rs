//! Topic changes on the active controller, one topic (or config resource) at a time: the
//! request's entry turned into the [`MetadataController`]'s terms, decided through the
//! [`Voter`], and answered with Kafka's error code and a message saying why.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::{BROKER_RESOURCE, OP_DELETE, OP_SET, TOPIC_RESOURCE};
use super::ids::random_id;
use super::voter::Voter;
use crate::controller::metadata::{
    Assignment, ConfigResource, Decision, Entropy, MetadataRecord, NewTopic,
};
use crate::kafka::error_code as ec;

/// A Kafka error code and the message that goes with it.
type Refusal = (i16, String);

fn text(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// A fresh random (v4) topic id and placement seed.
fn entropy() -> Entropy {
    let topic_id = uuid::Builder::from_random_bytes(random_id())
        .into_uuid()
        .into_bytes();
    let seed = random_id();
    let mut seed_bytes = [0u8; 8];
    seed_bytes.copy_from_slice(&seed[..8]);
    Entropy {
        topic_id,
        placement_seed: u64::from_le_bytes(seed_bytes),
    }
}

/// The retriable errors of the decision's driver, explained.
fn driver_message(code: i16) -> Option<String> {
    match code {
        ec::NOT_CONTROLLER => Some("this node is no longer the active controller".into()),
        ec::REQUEST_TIMED_OUT => Some("the change did not commit in time; retry".into()),
        _ => None,
    }
}

pub async fn create_topics(voter: &Voter, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        match create_topic(voter, &topic, request.validate_only).await {
            Ok((id, partitions, replication_factor)) => {
                result.topic_id = uuid::Uuid::from_bytes(id);
                result.num_partitions = partitions;
                result.replication_factor = replication_factor;
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = text(message);
            }
        }
        response.topics.push(result);
    }
    response
}

/// The new topic a CreateTopics entry asks for, or why it is malformed.
fn new_topic(topic: &CreatableTopic) -> Result<NewTopic, Refusal> {
    let configs = topic
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    let assignment = if topic.assignments.is_empty() {
        Assignment::Auto {
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ec::INVALID_REQUEST,
                "A manual partition assignment was specified, but the partition count or \
                 replication factor was not -1."
                    .into(),
            ));
        }
        let mut given: Vec<_> = topic.assignments.iter().collect();
        given.sort_by_key(|a| a.partition_index);
        if given
            .iter()
            .zip(0i32..)
            .any(|(a, index)| a.partition_index != index)
        {
            return Err((
                ec::INVALID_REPLICA_ASSIGNMENT,
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        Assignment::Manual(
            given
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        )
    };
    Ok(NewTopic {
        name: topic.name.0.to_string(),
        assignment,
        configs,
    })
}

/// Creates (or, validating only, checks) one topic: its id, partitions and replication
/// factor.
async fn create_topic(
    voter: &Voter,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<([u8; 16], i32, i16), Refusal> {
    let new = new_topic(topic)?;
    let entropy = entropy();
    let decided = voter
        .decide(|controller, _| {
            let decision = controller.create_topic(&new, entropy)?;
            let shape = shape(&decision.records);
            Ok(Decision {
                records: if validate_only {
                    Vec::new()
                } else {
                    decision.records
                },
                reply: (decision.reply, shape.0, shape.1),
            })
        })
        .await;
    decided.map_err(|code| (code, create_message(voter, code, &new)))
}

/// Partitions and replicas per partition of a new topic's records.
fn shape(records: &[MetadataRecord]) -> (i32, i16) {
    let mut partitions = 0i32;
    let mut replicas = 0usize;
    for record in records {
        if let MetadataRecord::Partition(p) = record {
            partitions += 1;
            replicas = p.replicas.len();
        }
    }
    (partitions, i16::try_from(replicas).unwrap_or(i16::MAX))
}

/// Why a creation was refused, in Kafka's words where it has them.
fn create_message(voter: &Voter, code: i16, topic: &NewTopic) -> String {
    if let Some(message) = driver_message(code) {
        return message;
    }
    let live = voter.with_image(|image| image.live_brokers().len());
    match (code, &topic.assignment) {
        (ec::TOPIC_ALREADY_EXISTS, _) => format!("Topic '{}' already exists.", topic.name),
        (ec::INVALID_TOPIC_EXCEPTION, _) => format!(
            "Topic name '{}' is illegal: it must be 1 to 249 characters of ASCII \
             alphanumerics, '.', '_' and '-', and not '.' or '..'.",
            topic.name
        ),
        (ec::INVALID_REPLICATION_FACTOR, Assignment::Auto { .. }) => format!(
            "Unable to replicate the partition: the replication factor must be at least 1 \
             (or -1 for the default) and at most the {live} live broker(s)."
        ),
        (ec::INVALID_PARTITIONS, _) => "Number of partitions was set to an invalid value: it \
                                        must be positive (or -1 for the default) and at most \
                                        100000."
            .into(),
        (ec::INVALID_REPLICA_ASSIGNMENT, _) => format!(
            "The manual partition assignment must give every partition the same number of \
             distinct registered brokers, at least one of them live ({live} live broker(s))."
        ),
        (code, _) => format!("topic creation refused: error {code}"),
    }
}

pub async fn delete_topics(voter: &Voter, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut response = DeleteTopicsResponse::default();
    for topic in request.topics {
        response.responses.push(delete_topic(voter, topic).await);
    }
    response
}

/// Deletes one topic, named by name or by id.
async fn delete_topic(voter: &Voter, topic: DeleteTopicState) -> DeletableTopicResult {
    let mut result = DeletableTopicResult::default();
    result.name = topic.name.clone();
    result.topic_id = topic.topic_id;
    let wanted = topic.name.as_ref().map(|n| n.0.to_string());
    let by_id = *topic.topic_id.as_bytes();
    let decided = voter
        .decide(|controller, _| {
            let name = match &wanted {
                Some(name) => name.clone(),
                None => controller
                    .image()
                    .topic_by_id(&by_id)
                    .map(|t| t.name.clone())
                    .ok_or(ec::UNKNOWN_TOPIC_ID)?,
            };
            let decision = controller.delete_topic(&name)?;
            Ok(Decision {
                records: decision.records,
                reply: (decision.reply, name),
            })
        })
        .await;
    match decided {
        Ok((id, name)) => {
            result.topic_id = uuid::Uuid::from_bytes(id);
            result.name = Some(TopicName(StrBytes::from_string(name)));
        }
        Err(code) => {
            result.error_code = code;
            result.error_message = text(driver_message(code).unwrap_or_else(|| match code {
                ec::UNKNOWN_TOPIC_OR_PARTITION => "This server does not host this topic.".into(),
                ec::UNKNOWN_TOPIC_ID => "This server does not host this topic ID.".into(),
                code => format!("topic deletion refused: error {code}"),
            }));
        }
    }
    result
}

pub async fn create_partitions(
    voter: &Voter,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        if let Err((code, message)) = grow(voter, &topic, request.validate_only).await {
            result.error_code = code;
            result.error_message = text(message);
        }
        response.results.push(result);
    }
    response
}

/// Grows one topic to the partition count asked for.
async fn grow(
    voter: &Voter,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Refusal> {
    let name = topic.name.0.to_string();
    // An empty list means none: encoders default the field to one (see the broker's handler).
    let assignment: Option<Vec<Vec<i32>>> = topic
        .assignments
        .as_ref()
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
    let total = topic.count;
    let mut current = None;
    let decided = voter
        .decide(|controller, _| {
            current = controller.image().topic(&name).map(|t| t.partitions.len());
            let decision = controller.create_partitions(&name, total, assignment.as_deref())?;
            Ok(Decision {
                records: if validate_only {
                    Vec::new()
                } else {
                    decision.records
                },
                reply: (),
            })
        })
        .await;
    decided.map_err(|code| {
        let message = driver_message(code).unwrap_or_else(|| match (code, current) {
            (ec::UNKNOWN_TOPIC_OR_PARTITION, _) => format!("The topic '{name}' does not exist."),
            (ec::INVALID_PARTITIONS, Some(n)) if usize::try_from(total) == Ok(n) => {
                format!("Topic already has {n} partition(s).")
            }
            (ec::INVALID_PARTITIONS, Some(n)) => format!(
                "The topic {name} currently has {n} partition(s); {total} would not be an \
                 increase (at most 100000)."
            ),
            (ec::INVALID_REPLICA_ASSIGNMENT, _) => "The assignment must give each new \
                                                    partition as many distinct registered \
                                                    brokers as the topic's other partitions \
                                                    have, one assignment per new partition."
                .into(),
            (code, _) => format!("partition creation refused: error {code}"),
        });
        (code, message)
    })
}

pub async fn alter_configs(
    voter: &Voter,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Err((code, message)) = alter(voter, &resource, request.validate_only).await {
            result.error_code = code;
            result.error_message = text(message);
        }
        response.responses.push(result);
    }
    response
}

/// Sets and deletes configs of one topic, of one broker, or every broker's defaults.
async fn alter(
    voter: &Voter,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let name = resource.resource_name.to_string();
    let target = match (resource.resource_type, name.as_str()) {
        (TOPIC_RESOURCE, _) => ConfigResource::Topic(name.clone()),
        (BROKER_RESOURCE, "") => ConfigResource::Cluster,
        (BROKER_RESOURCE, id) => match id.parse::<i32>() {
            Ok(id) if id >= 0 => ConfigResource::Broker(id),
            _ => return Err((ec::INVALID_REQUEST, format!("{id:?} is not a broker id"))),
        },
        (other, _) => {
            return Err((
                ec::INVALID_REQUEST,
                format!("resource type {other}: only topic and broker configs are kept"),
            ))
        }
    };
    let mut changes = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let value = match (config.config_operation, &config.value) {
            (OP_SET, Some(value)) => Some(value.to_string()),
            (OP_DELETE, _) => None,
            _ => {
                return Err((
                    ec::INVALID_REQUEST,
                    format!(
                        "config {}: only SET with a value and DELETE are forwarded",
                        config.name.as_str()
                    ),
                ))
            }
        };
        changes.push((config.name.to_string(), value));
    }
    voter
        .decide(|controller, _| {
            let decision = controller.alter_configs(&target, &changes)?;
            Ok(Decision {
                records: if validate_only {
                    Vec::new()
                } else {
                    decision.records
                },
                reply: (),
            })
        })
        .await
        .map_err(|code| {
            let message = driver_message(code).unwrap_or_else(|| match code {
                ec::UNKNOWN_TOPIC_OR_PARTITION => format!("The topic '{name}' does not exist."),
                code => format!("config change refused: error {code}"),
            });
            (code, message)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_assignments_are_refused() {
        use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
        use kafka_protocol::messages::BrokerId;
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_static_str("t"));
        topic.num_partitions = -1;
        topic.replication_factor = -1;
        let mut gap = CreatableReplicaAssignment::default();
        gap.partition_index = 1;
        gap.broker_ids = vec![BrokerId(1)];
        topic.assignments = vec![gap];
        assert_eq!(
            new_topic(&topic).unwrap_err().0,
            ec::INVALID_REPLICA_ASSIGNMENT
        );
        topic.assignments[0].partition_index = 0;
        assert!(matches!(
            new_topic(&topic).map(|t| t.assignment),
            Ok(Assignment::Manual(a)) if a == vec![vec![1]]
        ));
        topic.num_partitions = 3;
        assert_eq!(new_topic(&topic).unwrap_err().0, ec::INVALID_REQUEST);
    }
}
