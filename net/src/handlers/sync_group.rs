//! SyncGroup (key 14): the leader hands in the assignment, every member gets its share once
//! the group is stored. v3 adds static membership, v5 the protocol type and name (checked
//! against the group's, answered back).

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::groups::group::sync_error;
use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(SyncGroup, 0..=5, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let protocol_type = request.protocol_type.map(|p| p.to_string());
    let protocol = request.protocol_name.map(|p| p.to_string());
    let assignments: Vec<(String, Bytes)> = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let generation = request.generation_id;
    let id = group_id.clone();
    let result = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| {
            coordinator.sync(
                partition,
                id,
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol,
                assignments,
            )
        },
    )
    .await
    .unwrap_or_else(sync_error);
    let mut response = SyncGroupResponse::default();
    response.error_code = result.error;
    if version >= 5 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
        response.protocol_name = result.protocol.map(StrBytes::from_string);
    }
    response.assignment = result.assignment;
    response
}
