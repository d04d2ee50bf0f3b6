//! JoinGroup (key 11): joins (or rejoins) a group; the answer waits until the rebalance
//! completes. v0 has no rebalance timeout (the session timeout serves); from v4 a first join
//! is answered MEMBER_ID_REQUIRED with the id to join again with (KIP-394); v5 adds static
//! membership (`group.instance.id`); v7 answers with the protocol type; v9 can tell a static
//! leader to skip the assignment.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::groups::group::{join_error, JoinRequest, JoinResult};
use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(JoinGroup, 0..=9, |call, request| handle(
    &call.broker,
    &call.header,
    call.peer,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    header: &RequestHeader,
    peer: SocketAddr,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let session_timeout = duration_ms(request.session_timeout_ms);
    let req = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        require_known_member_id: version >= 4,
        client_id: header.client_id.as_deref().unwrap_or_default().to_owned(),
        client_host: format!("/{}", peer.ip()),
        session_timeout,
        rebalance_timeout: if version >= 1 {
            duration_ms(request.rebalance_timeout_ms)
        } else {
            session_timeout
        },
        protocol_type: request.protocol_type.to_string(),
        supports_skip_assignment: version >= 9,
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
    };
    let member_id = req.member_id.clone();
    let partitions = broker.groups.offsets_topic_num_partitions;
    let id = group_id.clone();
    let result = on_coordinator(partitions, &group_id, move |coordinator, partition| {
        coordinator.join(partition, id, req)
    })
    .await
    .unwrap_or_else(|code| join_error(code, &member_id));
    response(result, version)
}

/// A negative timeout is as bad as a zero one: both fail the session timeout check.
fn duration_ms(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = result.error;
    response.generation_id = result.generation;
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
    }
    // Before v7 the protocol name is not nullable.
    response.protocol_name = match result.protocol {
        Some(name) => Some(StrBytes::from_string(name)),
        None if version >= 7 => None,
        None => Some(StrBytes::default()),
    };
    response.leader = StrBytes::from_string(result.leader);
    response.skip_assignment = version >= 9 && result.skip_assignment;
    response.member_id = StrBytes::from_string(result.member_id);
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = StrBytes::from_string(m.member_id);
            if version >= 5 {
                member.group_instance_id = m.instance_id.map(StrBytes::from_string);
            }
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}
