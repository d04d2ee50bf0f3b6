//! The controller quorum: Raft (tikv/raft-rs) for the metadata log, sans I/O.
//!
//! # Pieces
//! - [`storage`]: the in-memory log raft-rs reads ([`storage::QuorumStorage`]).
//! - [`wal`]: its durable form — WAL frames, the snapshot file, rotation, [`wal::recover`].
//! - [`node`]: [`Quorum`], a `RawNode` with our validation, lease and Ready protocol.
//! - [`wire`]: message frames between controllers, validated before raft sees them.
//! - [`output`]: what the node hands the driver.
//!
//! The driver (transport, files, timers on our runtime) owns all I/O; nothing here blocks,
//! reads a clock or touches a file, which is what lets `sim_tests` run whole clusters
//! deterministically.
//!
//! # Driver protocol
//! Call `tick()` every 100 ms and `step(msg)` for every decoded message (an error is logged
//! and the message dropped). After either, and after `propose`/`persisted`, drain
//! `ready()` until `None`; for each [`Output`] in order:
//! 1. send `messages` now (a leader replicates while its own write is in flight);
//! 2. if `installed`, replace the state machine with its data; then apply `committed` in
//!    order (all of it is durable here and on a majority);
//! 3. queue `persist`; writes complete in the order queued (a WAL append, or the rotation:
//!    snapshot file by tmp+fsync+rename, then the new WAL file's head);
//! 4. once the writes of every output up to number `n` are durable (fsynced when
//!    `must_sync`), call `persisted(n)` and send the messages it returns — votes and
//!    append acknowledgements must never leave before the state they promise is on disk.
//!
//! Several outputs may be in flight; `ready()` returns `None` while an installed snapshot
//! awaits its `persisted` (and `step` refuses another snapshot meanwhile).
//! `compact(applied, state_machine_bytes)` returns a rotation to queue behind the outputs
//! already handed out. When the transport finishes sending a `MsgSnapshot`, call
//! `report_snapshot(to, delivered)` (otherwise the leader resends after
//! `snapshot_timeout_tick`); when a peer cannot be reached, `report_unreachable(to)`.
//!
//! # Start-up
//! `wal::recover(snapshot_file, newest_wal)` → truncate the WAL at `valid_len` → load the
//! state machine from `recovered.storage.latest_snapshot()` (applied = its index, or 0) →
//! `Quorum::new(id, voters, recovered, applied, timing)`. The first outputs replay the
//! committed entries after `applied`. A fresh node bootstraps from `voters` (all nodes must
//! be given the same set) and writes it with its first output.
//!
//! # Guarantees (check_quorum and pre_vote are on)
//! - At most one leader per term (Raft's election safety, with votes durable before sent).
//! - A leader that has not heard from a majority for `election_tick - 2` ticks steps down at
//!   that tick ([`node`]'s lease; raft-rs's own check_quorum alone allows up to twice
//!   `election_tick`).
//! - Followers refuse to vote for `election_tick` ticks after hearing from their leader
//!   (raft-rs's lease), so a new leader can be elected only after a majority stopped hearing
//!   from the old one for that long, by which time the old one has stepped down (the two-tick
//!   margin covers the round trip and the nodes' unsynchronised ticks). Even were they to
//!   overlap, the old one could commit nothing: a controller acts only on what is committed,
//!   and treats leadership as ended when `status().role` changes.
//! - A proposal is committed only when durable on a majority; committed entries never change.
//! - Not supported yet: membership changes (voters are fixed by configuration), leader
//!   transfer, read-index reads; the wire refuses those message types.

pub mod logger;
pub mod node;
pub mod output;
pub mod storage;
pub mod wal;
pub mod wire;

pub use node::{Quorum, Timing};
pub use output::{
    Committed, InstalledSnapshot, Output, Persist, ProposeError, QuorumError, QuorumStatus, Role,
    Rotation, StepError, VoterProgress,
};

#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
