//! Heartbeat (key 12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to
//! rejoin. v3 adds static membership.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::groups::on_coordinator;
use crate::kafka::BrokerInfo;

crate::api!(Heartbeat, 0..=4, |call, request| handle(
    &call.broker,
    request
)
.await);

pub async fn handle(broker: &BrokerInfo, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let generation = request.generation_id;
    let id = group_id.clone();
    let code = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &group_id,
        move |coordinator, partition| async move {
            coordinator.heartbeat(
                partition,
                &id,
                &member_id,
                instance_id.as_deref(),
                generation,
            )
        },
    )
    .await
    .unwrap_or_else(|code| code);
    let mut response = HeartbeatResponse::default();
    response.error_code = code;
    response
}
