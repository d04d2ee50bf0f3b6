//! The partition log: Kafka's on-disk format, append, read, recovery and retention.
//!
//! - [`batch`]: the RecordBatch v2 format (parsing, validation, the rewrites an append makes);
//!   [`builder`] makes batches for tests and the broker's own writes.
//! - [`index`]: the sparse offset and time indexes in Kafka's file formats; [`scan`]: walking a
//!   segment's batches, for recovery and index rebuilding.
//! - [`Log`] (partition.rs): a partition's segments, appends (with the flush policies of
//!   [`crate::flush`]), read planning into file ranges, timestamp lookups, DeleteRecords,
//!   retention; segment.rs, recovery.rs, checkpoint.rs and retention.rs hold its parts.
//! - [`LogSet`]: a shard's logs and their background housekeeping (retention).

pub mod batch;
pub mod builder;
mod checkpoint;
mod config;
mod error;
mod housekeeping;
pub mod index;
pub mod observe;
mod partition;
mod read;
mod recovery;
mod retention;
pub mod scan;
mod segment;
mod write_layout;

pub use checkpoint::{Checkpoint, CLEAN_SHUTDOWN_FILE};
pub use config::{LogConfig, MAX_SEGMENT_BYTES};
pub use error::{AppendError, ReadError, StorageError};
pub use housekeeping::LogSet;
pub use partition::{AppendInfo, Clock, Log, LogStats, OpenOptions};
pub use read::{FileRange, ReadResult};
pub use recovery::RecoveryReport;
