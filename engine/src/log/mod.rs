//! The partition log: Kafka's on-disk format, append, read, recovery and retention.
//!
//! Built so far: the RecordBatch v2 format ([`batch`]: parsing, validation, the rewrites an
//! append makes), a batch builder ([`builder`]) and the sparse offset and time indexes in
//! Kafka's file formats ([`index`]), and the segment scan that recovery and index rebuilding
//! use ([`scan`]). Segment files, append/read planning, flush policies, recovery proper and
//! retention follow (issue 3).

pub mod batch;
pub mod builder;
pub mod index;
pub mod scan;
