//! Brokers' requests to the active controller, as they arrive on the controller listener:
//! Kafka's BrokerRegistration and BrokerHeartbeat here, partition leaders' ISR changes in
//! [`super::alter_partition`], the requests brokers forward for their
//! clients in [`super::admin`]; all decided by the
//! [`MetadataController`](crate::controller::metadata::MetadataController) through the
//! [`Voter`]; DescribeQuorum, forwarded by nodes that aren't the quorum's leader and
//! answered from this voter's raft status; and broker-only nodes' Fetch and FetchSnapshot of
//! the metadata log ([`metadata_fetch`]).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterPartitionRequest, ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerRegistrationRequest, BrokerRegistrationResponse, DescribeQuorumRequest, FetchRequest,
    FetchSnapshotRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::alter_partition;
use super::metadata_fetch::{self, FETCH_SNAPSHOT_VERSION, FETCH_VERSION};
use super::voter::Voter;
use crate::controller::metadata::{Heartbeat, Listener, Registration};
use crate::handlers::describe_quorum;
use crate::kafka::error_code;

/// The version of each request a broker sends (and the controller accepts).
pub const REGISTRATION_VERSION: i16 = 0;
pub const HEARTBEAT_VERSION: i16 = 0;

/// Answers one request (Kafka header and body); `None` for one that makes no sense, which
/// closes the connection.
pub async fn answer(voter: &Voter, mut payload: Bytes) -> Option<Bytes> {
    let key = i16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
    let version = i16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
    let key = ApiKey::try_from(key).ok()?;
    let header = RequestHeader::decode(&mut payload, key.request_header_version(version)).ok()?;
    let mut out = BytesMut::new();
    let mut response_header = ResponseHeader::default();
    response_header.correlation_id = header.correlation_id;
    response_header
        .encode(&mut out, key.response_header_version(version))
        .ok()?;
    match (key, version) {
        (ApiKey::BrokerRegistration, REGISTRATION_VERSION) => {
            let request = BrokerRegistrationRequest::decode(&mut payload, version).ok()?;
            register(voter, request)
                .await
                .encode(&mut out, version)
                .ok()?;
        }
        (ApiKey::BrokerHeartbeat, HEARTBEAT_VERSION) => {
            let request = BrokerHeartbeatRequest::decode(&mut payload, version).ok()?;
            heartbeat(voter, request)
                .await
                .encode(&mut out, version)
                .ok()?;
        }
        (ApiKey::DescribeQuorum, 0..=describe_quorum::MAX_VERSION) => {
            let request = DescribeQuorumRequest::decode(&mut payload, version).ok()?;
            // Answered here, never forwarded again: a node that has lost the leadership says
            // NOT_LEADER_OR_FOLLOWER, and the client retries (no forwarding loops).
            let response = describe_quorum::answer_as_leader(voter, &request);
            describe_quorum::fit_to_version(response, version)
                .encode(&mut out, version)
                .ok()?;
        }
        (ApiKey::AlterPartition, alter_partition::ALTER_PARTITION_VERSION) => {
            let request = AlterPartitionRequest::decode(&mut payload, version).ok()?;
            alter_partition::alter_partition(voter, request)
                .await
                .encode(&mut out, version)
                .ok()?;
        }
        (ApiKey::Fetch, FETCH_VERSION) => {
            let request = FetchRequest::decode(&mut payload, version).ok()?;
            metadata_fetch::answer_fetch(voter, &request)
                .await
                .encode(&mut out, version)
                .ok()?;
        }
        (ApiKey::FetchSnapshot, FETCH_SNAPSHOT_VERSION) => {
            let request = FetchSnapshotRequest::decode(&mut payload, version).ok()?;
            metadata_fetch::answer_fetch_snapshot(voter, &request)
                .encode(&mut out, version)
                .ok()?;
        }
        // Requests brokers forward for their clients.
        _ => return super::admin::answer(voter, key, version, payload, out).await,
    }
    Some(out.freeze())
}

async fn register(voter: &Voter, request: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
    let registration = Registration {
        broker_id: request.broker_id.0,
        incarnation_id: *request.incarnation_id.as_bytes(),
        listeners: request
            .listeners
            .iter()
            .map(|l| Listener {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
            })
            .collect(),
        rack: request.rack.as_ref().map(|r| r.to_string()),
    };
    let mut response = BrokerRegistrationResponse::default();
    let decided = voter
        .decide(|controller, now| controller.register_broker(now, &registration))
        .await;
    match decided {
        Ok(()) => {
            let epoch = voter.with_image(|image| {
                image
                    .broker(registration.broker_id)
                    .filter(|b| b.incarnation_id == registration.incarnation_id)
                    .map(|b| b.epoch)
            });
            match epoch {
                Some(epoch) => response.broker_epoch = epoch,
                // Superseded between commit and now: the broker registers again.
                None => response.error_code = error_code::NOT_CONTROLLER,
            }
        }
        Err(code) => response.error_code = code,
    }
    response
}

async fn heartbeat(voter: &Voter, request: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
    let heartbeat = Heartbeat {
        broker_id: request.broker_id.0,
        broker_epoch: request.broker_epoch,
        want_fence: request.want_fence,
        want_shutdown: request.want_shut_down,
        current_metadata_offset: request.current_metadata_offset,
    };
    let mut response = BrokerHeartbeatResponse::default();
    match voter
        .decide(|controller, now| controller.heartbeat(now, &heartbeat))
        .await
    {
        Ok(reply) => {
            response.is_caught_up = reply.is_caught_up;
            response.is_fenced = reply.is_fenced;
            response.should_shut_down = reply.should_shutdown;
        }
        Err(code) => {
            response.error_code = code;
            response.is_fenced = true;
        }
    }
    response
}
