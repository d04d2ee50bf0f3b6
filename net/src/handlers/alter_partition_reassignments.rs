//! AlterPartitionReassignments (key 45, KIP-455; v1 adds KIP-860's
//! `allow_replication_factor_change`): moves partitions' replicas to other brokers, or cancels
//! a move under way (`kafka-reassign-partitions.sh`, the admin client's
//! `alterPartitionReassignments`).
//!
//! In a cluster the broker forwards the request to the active controller, which decides each
//! partition (`controller::metadata::reassignment`) and answers once the change has
//! committed; the move itself completes later, when the new replicas have caught up. A lone
//! broker is every partition's only replica: a target of just itself needs nothing, any
//! other broker is not registered.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::controller::metadata::NO_REASSIGNMENT_IN_PROGRESS;
use crate::kafka::error_code;
use crate::partitions::{authority, shard};

crate::api!(AlterPartitionReassignments, 0..=1, |call, request| handle(
    call.broker.in_cluster,
    call.broker.node_id,
    request,
    call.version
)
.await);

pub async fn handle(
    in_cluster: bool,
    node_id: i32,
    mut request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    if version < 1 {
        // Before KIP-860 any replication factor was allowed (the field's default).
        request.allow_replication_factor_change = true;
    }
    if !in_cluster {
        return alone(node_id, &request);
    }
    let timeout = authority::request_timeout(request.timeout_ms);
    match crate::controller::node::to_controller(request.clone(), timeout).await {
        Ok(response) => response,
        Err((code, message)) => {
            let mut response = each_partition(&request, |_, _| (code, Some(message.clone())));
            response.error_code = code;
            response.error_message = Some(StrBytes::from_string(message));
            response
        }
    }
}

/// A response answering every partition the request names with `answer(topic, partition)`.
fn each_partition(
    request: &AlterPartitionReassignmentsRequest,
    answer: impl Fn(
        &str,
        &kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition,
    ) -> (i16, Option<String>),
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    for topic in &request.topics {
        let mut result = ReassignableTopicResponse::default();
        result.name = topic.name.clone();
        for partition in &topic.partitions {
            let (code, message) = answer(topic.name.0.as_str(), partition);
            let mut p = ReassignablePartitionResponse::default();
            p.partition_index = partition.partition_index;
            p.error_code = code;
            p.error_message = message.map(StrBytes::from_string);
            result.partitions.push(p);
        }
        response.responses.push(result);
    }
    response
}

/// A lone broker's answer: itself as the target is already the assignment; any other broker
/// is unknown; nothing is ever in progress to cancel.
fn alone(
    node_id: i32,
    request: &AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let topics = shard::current().topics();
    each_partition(request, |topic, partition| {
        let count = topics.get(topic).map_or(0, |t| t.shards.len());
        let known = usize::try_from(partition.partition_index).is_ok_and(|i| i < count);
        if !known {
            return (error_code::UNKNOWN_TOPIC_OR_PARTITION, None);
        }
        match &partition.replicas {
            None => (
                NO_REASSIGNMENT_IN_PROGRESS,
                Some("no reassignment of this partition is in progress".into()),
            ),
            Some(target) if target.len() == 1 && target[0].0 == node_id => (error_code::NONE, None),
            Some(_) => (
                error_code::INVALID_REPLICA_ASSIGNMENT,
                Some(format!(
                    "broker {node_id} runs alone: it is the only replica"
                )),
            ),
        }
    })
}
