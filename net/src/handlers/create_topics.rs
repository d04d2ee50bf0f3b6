//! CreateTopics (key 19): new topics with partition counts and configs; `validate_only` checks
//! without creating. Changes are made by shard 0 (see [`crate::partitions::shard::create_topic`]).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_change_error;
use crate::kafka::error_code;
use crate::partitions::shard;
use runnel_engine::rt;

crate::api!(CreateTopics, 2..=7, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    // Kafka refuses every topic named more than once in one request.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        if seen[&name] > 1 {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(StrBytes::from_static_str("topic named more than once"));
            result.num_partitions = -1;
            result.replication_factor = -1;
            response.topics.push(result);
            continue;
        }
        let partitions = if topic.num_partitions == -1 {
            shard::current().defaults().num_partitions
        } else {
            topic.num_partitions
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let outcome = if !(topic.replication_factor == -1 || topic.replication_factor == 1) {
            Err((
                error_code::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {} on a single broker (only 1)",
                    topic.replication_factor
                ),
            ))
        } else if name == crate::groups::OFFSETS_TOPIC {
            Err((
                error_code::INVALID_REQUEST,
                "internal topic: the broker creates it for the group coordinators".to_string(),
            ))
        } else if !topic.assignments.is_empty() {
            Err((
                error_code::INVALID_REQUEST,
                "manual replica assignments are not supported".to_string(),
            ))
        } else if request.validate_only {
            let topics = shard::current().topics();
            shard::validate_new_topic(&topics, &name, partitions, &configs)
                .map(|()| None)
                .map_err(topic_change_error)
        } else {
            let (name, configs) = (name.clone(), configs.clone());
            match rt::run_on(0, move || shard::create_topic(name, partitions, configs)).await {
                Ok(Ok(meta)) => match shard::current().offline.of_topic(&meta.name).first() {
                    // Created, but a partition's log could not be opened: say so, rather
                    // than report a topic that refuses every write as healthy.
                    Some((partition, reason)) => Err((
                        error_code::KAFKA_STORAGE_ERROR,
                        format!("topic created, but partition {partition} cannot be opened ({reason}); retrying"),
                    )),
                    None => Ok(Some(meta.uuid())),
                },
                Ok(Err(e)) => Err(topic_change_error(e)),
                Err(_) => Err((error_code::NOT_CONTROLLER, "shutting down".to_string())),
            }
        };
        match outcome {
            Ok(id) => {
                result.error_code = error_code::NONE;
                if let Some(id) = id {
                    result.topic_id = id;
                }
                if version >= 5 {
                    result.num_partitions = partitions;
                    result.replication_factor = 1;
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
