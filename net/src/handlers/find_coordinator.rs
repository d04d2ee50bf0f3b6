//! FindCoordinator (key 10): every group and transaction is coordinated by this broker (its
//! shards split the groups among themselves behind the one address). v4+ asks for several
//! keys at once. The offsets topic is created on the first group lookup, the transaction
//! state topic on the first transactional id's, as Kafka does.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::groups;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

crate::api!(FindCoordinator, 0..=6, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        for key in request.coordinator_keys {
            let (error_code, error_message) = lookup(broker, request.key_type, &key).await;
            let mut coordinator = Coordinator::default();
            coordinator.key = key;
            coordinator.error_code = error_code;
            coordinator.error_message = error_message.map(StrBytes::from_static_str);
            if error_code == error_code::NONE {
                coordinator.node_id = BrokerId(broker.node_id);
                coordinator.host = StrBytes::from_string(broker.advertised_host.clone());
                coordinator.port = i32::from(broker.advertised_port);
            } else {
                coordinator.node_id = BrokerId(-1);
                coordinator.port = -1;
            }
            response.coordinators.push(coordinator);
        }
        return response;
    }
    let (error_code, error_message) = lookup(broker, request.key_type, &request.key).await;
    response.error_code = error_code;
    if version >= 1 {
        response.error_message = error_message.map(StrBytes::from_static_str);
    }
    if error_code == error_code::NONE {
        response.node_id = BrokerId(broker.node_id);
        response.host = StrBytes::from_string(broker.advertised_host.clone());
        response.port = i32::from(broker.advertised_port);
    } else {
        response.node_id = BrokerId(-1);
        response.port = -1;
    }
    response
}

async fn lookup(broker: &BrokerInfo, key_type: i8, key: &str) -> (i16, Option<&'static str>) {
    match key_type {
        KEY_GROUP if key.is_empty() => (error_code::INVALID_GROUP_ID, Some("empty group id")),
        KEY_GROUP => {
            match groups::ensure_offsets_topic(broker.groups.offsets_topic_num_partitions).await {
                Ok(()) => (error_code::NONE, None),
                Err(code) => (code, Some("the offsets topic is not available")),
            }
        }
        KEY_TRANSACTION if key.is_empty() => {
            (error_code::INVALID_REQUEST, Some("empty transactional id"))
        }
        KEY_TRANSACTION => {
            let config = &broker.transactions;
            let ensured = crate::txn::state_topic::ensure_state_topic(
                config.state_log_num_partitions,
                config.state_log_segment_bytes,
            )
            .await;
            match ensured {
                Ok(()) => (error_code::NONE, None),
                Err(code) => (code, Some("the transaction state topic is not available")),
            }
        }
        _ => (
            error_code::INVALID_REQUEST,
            Some("unsupported coordinator key type"),
        ),
    }
}
