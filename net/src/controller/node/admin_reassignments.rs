//! AlterPartitionReassignments and ListPartitionReassignments on the active controller: every
//! move of a request decided at once through the [`Voter`], as one entry
//! ([`MetadataController::alter_reassignments`]), the list read from its image.
//!
//! A request the voter turns away (NOT_CONTROLLER, or an entry that did not commit in time)
//! carries the error at the top and on every partition: the broker asks the new controller
//! again, and asking twice for the same target changes nothing the second time.
//!
//! [`MetadataController::alter_reassignments`]: crate::controller::metadata::MetadataController::alter_reassignments

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::voter::Voter;
use crate::controller::metadata::{Decision, OngoingReassignment, NO_REASSIGNMENT_IN_PROGRESS};
use crate::kafka::error_code as ec;

pub async fn alter(
    voter: &Voter,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = request.allow_replication_factor_change;
    let moves: Vec<(String, i32, Option<Vec<i32>>)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                let target = partition
                    .replicas
                    .as_ref()
                    .map(|replicas| replicas.iter().map(|b| b.0).collect());
                (topic.name.0.to_string(), partition.partition_index, target)
            })
        })
        .collect();
    let decided = voter
        .decide(|controller, _| {
            let moves: Vec<(&str, i32, Option<&[i32]>)> = moves
                .iter()
                .map(|(topic, partition, target)| (topic.as_str(), *partition, target.as_deref()))
                .collect();
            controller.alter_reassignments(&moves, allow_rf_change)
        })
        .await;
    let mut response = AlterPartitionReassignmentsResponse::default();
    let codes = match decided {
        Ok(codes) => codes,
        Err(code) => {
            // Nothing took effect (NOT_CONTROLLER: the broker asks the new controller; a
            // timeout: it may have, and asking again for the same targets changes nothing).
            response.error_code = code;
            response.error_message = Some(StrBytes::from_string(why(code)));
            vec![code; moves.len()]
        }
    };
    let mut codes = codes.into_iter();
    for topic in request.topics {
        let mut result = ReassignableTopicResponse::default();
        result.name = topic.name;
        for partition in topic.partitions {
            let mut answer = ReassignablePartitionResponse::default();
            answer.partition_index = partition.partition_index;
            answer.error_code = codes.next().unwrap_or(ec::UNKNOWN_SERVER_ERROR);
            if answer.error_code != ec::NONE {
                answer.error_message = Some(StrBytes::from_string(why(answer.error_code)));
            }
            result.partitions.push(answer);
        }
        response.responses.push(result);
    }
    response
}

/// What a refused partition's client is told.
fn why(code: i16) -> String {
    match code {
        ec::UNKNOWN_TOPIC_OR_PARTITION => "no such topic or partition".into(),
        ec::INVALID_REPLICA_ASSIGNMENT => "the target must name distinct registered brokers, and a cancellation must leave an in-sync replica".into(),
        ec::INVALID_REPLICATION_FACTOR => "the target changes the replication factor, which the request does not allow".into(),
        NO_REASSIGNMENT_IN_PROGRESS => "no reassignment of this partition is in progress".into(),
        ec::REQUEST_TIMED_OUT => "the change did not commit in time; retry".into(),
        ec::NOT_CONTROLLER => "this node is no longer the active controller".into(),
        ec::INVALID_REQUEST => "the partition is named twice in the request".into(),
        code => format!("error {code}"),
    }
}

pub async fn list(
    voter: &Voter,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let listed = voter
        .decide(|controller, _| {
            Ok(Decision {
                records: Vec::new(),
                reply: controller.reassignments(wanted.as_deref()),
            })
        })
        .await;
    let mut response = ListPartitionReassignmentsResponse::default();
    match listed {
        Ok(ongoing) => response.topics = by_topic(ongoing),
        Err(code) => response.error_code = code,
    }
    response
}

/// The reassignments under way, grouped by topic in the order given.
fn by_topic(ongoing: Vec<OngoingReassignment>) -> Vec<OngoingTopicReassignment> {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in ongoing {
        let mut partition = OngoingPartitionReassignment::default();
        partition.partition_index = r.partition;
        partition.replicas = ids(r.replicas);
        partition.adding_replicas = ids(r.reassigning.adding);
        partition.removing_replicas = ids(r.reassigning.removing);
        match topics.last_mut().filter(|t| t.name.0.as_str() == r.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => {
                let mut topic = OngoingTopicReassignment::default();
                topic.name = TopicName(StrBytes::from_string(r.topic));
                topic.partitions.push(partition);
                topics.push(topic);
            }
        }
    }
    topics
}
