//! AlterPartition (KRaft's ISR changes): a partition leader asks the active controller to
//! shrink or expand the partition's ISR. Each partition is decided on its own through the
//! [`Voter`] by [`MetadataController::alter_partition`](crate::controller::metadata), which
//! fences stale leaders; the answer carries the partition as it is once the change commits.

use kafka_protocol::messages::alter_partition_response::{
    PartitionData as PartitionAnswer, TopicData as TopicAnswer,
};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};

use super::voter::Voter;
use crate::controller::metadata::AlterPartition;

/// The version brokers send and the controller accepts: topics named by id, new ISR as
/// broker ids (v3 adds broker epochs per ISR member, which this controller does not use).
pub const ALTER_PARTITION_VERSION: i16 = 2;

/// Most partitions one request may name: a leader sends its pending changes together, far
/// fewer than this; more is not a request a broker of ours sends.
const MAX_PARTITIONS: usize = 10_000;

pub async fn alter_partition(
    voter: &Voter,
    request: AlterPartitionRequest,
) -> AlterPartitionResponse {
    let mut response = AlterPartitionResponse::default();
    let count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
    if count > MAX_PARTITIONS {
        response.error_code = crate::kafka::error_code::INVALID_REQUEST;
        return response;
    }
    for topic in request.topics {
        let mut answer = TopicAnswer::default();
        answer.topic_id = topic.topic_id;
        for partition in topic.partitions {
            let change = AlterPartition {
                broker_id: request.broker_id.0,
                broker_epoch: request.broker_epoch,
                topic_id: *topic.topic_id.as_bytes(),
                partition: partition.partition_index,
                leader_epoch: partition.leader_epoch,
                new_isr: partition.new_isr.iter().map(|b| b.0).collect(),
                partition_epoch: partition.partition_epoch,
            };
            let decided = voter
                .decide(|controller, _| controller.alter_partition(&change))
                .await;
            let mut result = PartitionAnswer::default();
            result.partition_index = partition.partition_index;
            match decided {
                Ok(reply) => {
                    result.leader_id = BrokerId(reply.leader);
                    result.leader_epoch = reply.leader_epoch;
                    result.isr = reply.isr.into_iter().map(BrokerId).collect();
                    result.partition_epoch = reply.partition_epoch;
                }
                Err(code) => {
                    result.error_code = code;
                    result.leader_id = BrokerId(-1);
                    result.leader_epoch = -1;
                    result.partition_epoch = -1;
                }
            }
            answer.partitions.push(result);
        }
        response.topics.push(answer);
    }
    response
}
