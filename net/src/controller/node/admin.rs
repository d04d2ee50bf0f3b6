//! The active controller's side of the requests brokers forward for their clients (Kafka's
//! forwarding, KIP-590): CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs
//! on topics, ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments and
//! AllocateProducerIds. Each topic is decided on its own through the
//! [`Voter`] and answered with Kafka's per-topic error code and a message.
//!
//! Brokers check config names and values before forwarding; the controller checks structure:
//! whether topics exist, partition counts, replication factors against the live brokers, and
//! replica assignments. It trusts nothing in the request: it comes off the network.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionReassignmentsRequest,
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, ElectLeadersRequest,
    ElectLeadersResponse, IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest,
    ProducerId,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::voter::Voter;
use super::{admin_reassignments, admin_topics};
use crate::controller::metadata::ElectLeaders;
use crate::handlers::elect_leaders;
use crate::kafka::error_code;

/// The version of each request a broker forwards (and the controller accepts).
pub const CREATE_TOPICS_VERSION: i16 = 7;
pub const DELETE_TOPICS_VERSION: i16 = 6;
pub const CREATE_PARTITIONS_VERSION: i16 = 3;
pub const ALTER_CONFIGS_VERSION: i16 = 1;
pub const ALLOCATE_PRODUCER_IDS_VERSION: i16 = 0;
pub const ELECT_LEADERS_VERSION: i16 = 2;
pub const ALTER_REASSIGNMENTS_VERSION: i16 = 1;
pub const LIST_REASSIGNMENTS_VERSION: i16 = 0;

/// IncrementalAlterConfigs' resource types of topics and brokers, and the operations
/// forwarded (brokers resolve APPEND and SUBTRACT against the configs before forwarding).
pub const TOPIC_RESOURCE: i8 = 2;
pub const BROKER_RESOURCE: i8 = 4;
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;

/// Answers one forwarded request, its response written after `out`'s header; `None` for a
/// request this module does not take (the caller closes the connection).
pub async fn answer(
    voter: &Voter,
    key: ApiKey,
    version: i16,
    mut payload: Bytes,
    mut out: BytesMut,
) -> Option<Bytes> {
    match (key, version) {
        (ApiKey::CreateTopics, CREATE_TOPICS_VERSION) => {
            let request = CreateTopicsRequest::decode(&mut payload, version).ok()?;
            let response = admin_topics::create_topics(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::DeleteTopics, DELETE_TOPICS_VERSION) => {
            let request = DeleteTopicsRequest::decode(&mut payload, version).ok()?;
            let response = admin_topics::delete_topics(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSION) => {
            let request = CreatePartitionsRequest::decode(&mut payload, version).ok()?;
            let response = admin_topics::create_partitions(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::IncrementalAlterConfigs, ALTER_CONFIGS_VERSION) => {
            let request = IncrementalAlterConfigsRequest::decode(&mut payload, version).ok()?;
            let response = admin_topics::alter_configs(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::ElectLeaders, ELECT_LEADERS_VERSION) => {
            let request = ElectLeadersRequest::decode(&mut payload, version).ok()?;
            elect(voter, request).await.encode(&mut out, version).ok()?;
        }
        (ApiKey::AlterPartitionReassignments, ALTER_REASSIGNMENTS_VERSION) => {
            let request = AlterPartitionReassignmentsRequest::decode(&mut payload, version).ok()?;
            let response = admin_reassignments::alter(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::ListPartitionReassignments, LIST_REASSIGNMENTS_VERSION) => {
            let request = ListPartitionReassignmentsRequest::decode(&mut payload, version).ok()?;
            let response = admin_reassignments::list(voter, request).await;
            response.encode(&mut out, version).ok()?;
        }
        (ApiKey::AllocateProducerIds, ALLOCATE_PRODUCER_IDS_VERSION) => {
            let request = AllocateProducerIdsRequest::decode(&mut payload, version).ok()?;
            allocate_producer_ids(voter, request)
                .await
                .encode(&mut out, version)
                .ok()?;
        }
        _ => return None,
    }
    Some(out.freeze())
}

/// AllocateProducerIds: the next block, for the broker and epoch the request names (a broker
/// the controller does not know, or an old incarnation of it, gets none).
async fn allocate_producer_ids(
    voter: &Voter,
    request: AllocateProducerIdsRequest,
) -> AllocateProducerIdsResponse {
    let mut response = AllocateProducerIdsResponse::default();
    let (broker, epoch) = (request.broker_id.0, request.broker_epoch);
    match voter
        .decide(|controller, _| controller.allocate_producer_ids(broker, epoch))
        .await
    {
        Ok(block) => match i32::try_from(block.count) {
            Ok(count) => {
                response.producer_id_start = ProducerId(block.first);
                response.producer_id_len = count;
            }
            Err(_) => response.error_code = error_code::UNKNOWN_SERVER_ERROR,
        },
        Err(code) => {
            response.error_code = code;
            response.producer_id_start = ProducerId(-1);
        }
    }
    response
}

/// ElectLeaders: every partition decided in one entry, answered once it has committed (a new
/// leader in the answer is one the brokers will hear of). A request refused as a whole
/// (NOT_CONTROLLER, an unknown election type, an entry that did not commit) carries its code
/// at the top and on every partition it names.
async fn elect(voter: &Voter, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let election = ElectLeaders {
        election_type: request.election_type,
        partitions: elect_leaders::named_partitions(&request),
    };
    match voter
        .decide(|controller, _| controller.elect_leaders(&election))
        .await
    {
        Ok(reply) => elect_leaders::response(reply),
        Err(code) => elect_leaders::refused(&request, code, None),
    }
}
