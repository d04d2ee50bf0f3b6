//! DeleteRecords (key 21): moves partitions' log start offsets forward (offset -1: to the high
//! watermark), on their owning shards; segments wholly below are removed.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::kafka::error_code;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::{shard, Partition};
use crate::route::{self, ErrorCode, Need, Routed};

crate::api!(DeleteRecords, 0..=2, |call, request| handle(request).await);

pub async fn handle(request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = shard::current().topics();
    let mut response = DeleteRecordsResponse::default();
    let mut routed = Routed::new(Need::Leader);
    for topic in &request.topics {
        let mut topic_result = DeleteRecordsTopicResult::default();
        topic_result.name = topic.name.clone();
        for partition in &topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = partition.partition_index;
            result.low_watermark = -1;
            topic_result.partitions.push(result);
            let name = topic.name.0.as_str();
            // Kafka: "Cannot delete records of internal topic".
            if is_internal(name) {
                routed.refuse(error_code::INVALID_TOPIC_EXCEPTION);
                continue;
            }
            routed.push(&topics, name, partition.partition_index, partition.offset);
        }
        response.topics.push(topic_result);
    }
    let deleted = routed.scatter(delete_all).await.gather().await;
    let answers = response.topics.iter_mut().flat_map(|t| &mut t.partitions);
    for (answer, deleted) in answers.zip(deleted) {
        match deleted.and_then(|deleted| deleted) {
            Ok(low_watermark) => answer.low_watermark = low_watermark,
            Err(code) => answer.error_code = code,
        }
    }
    response
}

/// Moves each partition's log start offset, on the owning shard; answers the new one.
async fn delete_all(deletions: Vec<(Partition, i64)>) -> Vec<Result<i64, ErrorCode>> {
    let mut results = Vec::with_capacity(deletions.len());
    for (partition, before) in deletions {
        let deleted = partition.log().delete_records(before).await;
        results.push(deleted.map_err(|e| route::errors::read_error(&e)));
    }
    results
}
