//! AlterPartitionReassignments and ListPartitionReassignments on the active controller: each
//! partition's move decided on its own through the [`Voter`]
//! ([`MetadataController::alter_reassignment`]), the list read from its image.
//!
//! A request the voter turns away as not the controller's is answered with NOT_CONTROLLER at
//! the top, whatever was decided before: the broker asks the new controller again, and asking
//! twice for the same target changes nothing the second time.
//!
//! [`MetadataController::alter_reassignment`]: crate::controller::metadata::MetadataController::alter_reassignment

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
    let mut response = AlterPartitionReassignmentsResponse::default();
    let allow_rf_change = request.allow_replication_factor_change;
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = ReassignableTopicResponse::default();
        result.name = topic.name;
        for partition in topic.partitions {
            let target: Option<Vec<i32>> = partition
                .replicas
                .map(|replicas| replicas.into_iter().map(|b| b.0).collect());
            let decided = voter
                .decide(|controller, _| {
                    controller.alter_reassignment(
                        &name,
                        partition.partition_index,
                        target.as_deref(),
                        allow_rf_change,
                    )
                })
                .await;
            let mut answer = ReassignablePartitionResponse::default();
            answer.partition_index = partition.partition_index;
            if let Err(code) = decided {
                if code == ec::NOT_CONTROLLER {
                    response.error_code = code;
                    response.error_message = Some(StrBytes::from_static_str(
                        "this node is no longer the active controller",
                    ));
                    return response;
                }
                answer.error_code = code;
                answer.error_message = Some(StrBytes::from_string(why(code)));
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
