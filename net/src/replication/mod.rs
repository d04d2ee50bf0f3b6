//! Kafka's ISR replication as two sans-IO state machines, one per partition and role.
//!
//! Nothing in this module reads a clock, touches a log or sends a request. Inputs are method
//! calls carrying the time (`now_ms`, milliseconds) and what the caller observed; outputs are
//! returned values and actions the caller carries out and reports back on. That keeps every
//! rule here testable step by step (see `leader_tests.rs`, `follower_tests.rs`) and keeps the
//! I/O (fetch sessions, AlterPartition, the log) in one place: the wiring.
//!
//! ## Leader side: [`leader::LeaderState`] (Kafka's `Partition` + `Replica`)
//! One per partition this broker leads, created when the metadata makes it leader (with the
//! log's end, high watermark and the leader epoch's start offset) and dropped when it stops
//! leading. It tracks each follower's log end and when it was last caught up, and derives:
//! - the high watermark: the least log end over the ISR ("maximal" while a change is in
//!   flight, KIP-497), never moving backward;
//! - ISR changes to propose ([`leader::IsrChange`], what an AlterPartition request carries):
//!   expansion when a follower catches up (checked on each of its fetches), shrinking when an
//!   ISR member has not been caught up for `replica.lag.time.max.ms` (checked on a ticker).
//!   One change at a time; the controller's answer comes back through
//!   [`leader::LeaderState::on_isr_change_result`], the metadata through `on_metadata`;
//! - whether an acks=all produce may append and when it is done ([`leader::ProduceCheck`]);
//!   produces waiting for the high watermark sit in a [`waiters::Waiters`] the wiring owns.
//!
//! ## Follower side: [`follower::FollowerState`] (Kafka's `AbstractFetcherThread` per partition)
//! One per partition this broker follows. Before fetching it finds where its log diverges from
//! the leader's (OffsetsForLeaderEpoch, KIP-101/279, rules in [`truncation`]), then fetches from
//! its log end; it handles OFFSET_OUT_OF_RANGE (ListOffsets on the leader, then truncate), the
//! divergence a Fetch v12+ response reports (KIP-320), fencing and backoff after errors.
//! [`follower::FollowerState::next_action`] says what to do next; every request's answer comes
//! back tagged with the leader epoch the action carried, so answers from an older leader are
//! dropped.
//!
//! ## What the wiring does
//! - Leader: call `on_follower_fetch` for every partition of a follower's Fetch after reading
//!   it (Kafka's order: read, then update the follower's state), `on_leader_append` after local
//!   appends, `maybe_shrink` and `refresh_high_watermark` from a ticker (Kafka checks every
//!   `replica.lag.time.max.ms / 2`); send each returned [`leader::IsrChange`] to the controller
//!   as AlterPartition and report the answer; write the high watermark to the log when a call
//!   says it advanced, then complete the [`waiters::Waiters`] at or below it (and complete
//!   every waiter with an error when leadership is lost or at its timeout).
//! - Follower: keep one fetch session per leader broker per shard, and on each round collect
//!   `next_action` from every partition following that leader into one Fetch /
//!   OffsetsForLeaderEpoch / ListOffsets request; append fetched records, truncate when told,
//!   and report back (`on_appended`, `on_truncated`, `on_error`, ...). Wake a partition at
//!   [`follower::FollowerState::next_wakeup`] when it is backing off.
//! - Both: translate metadata changes (`on_metadata`, `on_new_leader`; a role change means
//!   dropping one state and creating the other) and map the enums here to Kafka error codes
//!   (helpers in [`errors`]).
//!
//! Everything accepts any input without panicking: offsets, epochs and broker ids come from
//! the network, and arithmetic saturates.
//!
//! [`settings`] holds the replica settings with Kafka's names.

//! ## The wiring
//! - [`replica`]: what a [`Partition`](crate::partitions::Partition) holds of replication (its
//!   role, leader epoch and, while it leads, its `LeaderState` with the waiting acks=all
//!   produces); [`transitions`]: taking the part the metadata gives it (leading or
//!   following); [`leading`]: followers' fetches, acks=all, the leader's task and its
//!   AlterPartition requests; [`fetcher`]: one fetch task per leader broker per shard, over a
//!   [`broker_client`] connection; [`clock`]: the time the state machines are given.

pub mod broker_client;
pub mod clock;
pub mod errors;
pub mod fetcher;
pub mod follower;
pub mod leader;
pub mod leading;
pub mod replica;
pub mod settings;
pub mod transitions;
pub mod truncation;
pub mod waiters;

pub use replica::{Replica, Role};
pub use settings::ReplicationSettings;

use std::sync::OnceLock;

/// This broker's node id and replica settings, set once at start-up (a lone broker never
/// sets them: it has no replicas to track).
static INSTALLED: OnceLock<(i32, ReplicationSettings)> = OnceLock::new();

/// Sets this broker's node id and replica settings, before any shard starts.
pub fn install(node_id: i32, settings: ReplicationSettings) {
    let _ = INSTALLED.set((node_id, settings));
}

fn node_id() -> i32 {
    INSTALLED.get().map_or(-1, |(id, _)| *id)
}

fn settings() -> ReplicationSettings {
    INSTALLED.get().map(|(_, s)| *s).unwrap_or_default()
}

/// A broker's id (the controller's `BrokerId`; repeated here so this module depends on
/// nothing else in the crate).
pub type BrokerId = i32;

/// Kafka's "no epoch" (UNDEFINED_EPOCH) in OffsetsForLeaderEpoch answers and Fetch fields.
pub const UNDEFINED_EPOCH: i32 = -1;

/// Kafka's "no offset" (UNDEFINED_EPOCH_OFFSET) in OffsetsForLeaderEpoch answers.
pub const UNDEFINED_OFFSET: i64 = -1;
