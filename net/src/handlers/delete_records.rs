//! DeleteRecords (key 21): moves partitions' log start offsets forward (offset -1: to the high
//! watermark), on their owning shards; segments wholly below are removed.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use runnel_engine::log::ReadError;

use super::error_code;
use crate::cluster::shard::{self, on_shard};

pub async fn handle(request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = shard::current().topics();
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let mut topic_result = DeleteRecordsTopicResult::default();
        topic_result.name = topic.name.clone();
        for partition in topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = partition.partition_index;
            result.low_watermark = -1;
            let shard = topics.shard_of(topic.name.0.as_str(), partition.partition_index);
            let Some(shard) = shard else {
                result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                topic_result.partitions.push(result);
                continue;
            };
            let (name, index, offset) = (
                topic.name.0.to_string(),
                partition.partition_index as usize,
                partition.offset,
            );
            let outcome = on_shard(shard, move || async move {
                let Some(log) = shard::current().log(&name, index) else {
                    return Err(error_code::NOT_LEADER_OR_FOLLOWER);
                };
                log.delete_records(offset).await.map_err(|e| match e {
                    ReadError::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
                    ReadError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
                })
            })
            .await;
            match outcome {
                Ok(Ok(low_watermark)) => result.low_watermark = low_watermark,
                Ok(Err(code)) => result.error_code = code,
                Err(_) => result.error_code = error_code::NOT_LEADER_OR_FOLLOWER,
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
