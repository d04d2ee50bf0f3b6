//! OffsetCommit (key 8): stores committed offsets in `__consumer_offsets`. Members of a group
//! commit with their generation; clients outside group management commit with generation -1
//! while the group is empty. v2-4 carry a retention time (ignored, as Kafka does since 2.1:
//! `offsets.retention.minutes` rules), v6 the leader epoch, v7 the instance id.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::groups::coordinator::CommitEntry;
use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(OffsetCommit, 2..=9, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| CommitEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_deref()
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect();
    let count = entries.len();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let generation = request.generation_id_or_member_epoch;
    let id = group_id.clone();
    let codes = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| {
            coordinator.commit(partition, id, member_id, instance_id, generation, entries)
        },
    )
    .await
    .unwrap_or_else(|code| vec![code; count]);
    let mut codes = codes.into_iter();
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut topic = OffsetCommitResponseTopic::default();
            topic.name = t.name;
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetCommitResponsePartition::default();
                    partition.partition_index = p.partition_index;
                    partition.error_code = codes.next().unwrap_or_default();
                    partition
                })
                .collect();
            topic
        })
        .collect();
    response
}
