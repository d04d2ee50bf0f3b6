//! DescribeGroups (key 15): state, protocol and members of each group (their metadata and
//! assignment only while Stable, as Kafka shows them). An unknown group is reported Dead;
//! v6 answers GROUP_ID_NOT_FOUND for it instead.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::groups::on_coordinator;
use crate::kafka::authorized_operations::{authorized, Resource, NOT_PROVIDED};
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;

crate::api!(DescribeGroups, 0..=6, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    let operations = version >= 3 && request.include_authorized_operations;
    for group_id in request.groups {
        let id = group_id.to_string();
        let found = on_coordinator(
            broker.groups.offsets_topic_num_partitions,
            &id.clone(),
            move |coordinator, _| async move { coordinator.describe(&id) },
        )
        .await;
        let mut described = DescribedGroup::default();
        described.group_id = group_id;
        described.authorized_operations = NOT_PROVIDED;
        match found {
            Err(code) => described.error_code = code,
            Ok(None) => {
                described.group_state = StrBytes::from_static_str("Dead");
                if version >= 6 {
                    described.error_code = error_code::GROUP_ID_NOT_FOUND;
                    described.error_message = Some(StrBytes::from_static_str("no such group"));
                }
            }
            Ok(Some(group)) => {
                described.error_code = group.error;
                described.group_state = StrBytes::from_string(group.state);
                described.protocol_type = StrBytes::from_string(group.protocol_type);
                described.protocol_data = StrBytes::from_string(group.protocol);
                described.members = group
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = StrBytes::from_string(m.member_id);
                        if version >= 4 {
                            member.group_instance_id = m.instance_id.map(StrBytes::from_string);
                        }
                        member.client_id = StrBytes::from_string(m.client_id);
                        member.client_host = StrBytes::from_string(m.client_host);
                        member.member_metadata = m.metadata;
                        member.member_assignment = m.assignment;
                        member
                    })
                    .collect();
            }
        }
        // Kafka reports them (v3+, when asked) only for groups described without error.
        if described.error_code == error_code::NONE {
            described.authorized_operations = authorized(Resource::Group, operations);
        }
        response.groups.push(described);
    }
    response
}
