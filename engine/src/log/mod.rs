//! The partition log: Kafka's on-disk format, append, read, recovery and retention.
//!
//! - [`batch`]: the RecordBatch v2 format (parsing, validation, the rewrites an append makes);
//!   [`records`]: the records inside a batch; [`codec`]: the compression codecs;
//!   [`builder`] makes batches for tests and the broker's own writes.
//! - [`index`]: the sparse offset and time indexes in Kafka's file formats; [`scan`]: walking a
//!   segment's batches, for recovery and index rebuilding.
//! - [`Log`], a partition's log, one concern per file:
//!   - partition.rs: the log's state and the write path (append: validate, place, write,
//!     advance the high watermark), open and close;
//!   - recompress.rs: the first step of an append, rewriting batches into the topic's
//!     `compression.type` when it names a codec;
//!   - roll.rs: rolling to a new segment and sealing the old one;
//!   - read.rs: read planning into file ranges, timestamp lookups; max_timestamp.rs: the
//!     record with the largest timestamp (ListOffsets MAX_TIMESTAMP);
//!   - retention.rs: which segments retention removes (policy, pure); delete.rs: removing
//!     them, for retention and DeleteRecords (action);
//!   - [`producers`]: idempotent producers' sequence state, checked as appends are placed,
//!     snapshotted and rebuilt on open; each producer's open transaction;
//!   - [`txn`]: transaction markers, the aborted transaction index (`.txnindex`) and the last
//!     stable offset; txn.rs beside partition.rs: writing markers and what reads ask of them;
//!   - replication.rs: what Kafka replication asks of a log (the replicated high watermark
//!     cap, leader epoch stamping, a follower's verbatim appends and fetches);
//!     [`leader_epochs`]: the leader epoch cache (`leader-epoch-checkpoint`); truncate.rs:
//!     cutting a follower's log back to where it agrees with its leader;
//!   - segment.rs: one segment's files and in-memory state; recovery.rs: opening a directory,
//!     checking what a crash may have left; checkpoint.rs: the recovery point and log start
//!     offset that survive a restart;
//!   - making appends durable is [`crate::flush`]'s job: the log tells it what a sync covers.
//!   - [`compaction`]: the log cleaner, for topics with `cleanup.policy=compact`.
//! - [`LogSet`]: a shard's logs and their background housekeeping (retention, compaction).
//!
//! File-system metadata calls (creating, opening, removing files, replacing the checkpoint)
//! go through [`crate::rt::fs`], off the shard thread.

pub mod batch;
pub mod builder;
mod checkpoint;
pub mod codec;
pub mod compaction;
mod config;
mod delete;
mod error;
mod exclusive;
mod housekeeping;
pub mod index;
pub mod leader_epochs;
mod max_timestamp;
pub mod observe;
mod partition;
pub mod producers;
mod read;
mod recompress;
pub mod records;
mod recovery;
mod replication;
mod retention;
mod roll;
pub mod scan;
mod segment;
mod transactions;
mod truncate;
pub mod txn;
mod write_layout;

pub use checkpoint::{Checkpoint, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
pub use config::{CleanupPolicy, LogConfig, TopicCompression, MAX_SEGMENT_BYTES};
pub use error::{AppendError, ReadError, ReplicaAppendError, StorageError};
pub use exclusive::{Exclusive, Turn};
pub use housekeeping::LogSet;
pub use partition::{AppendInfo, Clock, Log, LogStats, OpenOptions};
pub use read::{FileRange, ReadResult};
pub use recompress::recompress;
pub use recovery::RecoveryReport;
pub use segment::{
    parse_segment_name, segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
pub use txn::{AbortedTxn, EndTxnMarker, Isolation, MarkerKind};
