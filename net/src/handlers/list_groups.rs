//! ListGroups (key 16): the groups of every shard's coordinator. v4 filters by state
//! (case-insensitive), v5 by group type (all of ours are "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt;

use crate::groups::coordinator;
use crate::kafka::error_code;

const GROUP_TYPE: &str = "classic";

crate::api!(ListGroups, 0..=5, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let mut response = ListGroupsResponse::default();
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return response;
    }
    for shard in 0..rt::shard_count() {
        let Ok(listed) = rt::run_on(shard, || async { coordinator::current().list() }).await else {
            response.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
            continue;
        };
        for group in listed {
            if !states.is_empty() && !states.iter().any(|s| *s == group.state.to_lowercase()) {
                continue;
            }
            let mut listed = ListedGroup::default();
            listed.group_id = GroupId(StrBytes::from_string(group.group_id));
            listed.protocol_type = StrBytes::from_string(group.protocol_type);
            if version >= 4 {
                listed.group_state = StrBytes::from_static_str(group.state);
            }
            if version >= 5 {
                listed.group_type = StrBytes::from_static_str(GROUP_TYPE);
            }
            response.groups.push(listed);
        }
    }
    response
}
