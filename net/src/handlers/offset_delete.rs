//! OffsetDelete (key 47): removes committed offsets of partitions a group no longer consumes.
//! Partitions of topics its members subscribe to are GROUP_SUBSCRIBED_TO_TOPIC.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(OffsetDelete, 0..=0, |call, request| handle(
    &call.broker,
    request
)
.await);

pub async fn handle(broker: &BrokerInfo, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let id = group_id.clone();
    let result = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| coordinator.delete_offsets(partition, id, partitions),
    )
    .await
    .and_then(|codes| codes);
    let mut response = OffsetDeleteResponse::default();
    let codes = match result {
        Ok(codes) => codes,
        Err(code) => {
            response.error_code = code;
            return response;
        }
    };
    let mut codes = codes.into_iter();
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut topic = OffsetDeleteResponseTopic::default();
            topic.name = t.name;
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetDeleteResponsePartition::default();
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
