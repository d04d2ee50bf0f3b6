//! What [`super::node::Quorum`] hands the driver, and the errors its calls return.

use raft::eraftpb::Message;

/// One step of work for the driver (see the module notes in [`super`] for the order).
#[derive(Debug, Default)]
pub struct Output {
    /// Pass to [`super::node::Quorum::persisted`] once `persist` is durable.
    pub number: u64,
    /// Send now, before or while `persist` is written (a leader's appends and heartbeats:
    /// Raft lets a leader replicate in parallel with its own write).
    pub messages: Vec<Message>,
    /// What must be durable before this output's persisted messages go out.
    pub persist: Persist,
    /// A snapshot received from the leader: replace the state machine with `data` (it is at
    /// `index`) before applying `committed`.
    pub installed: Option<InstalledSnapshot>,
    /// Committed entries to apply in order (already durable on a majority and here).
    pub committed: Vec<Committed>,
    /// The applied index once `installed` and `committed` are applied. It also counts the
    /// entries not handed out (a new leader's empty entry), so it can exceed the last
    /// `committed` index.
    pub applied: u64,
}

/// A durable write. Without `rotation`, append `wal` to the current WAL file (fsync when
/// `must_sync`; without it only the commit index changed, which Raft can relearn). With
/// `rotation`, run the rotation protocol of [`super::wal`]: write the snapshot file, then make
/// `wal` the head of a new WAL file named `wal_file_name(rotation.snapshot_index + 1)`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Persist {
    pub rotation: Option<Rotation>,
    pub wal: Vec<u8>,
    pub must_sync: bool,
}

impl Persist {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rotation.is_none() && self.wal.is_empty()
    }
}

/// A snapshot file to write (tmp + fsync + rename) before starting a new WAL file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub snapshot_index: u64,
    pub snapshot_file: Vec<u8>,
}

/// The leader's snapshot, installed because our log was too far behind.
#[derive(Debug, Clone, PartialEq)]
pub struct InstalledSnapshot {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// A committed proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// This node's role in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// For `runnelctl cluster`: where this node stands.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumStatus {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// Index of the latest snapshot taken or installed (0: none).
    pub snapshot_index: u64,
    /// Each voter's highest replicated index, when this node leads (empty otherwise).
    pub voters: Vec<VoterProgress>,
}

/// A voter's replication progress as its leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterProgress {
    pub id: u64,
    pub matched: u64,
}

/// Why a message from the network was not stepped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("message addressed to {to}, not this node")]
    WrongRecipient { to: u64 },
    #[error("message from {from}, which is not a voter")]
    UnknownPeer { from: u64 },
    #[error(transparent)]
    Invalid(#[from] super::wire::WireError),
    #[error("message contradicts this node's log: {0}")]
    Contradicts(&'static str),
    #[error("a snapshot is still being installed")]
    SnapshotInFlight,
    #[error("raft refused the message: {0}")]
    Raft(String),
}

/// Why a proposal was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes; `leader` is who this node believes leads (to redirect to).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// Empty data is reserved for Raft's own no-op entries, which are never applied.
    #[error("empty proposal")]
    Empty,
    #[error("raft dropped the proposal")]
    Dropped,
}

/// Why a quorum could not start, or a compaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("voters on disk {on_disk:?} differ from the configured {configured:?} (membership changes are not supported)")]
    VotersChanged {
        on_disk: Vec<u64>,
        configured: Vec<u64>,
    },
    #[error("applied index {applied} is outside the log [{first}, {last}]")]
    AppliedOutOfRange { applied: u64, first: u64, last: u64 },
    #[error("a snapshot install is waiting for its write; compact after `persisted`")]
    SnapshotInFlight,
    #[error("raft: {0}")]
    Raft(String),
}
