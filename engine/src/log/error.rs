//! What log operations can fail with; each variant maps to one Kafka error code.

use super::batch::BatchError;
use super::producers::ProducerError;

/// The log's storage failed (a write or sync error, or unreadable data): KAFKA_STORAGE_ERROR.
/// After a failed write or sync the log refuses further appends until it is reopened, which
/// runs recovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(pub String);

impl StorageError {
    pub(crate) fn io(what: &str, e: &std::io::Error) -> Self {
        StorageError(format!("{what}: {e}"))
    }
}

/// Why an append was refused. The log is unchanged by every refusal except `Storage`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// CORRUPT_MESSAGE, MESSAGE_TOO_LARGE or INVALID_RECORD.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The record set can't fit in one segment: RECORD_LIST_TOO_LARGE.
    #[error("record set of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u64 },
    /// The log was closed (shutting down, or the partition is being deleted):
    /// NOT_LEADER_OR_FOLLOWER, so clients retry elsewhere or later.
    #[error("the log is closed")]
    Closed,
    /// This replica follows the partition's leader ([`Log::set_follower`](super::Log::set_follower)):
    /// only the leader's batches are written here. NOT_LEADER_OR_FOLLOWER, so clients and
    /// coordinators go to the leader.
    #[error("this replica follows the partition's leader")]
    NotLeader,
    /// KAFKA_STORAGE_ERROR.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An idempotent producer's batch broke its sequence or epoch rules (see
    /// [`ProducerError`] for each code).
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

/// Why a follower's append ([`Log::append_replica`](super::Log::append_replica)) was
/// refused. Nothing is written on any refusal but `Append(Storage)`.
///
/// A type of its own rather than a variant of [`AppendError`], whose variants each map to a
/// Kafka code for produce requests (and which callers match exhaustively).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaAppendError {
    /// The batches don't follow the log's end: the first starts below it (they overlap what
    /// is there: the follower must truncate first), or their offsets don't increase.
    #[error("replica batches out of order: expected an offset at or past {expected}, got {got}")]
    OutOfOrder { expected: i64, got: i64 },
    #[error(transparent)]
    Append(#[from] AppendError),
}

impl From<StorageError> for ReplicaAppendError {
    fn from(e: StorageError) -> Self {
        ReplicaAppendError::Append(e.into())
    }
}

impl From<BatchError> for ReplicaAppendError {
    fn from(e: BatchError) -> Self {
        ReplicaAppendError::Append(e.into())
    }
}

/// Why a read or lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// OFFSET_OUT_OF_RANGE: below the log start offset or past the readable end
    /// (`high_watermark`: the written end for reads, the high watermark for DeleteRecords).
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// KAFKA_STORAGE_ERROR.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// POLICY_VIOLATION: the topic's settings forbid it (DeleteRecords on a topic whose
    /// `cleanup.policy` lacks `delete`).
    #[error("policy violation: {0}")]
    PolicyViolation(&'static str),
}
