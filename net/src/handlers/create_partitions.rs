//! CreatePartitions (key 37): grows topics to a new partition count (placed on the shards with
//! fewest partitions), with explicit replica assignments when given (checked as Kafka's
//! controller does); `validate_only` checks everything without changing anything.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::registered_brokers;
use super::topic_change_error;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;
use crate::partitions::authority;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::shard;
use runnel_engine::rt;

crate::api!(CreatePartitions, 0..=3, |call, request| handle(
    &call.broker,
    request
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    // Kafka refuses every topic named more than once in one request.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.0.to_string();
        if seen.get(&name).is_some_and(|&n| n > 1) {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(StrBytes::from_static_str("Duplicate topic name."));
            response.results.push(result);
            continue;
        }
        // Their partition counts decide which partition each group or transactional id maps
        // to: more partitions would move every id away from its state.
        if is_internal(&name) {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(StrBytes::from_static_str(
                "the partitions of an internal topic cannot be changed",
            ));
            response.results.push(result);
            continue;
        }
        // Replica lists as broker ids; their size is bounded by the request's. An empty list
        // counts as none: Kafka only distinguishes null, but encoders that default the field
        // to an empty array (the kafka-protocol crate does) mean "no assignment" by it.
        let assignments = topic.assignments.filter(|a| !a.is_empty());
        let assignments: Option<Vec<Vec<i32>>> = assignments.map(|assignments| {
            assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|id| id.0).collect())
                .collect()
        });
        let brokers = registered_brokers(broker.node_id);
        let (count, validate_only) = (topic.count, request.validate_only);
        let timeout = authority::request_timeout(request.timeout_ms);
        match rt::run_on(0, move || {
            shard::create_partitions(name, count, assignments, brokers, validate_only, timeout)
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let (code, message) = topic_change_error(e);
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
            Err(_) => result.error_code = error_code::NOT_CONTROLLER,
        }
        response.results.push(result);
    }
    response
}
