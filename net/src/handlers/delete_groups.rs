//! DeleteGroups (key 42): deletes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`). A group with members is NON_EMPTY_GROUP; an unknown one
//! GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(DeleteGroups, 0..=2, |call, request| handle(
    &call.broker,
    request
)
.await);

pub async fn handle(broker: &BrokerInfo, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let id = group_id.to_string();
        let code = on_coordinator(
            broker.groups.offsets_topic_num_partitions,
            &id.clone(),
            move |coordinator, partition| coordinator.delete(partition, id),
        )
        .await
        .unwrap_or_else(|code| code);
        let mut result = DeletableGroupResult::default();
        result.group_id = group_id;
        result.error_code = code;
        response.results.push(result);
    }
    response
}
