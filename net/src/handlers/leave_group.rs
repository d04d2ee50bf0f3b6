//! LeaveGroup (key 13): members leave, the rest rebalance. v0-2 name one member; v3+ a batch
//! of members by member id or `group.instance.id`, each answered on its own.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::groups::on_coordinator;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;

crate::api!(LeaveGroup, 0..=5, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let id = group_id.clone();
    let asked = members.clone();
    let codes = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| async move { coordinator.leave(partition, &id, &asked) },
    )
    .await
    .and_then(|codes| codes);
    let mut response = LeaveGroupResponse::default();
    match codes {
        Err(code) => response.error_code = code,
        Ok(codes) if version >= 3 => {
            response.members = request
                .members
                .into_iter()
                .zip(codes)
                .map(|(m, code)| {
                    let mut member = MemberResponse::default();
                    member.member_id = m.member_id;
                    member.group_instance_id = m.group_instance_id;
                    member.error_code = code;
                    member
                })
                .collect();
        }
        Ok(codes) => response.error_code = codes.first().copied().unwrap_or(error_code::NONE),
    }
    response
}
