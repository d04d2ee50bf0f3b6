//! TxnOffsetCommit (key 28): a transactional producer commits a consumer group's offsets
//! inside its transaction (sendOffsetsToTransaction, after AddOffsetsToTxn). The group's
//! coordinator writes them in the producer's transaction and applies them only when the
//! transaction's COMMIT marker reaches the group's partition; until then a consumer asking
//! for stable offsets is told UNSTABLE_OFFSET_COMMIT. v3 (KIP-447) names the member and
//! generation, checked as Kafka checks them; earlier versions name neither.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::groups::coordinator::{CommitEntry, TxnCommit};
use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(TxnOffsetCommit, 0..=3, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| CommitEntry {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
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
    let commit = TxnCommit {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: if version >= 3 {
            request.generation_id
        } else {
            -1
        },
    };
    let id = group_id.clone();
    let codes = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| coordinator.txn_commit(partition, id, commit, entries),
    )
    .await
    .unwrap_or_else(|code| vec![code; count]);
    let mut codes = codes.into_iter();
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut topic = TxnOffsetCommitResponseTopic::default();
            topic.name = t.name;
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = TxnOffsetCommitResponsePartition::default();
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
