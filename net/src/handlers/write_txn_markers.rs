//! WriteTxnMarkers (key 27): a transaction coordinator has this broker write the commit or
//! abort markers of transactions to the partitions it leads. On one broker the coordinator
//! writes its markers directly (the same [`markers::write`](crate::txn::markers::write)); the
//! API serves coordinators on other brokers, and tools.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::kafka::error_code;
use crate::partitions::TopicPartition;
use crate::txn::coordinator::newest_coordinator_epoch;
use crate::txn::markers::{self, MarkerWrite};

crate::api!(WriteTxnMarkers, 1..=1, |call, request| handle(request)
    .await);

pub async fn handle(request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    for marker in request.markers {
        // Only the coordinator of this broker writes markers, at its epoch: a marker claiming
        // a newer one would fence it from the producer's partitions.
        let claimed_newer = marker.coordinator_epoch > newest_coordinator_epoch();
        let write = MarkerWrite {
            producer_id: marker.producer_id.0,
            producer_epoch: marker.producer_epoch,
            commit: marker.transaction_result,
            coordinator_epoch: marker.coordinator_epoch,
        };
        let partitions: Vec<TopicPartition> = marker
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|&p| TopicPartition::new(t.name.0.as_str(), p))
            })
            .collect();
        let codes: Vec<i16> = if claimed_newer {
            vec![error_code::INVALID_REQUEST; partitions.len()]
        } else {
            markers::write(write, partitions)
                .await
                .into_iter()
                .map(|(_, code)| code)
                .collect()
        };
        let mut codes = codes.into_iter();
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        result.topics = marker
            .topics
            .into_iter()
            .map(|t| {
                let mut topic = WritableTxnMarkerTopicResult::default();
                topic.partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&partition| {
                        let mut p = WritableTxnMarkerPartitionResult::default();
                        p.partition_index = partition;
                        p.error_code = codes.next().unwrap_or(crate::route::errors::NOT_ANSWERED);
                        p
                    })
                    .collect();
                topic.name = t.name;
                topic
            })
            .collect();
        response.markers.push(result);
    }
    response
}
