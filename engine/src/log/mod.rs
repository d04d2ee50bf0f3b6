//! The partition log: Kafka's on-disk format, append, read, recovery and retention.
//!
//! Built so far: the RecordBatch v2 format ([`batch`]: parsing, validation, the rewrites an
//! append makes) and a batch builder ([`builder`]). Segments, indexes, flush policies,
//! recovery and retention follow (issue 3).

pub mod batch;
pub mod builder;
