//! One file per Kafka API. Each handler gets the decoded request and its version and returns
//! the response body; the connection encodes it at the same version.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::net::SocketAddr;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::cluster::shard::CreateError;
use crate::kafka::fetch_response::{self, Piece};
use crate::kafka::BrokerInfo;

/// The Kafka error code and message for a refused topic change.
pub fn topic_change_error(e: CreateError) -> (i16, String) {
    let code = match &e {
        CreateError::Exists(_) => error_code::TOPIC_ALREADY_EXISTS,
        CreateError::Unknown(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        CreateError::InvalidName(_) => error_code::INVALID_TOPIC_EXCEPTION,
        CreateError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
        CreateError::InvalidConfig(_) => error_code::INVALID_CONFIG,
        CreateError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
    };
    (code, e.to_string())
}

/// Kafka error codes the handlers answer with.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_CONFIG: i16 = 40;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// Config resource types.
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
}

/// A handler's answer: a message for the codec to encode, or (Fetch) an encoded body whose
/// records are still in segment files.
#[derive(Debug)]
pub enum Reply {
    Message(Box<ResponseKind>),
    Pieces(Vec<Piece>),
}

/// Runs the handler for `request`. Only APIs listed in [`crate::kafka::versions::SUPPORTED`]
/// reach this point, at versions listed there, and not Produce: the connection pipelines it
/// itself ([`produce::place`], then [`produce::Placed::finish`]).
pub async fn handle(
    broker: &BrokerInfo,
    header: &RequestHeader,
    peer: SocketAddr,
    request: RequestKind,
    version: i16,
) -> Reply {
    if let RequestKind::Fetch(request) = request {
        // Reads below this size are copied into the response; larger ones are spliced.
        let copy_below = if broker.zero_copy_fetch {
            broker.fetch_splice_min_bytes
        } else {
            u64::MAX
        };
        let reply = fetch::handle(request, version, copy_below).await;
        return Reply::Pieces(fetch_response::encode(reply, version));
    }
    Reply::Message(Box::new(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(broker, request, version).await)
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics::handle(request, version).await)
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(request, version).await)
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(delete_topics::handle(request, version).await)
        }
        RequestKind::DeleteRecords(request) => {
            ResponseKind::DeleteRecords(delete_records::handle(request).await)
        }
        RequestKind::CreatePartitions(request) => {
            ResponseKind::CreatePartitions(create_partitions::handle(request).await)
        }
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(request, version))
        }
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(alter_configs::handle(request).await)
        }
        RequestKind::IncrementalAlterConfigs(request) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(request).await)
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id::handle(&request))
        }
        RequestKind::DescribeLogDirs(request) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(request, version).await)
        }
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, &request, version))
        }
        RequestKind::FindCoordinator(request) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, request, version).await)
        }
        RequestKind::JoinGroup(request) => ResponseKind::JoinGroup(
            join_group::handle(broker, header, peer, request, version).await,
        ),
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, request, version).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat::handle(broker, request).await)
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, request, version).await)
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, request, version).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, request, version).await)
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list_groups::handle(request, version).await)
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, request, version).await)
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, request).await)
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, request).await)
        }
        RequestKind::Produce(_) => unreachable!("the connection runs Produce requests itself"),
        other => unreachable!("dispatched an API missing from versions::SUPPORTED: {other:?}"),
    }))
}
