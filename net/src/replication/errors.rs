//! The Kafka error codes the replication machines read from the network or answer with, and
//! what a follower does about each. Codes come from the codec's table so they cannot drift.

use kafka_protocol::error::ResponseError;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
pub const INVALID_UPDATE_VERSION: i16 = ResponseError::InvalidUpdateVersion.code();
pub const OPERATION_NOT_ATTEMPTED: i16 = ResponseError::OperationNotAttempted.code();
pub const INELIGIBLE_REPLICA: i16 = ResponseError::IneligibleReplica.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
pub const NOT_ENOUGH_REPLICAS: i16 = ResponseError::NotEnoughReplicas.code();
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 =
    ResponseError::NotEnoughReplicasAfterAppend.code();

/// What a follower does about an error its leader answered (a Fetch or OffsetsForLeaderEpoch
/// partition error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderError {
    /// OFFSET_OUT_OF_RANGE: learn the leader's log start and end, then truncate (Fetch only).
    OutOfRange,
    /// FENCED_LEADER_EPOCH: the leader has a newer epoch than ours, so newer metadata is on
    /// its way; stop until it names the leader.
    Fenced,
    /// NOT_LEADER_OR_FOLLOWER and UNKNOWN_LEADER_EPOCH: right after an election the follower
    /// often learns of the new epoch before the leader does, and the leader answers these
    /// until it catches up, a millisecond or so later; retry (no newer metadata will come to
    /// wake a follower that stopped; Kafka retries them too), soon at first.
    LeaderBehind,
    /// Everything else, back off and retry.
    Retry,
}

impl LeaderError {
    pub fn from_code(code: i16) -> LeaderError {
        match code {
            OFFSET_OUT_OF_RANGE => LeaderError::OutOfRange,
            FENCED_LEADER_EPOCH => LeaderError::Fenced,
            NOT_LEADER_OR_FOLLOWER | UNKNOWN_LEADER_EPOCH => LeaderError::LeaderBehind,
            _ => LeaderError::Retry,
        }
    }
}
