//! The cluster metadata log's state machine (Kafka's KRaft metadata), sans-IO.

mod codec;
pub mod image;
pub mod records;
pub mod snapshot;
pub mod validate;

#[cfg(test)]
mod test_support;

pub use codec::DecodeError;
pub use image::{ApplyError, BrokerRegistration, MetadataImage, PartitionState, TopicImage};
pub use records::*;
pub use snapshot::SnapshotError;
