//! ListPartitionReassignments (key 46, KIP-455): the partition moves under way, with each
//! one's replicas and the replicas it adds and removes (`kafka-reassign-partitions.sh
//! --verify`, the admin client's `listPartitionReassignments`).
//!
//! In a cluster the active controller answers from its metadata; a lone broker never has a
//! move under way.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::partitions::authority;

crate::api!(ListPartitionReassignments, 0..=0, |call, request| handle(
    call.broker.in_cluster,
    request
)
.await);

pub async fn handle(
    in_cluster: bool,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !in_cluster {
        return ListPartitionReassignmentsResponse::default();
    }
    let timeout = authority::request_timeout(request.timeout_ms);
    match crate::controller::node::to_controller(request, timeout).await {
        Ok(response) => response,
        Err((code, message)) => {
            let mut response = ListPartitionReassignmentsResponse::default();
            response.error_code = code;
            response.error_message = Some(StrBytes::from_string(message));
            response
        }
    }
}
