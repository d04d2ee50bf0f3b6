//! What a partition that can't be served looks like to a client: one Kafka error code per
//! cause, whatever the API.

use runnel_engine::log::batch::BatchError;
use runnel_engine::log::producers::ProducerError;
use runnel_engine::log::{AppendError, ReadError};

use super::ErrorCode;
use crate::kafka::error_code;

/// The owning shard has stopped (the broker is shutting down): as a leader going away, so
/// clients refresh their metadata and retry.
pub const SHARD_STOPPED: ErrorCode = error_code::NOT_LEADER_OR_FOLLOWER;

/// The registry places the partition on a shard whose log isn't open (opening failed, or a
/// topic change is still being applied): the partition has no serving replica here.
pub const NOT_OPEN: ErrorCode = error_code::NOT_LEADER_OR_FOLLOWER;

/// The partition's log could not be opened (see `partitions::offline`): as Kafka answers for
/// a partition on an offline log directory.
pub const OFFLINE: ErrorCode = error_code::KAFKA_STORAGE_ERROR;

/// The handler's shard-side work answered fewer partitions than it was given: a bug, reported
/// as Kafka's generic server error rather than a silent success.
pub const NOT_ANSWERED: ErrorCode = -1;

/// The Kafka error code for a failed read, lookup or deletion.
pub fn read_error(e: &ReadError) -> ErrorCode {
    match e {
        ReadError::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
        ReadError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
        // DeleteRecords on a topic without `delete` in its cleanup.policy: Kafka's answer.
        ReadError::PolicyViolation(_) => error_code::POLICY_VIOLATION,
    }
}

/// The Kafka error code for a refused append.
pub fn append_error(e: &AppendError) -> ErrorCode {
    match e {
        AppendError::Batch(BatchError::Corrupt(_)) => error_code::CORRUPT_MESSAGE,
        AppendError::Batch(BatchError::TooLarge { .. }) => error_code::MESSAGE_TOO_LARGE,
        AppendError::Batch(BatchError::Invalid(_)) => error_code::INVALID_RECORD,
        AppendError::RecordListTooLarge { .. } => error_code::RECORD_LIST_TOO_LARGE,
        AppendError::Closed => error_code::NOT_LEADER_OR_FOLLOWER,
        // Leadership moved on: the client refreshes metadata and finds the new leader.
        AppendError::NotLeader => error_code::NOT_LEADER_OR_FOLLOWER,
        AppendError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
        AppendError::Producer(e) => match e {
            ProducerError::OutOfOrderSequence { .. } => error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::InvalidProducerEpoch { .. } => error_code::INVALID_PRODUCER_EPOCH,
            ProducerError::UnknownProducerId { .. } => error_code::UNKNOWN_PRODUCER_ID,
            ProducerError::InvalidRecord(_) => error_code::INVALID_RECORD,
            ProducerError::NotInTransaction { .. } => error_code::INVALID_TXN_STATE,
            ProducerError::TransactionCoordinatorFenced { .. } => {
                error_code::TRANSACTION_COORDINATOR_FENCED
            }
        },
    }
}
