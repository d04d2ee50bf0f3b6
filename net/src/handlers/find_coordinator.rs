//! FindCoordinator (key 10): a group is coordinated by the leader of its `__consumer_offsets`
//! partition, a transactional id by the leader of its `__transaction_state` partition; a lone
//! broker leads them all (its shards split them behind the one address). v4+ asks for several
//! keys at once. The offsets topic is created on the first group lookup, the transaction
//! state topic on the first transactional id's, as Kafka does.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::controller::view;
use crate::groups;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;
use crate::partitions::shard;
use crate::txn::state_topic;

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
            let found = lookup(broker, request.key_type, &key).await;
            let mut coordinator = Coordinator::default();
            coordinator.key = key;
            match found {
                Ok(node) => {
                    coordinator.node_id = BrokerId(node.id);
                    coordinator.host = StrBytes::from_string(node.host);
                    coordinator.port = node.port;
                }
                Err((code, message)) => {
                    coordinator.error_code = code;
                    coordinator.error_message = Some(StrBytes::from_static_str(message));
                    coordinator.node_id = BrokerId(-1);
                    coordinator.port = -1;
                }
            }
            response.coordinators.push(coordinator);
        }
        return response;
    }
    match lookup(broker, request.key_type, &request.key).await {
        Ok(node) => {
            response.node_id = BrokerId(node.id);
            response.host = StrBytes::from_string(node.host);
            response.port = node.port;
        }
        Err((code, message)) => {
            response.error_code = code;
            if version >= 1 {
                response.error_message = Some(StrBytes::from_static_str(message));
            }
            response.node_id = BrokerId(-1);
            response.port = -1;
        }
    }
    response
}

/// The broker a key's coordinator runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    id: i32,
    host: String,
    port: i32,
}

/// Why no coordinator can be named: the Kafka error and its message.
type NotFound = (i16, &'static str);

async fn lookup(broker: &BrokerInfo, key_type: i8, key: &str) -> Result<Node, NotFound> {
    match key_type {
        KEY_GROUP if key.is_empty() => Err((error_code::INVALID_GROUP_ID, "empty group id")),
        KEY_GROUP => {
            groups::ensure_offsets_topic(broker.groups.offsets_topic_num_partitions)
                .await
                .map_err(|code| (code, "the offsets topic is not available"))?;
            leader_of_key(broker, groups::OFFSETS_TOPIC, key)
        }
        KEY_TRANSACTION if key.is_empty() => {
            Err((error_code::INVALID_REQUEST, "empty transactional id"))
        }
        KEY_TRANSACTION => {
            let config = &broker.transactions;
            state_topic::ensure_state_topic(
                config.state_log_num_partitions,
                config.state_log_segment_bytes,
            )
            .await
            .map_err(|code| (code, "the transaction state topic is not available"))?;
            leader_of_key(broker, state_topic::STATE_TOPIC, key)
        }
        _ => Err((
            error_code::INVALID_REQUEST,
            "unsupported coordinator key type",
        )),
    }
}

/// The broker leading `topic`'s partition for `key` (Kafka's abs(hash) % partitions), where
/// the key's coordinator lives: this broker when it runs alone (or the topic predates its
/// cluster), else the leader the metadata names, if it is live.
fn leader_of_key(broker: &BrokerInfo, topic: &str, key: &str) -> Result<Node, NotFound> {
    const UNAVAILABLE: NotFound = (
        error_code::COORDINATOR_NOT_AVAILABLE,
        "the coordinator's partition has no live leader",
    );
    let me = Node {
        id: broker.node_id,
        host: broker.advertised_host.clone(),
        port: i32::from(broker.advertised_port),
    };
    let topics = shard::current().topics();
    // Made a moment ago on another broker: this one hasn't heard of it yet.
    let meta = topics.get(topic).ok_or(UNAVAILABLE)?;
    let partition = groups::partition_for(key, meta.shards.len() as i32);
    let Some(placement) = meta.placement(partition) else {
        return Ok(me);
    };
    let leader = placement.leader;
    if leader == broker.node_id {
        return Ok(me);
    }
    let cluster = view::current().ok_or(UNAVAILABLE)?;
    let unreachable = view::unreachable_now();
    let leader = cluster
        .live_brokers(&unreachable)
        .find(|b| b.id == leader)
        .ok_or(UNAVAILABLE)?;
    Ok(Node {
        id: leader.id,
        host: leader.host.clone(),
        port: leader.port,
    })
}
