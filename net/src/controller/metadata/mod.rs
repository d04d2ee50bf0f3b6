//! The cluster metadata log's state machine (Kafka's KRaft metadata), sans-IO: [`records`]
//! and their encoding, the [`image`] every broker follows, and the active controller's
//! decisions ([`MetadataController`]). No I/O, clocks or randomness inside: time, topic ids and
//! placement seeds are arguments, so every node computes the same thing.
//!
//! Design decisions:
//! - The broker epoch is the raft offset of the entry holding its registration: the controller
//!   proposes [`EPOCH_FROM_OFFSET`] and the image fills it in on apply (snapshots carry it).
//! - Records that would apply on top of state they were not derived from are refused on apply:
//!   a partition change names the partition epoch it was based on; broker records name the
//!   broker epoch. A raft entry is a batch applied all or nothing. So a lost, duplicated or
//!   overtaken proposal is harmless, and the controller never needs optimistic soft state.
//! - Leadership follows Kafka's pre-KIP-966 rule (see `election.rs`): no unclean election
//!   unless a client asks for one (`preferred.rs`); a broker that is not live leaves every ISR
//!   except as its last member. Preferred replicas get leadership back on request or by the
//!   periodic balance check (`balance.rs`).
//! - "Live" means registered, unfenced and not in controlled shutdown.
//! - A reassignment keeps the replicas it removes until the target has caught up
//!   (`reassignment.rs`); its replica sets are part of the partition's state.

mod alter_partition;
mod balance;
mod codec;
mod codes;
mod controller;
mod election;
pub mod image;
mod placement;
mod preferred;
mod queries;
mod reassignment;
pub mod records;
pub mod snapshot;
mod topics;
pub mod validate;

#[cfg(test)]
mod test_support;

pub use alter_partition::{AlterPartition, AlterPartitionReply};
pub use codec::DecodeError;
pub use codes::*;
pub use controller::{
    ControllerSettings, Decision, Heartbeat, HeartbeatReply, MetadataController, Outcome,
    ProducerIdBlock, Registration, PRODUCER_ID_BLOCK_SIZE,
};
pub use image::{ApplyError, BrokerRegistration, MetadataImage, PartitionState, TopicImage};
pub use preferred::{ElectLeaders, ElectLeadersReply, ElectionType, PREFERRED, UNCLEAN};
pub use reassignment::{OngoingReassignment, NO_REASSIGNMENT_IN_PROGRESS};
pub use records::*;
pub use snapshot::SnapshotError;
pub use topics::{Assignment, Entropy, NewTopic, INTERNAL_TOPICS, MAX_PARTITIONS};
