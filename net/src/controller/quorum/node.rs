//! [`Quorum`]: one controller's Raft node, sans I/O. The driver feeds it ticks and messages
//! and carries out its [`Output`]s; see [`super`] for the protocol.

use std::collections::{HashMap, VecDeque};

use raft::eraftpb::{ConfState, EntryType, Message, MessageType};
use raft::{Config, ProgressState, RawNode, Ready, SnapshotStatus, StateRole, INVALID_ID};

use super::logger::raft_logger;
use super::output::*;
use super::storage::QuorumStorage;
use super::wal::{self, Recovered};
use super::wire;

/// Tick counts (the driver ticks every 100 ms: election after 1-2 s, heartbeat every 100 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A follower campaigns after a random `[election_tick, 2 * election_tick)` ticks without
    /// a leader; a leader steps down after `election_tick` ticks without hearing a majority.
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// A leader that sent a snapshot and heard neither `report_snapshot` nor the follower's
    /// acknowledgement within this many ticks sends it again (raft-rs would wait forever).
    pub snapshot_timeout_tick: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            election_tick: 10,
            heartbeat_tick: 1,
            snapshot_timeout_tick: 30,
        }
    }
}

/// Bytes of entries per append message (raft batches up to this).
const MAX_SIZE_PER_MSG: u64 = 1 << 20;
/// Appends in flight per follower before waiting for acknowledgements.
const MAX_INFLIGHT_MSGS: usize = 256;

/// One controller's Raft node.
pub struct Quorum {
    raw: RawNode<QuorumStorage>,
    voters: Vec<u64>,
    timing: Timing,
    /// The bootstrap conf state is not on disk yet: the next output writes it.
    conf_unpersisted: bool,
    /// The WAL on disk is from before the snapshot (a rotation cut short by a crash): the next
    /// output finishes the rotation, so nothing is appended to that WAL.
    rotation_unpersisted: bool,
    /// Messages that may go out once the output with that number is durable.
    waiting: VecDeque<(u64, Vec<Message>)>,
    /// A Ready holding an installed snapshot, advanced only once durable: until then raft
    /// keeps the snapshot as unstable, which keeps its view of the log consistent (see
    /// `persisted`). No other Ready is produced meanwhile.
    deferred: Option<Ready>,
    /// Highest output number handed out.
    issued: u64,
    /// Applied index as handed out (state machine applies are synchronous in the driver).
    applied: u64,
    ticks: u64,
    /// Leader lease: the tick each voter was last heard from in `lease_term`.
    heard: HashMap<u64, u64>,
    lease_term: u64,
    /// Snapshots sent as leader: follower → tick sent.
    snapshots_sent: HashMap<u64, u64>,
    /// Off only in the test showing what raft-rs's check_quorum alone allows.
    lease: bool,
    /// Simulation only: draws raft's randomized election timeouts from a seed instead of
    /// raft-rs's `thread_rng`, so a seeded run replays exactly.
    #[cfg(test)]
    election_rng: Option<ElectionRng>,
}

/// A seeded source of election timeouts, redrawn whenever raft may have redrawn its own.
#[cfg(test)]
#[derive(Debug)]
struct ElectionRng {
    rng: super::sim::Rng,
    /// Term, role and timeout when we last set it.
    last: (u64, StateRole, usize),
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Quorum {
    /// Starts a node from what [`wal::recover`] rebuilt. `applied` is where the driver's state
    /// machine stands (the snapshot's index when loaded from it); `voters` bootstraps a new
    /// quorum and must match what is on disk otherwise.
    pub fn new(
        id: u64,
        voters: &[u64],
        recovered: Recovered,
        applied: u64,
        timing: Timing,
    ) -> Result<Quorum, QuorumError> {
        let mut configured = voters.to_vec();
        configured.sort_unstable();
        configured.dedup();
        if id == 0 || configured.contains(&0) || !configured.contains(&id) {
            return Err(QuorumError::Config(format!(
                "node {id} must be one of the voters {voters:?}, none of them 0"
            )));
        }
        let rotation_unpersisted = recovered.wal_predates_snapshot;
        let mut storage = recovered.storage;
        let mut conf_unpersisted = false;
        if storage.conf_state() == &ConfState::default() {
            storage.set_conf_state(ConfState::from((configured.clone(), vec![])));
            conf_unpersisted = true;
        } else if !same_voters(storage.conf_state(), &configured) {
            let mut on_disk = storage.conf_state().voters.clone();
            on_disk.sort_unstable();
            return Err(QuorumError::VotersChanged {
                on_disk,
                configured,
            });
        }
        let (first, last) = (storage.first(), storage.last());
        if applied + 1 < first || applied > last {
            return Err(QuorumError::AppliedOutOfRange {
                applied,
                first,
                last,
            });
        }
        // The state machine only applies committed entries, so the commit index is at least
        // `applied`; raft refuses a commit index outside the log.
        let mut hs = storage.hard_state().clone();
        hs.commit = hs.commit.max(applied).clamp(first - 1, last);
        storage.set_hard_state(hs);
        let config = Config {
            id,
            election_tick: timing.election_tick,
            heartbeat_tick: timing.heartbeat_tick,
            applied,
            max_size_per_msg: MAX_SIZE_PER_MSG,
            max_inflight_msgs: MAX_INFLIGHT_MSGS,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| QuorumError::Config(e.to_string()))?;
        let raw = RawNode::new(&config, storage, &raft_logger())
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        Ok(Quorum {
            raw,
            voters: configured,
            timing,
            conf_unpersisted,
            rotation_unpersisted,
            waiting: VecDeque::new(),
            deferred: None,
            issued: 0,
            applied,
            ticks: 0,
            heard: HashMap::new(),
            lease_term: 0,
            snapshots_sent: HashMap::new(),
            lease: true,
            #[cfg(test)]
            election_rng: None,
        })
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
        self.check_lease();
        self.expire_snapshots();
        self.pin_election_timeout();
    }

    /// The transport finished sending our snapshot to `to` (`delivered`) or gave up on it.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        if self.snapshots_sent.remove(&to).is_some() {
            let status = if delivered {
                SnapshotStatus::Finish
            } else {
                SnapshotStatus::Failure
            };
            self.raw.report_snapshot(to, status);
        }
    }

    /// The transport could not reach `to`: stop streaming appends to it optimistically.
    pub fn report_unreachable(&mut self, to: u64) {
        if to != self.id() && self.voters.contains(&to) {
            self.raw.report_unreachable(to);
        }
    }

    fn expire_snapshots(&mut self) {
        let timeout = self.timing.snapshot_timeout_tick as u64;
        let now = self.ticks;
        let expired: Vec<u64> = self
            .snapshots_sent
            .iter()
            .filter(|(_, sent)| now - **sent >= timeout)
            .map(|(to, _)| *to)
            .collect();
        for to in expired {
            let waiting = self.raw.raft.state == StateRole::Leader
                && self
                    .raw
                    .raft
                    .prs()
                    .get(to)
                    .is_some_and(|pr| pr.state == ProgressState::Snapshot);
            if waiting {
                self.report_snapshot(to, false);
            } else {
                self.snapshots_sent.remove(&to);
            }
        }
    }

    /// Steps a message from a peer. Refuses messages not addressed to us, from non-voters,
    /// malformed ones, and ones that contradict what this node knows is committed (which
    /// raft-rs would otherwise answer with a panic).
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        if msg.to != self.id() {
            return Err(StepError::WrongRecipient { to: msg.to });
        }
        if msg.from == self.id() || !self.voters.contains(&msg.from) {
            return Err(StepError::UnknownPeer { from: msg.from });
        }
        wire::validate(&msg)?;
        if self.deferred.is_some() && msg.get_msg_type() == MessageType::MsgSnapshot {
            // raft would replace the snapshot still being written; the leader resends.
            return Err(StepError::SnapshotInFlight);
        }
        self.check_against_log(&msg)?;
        let (from, term) = (msg.from, msg.term);
        let stepped = self.raw.step(msg);
        self.pin_election_timeout();
        stepped.map_err(|e| StepError::Raft(e.to_string()))?;
        self.check_lease();
        if self.raw.raft.state == StateRole::Leader && term == self.raw.raft.term {
            self.heard.insert(from, self.ticks);
        }
        self.pin_election_timeout();
        Ok(())
    }

    fn check_against_log(&self, msg: &Message) -> Result<(), StepError> {
        let log = &self.raw.raft.raft_log;
        match msg.get_msg_type() {
            // raft-rs commits to a heartbeat's index unchecked; a leader only sends what we
            // acknowledged, so more than our log means a broken peer.
            MessageType::MsgHeartbeat if msg.commit > log.last_index() => {
                Err(StepError::Contradicts("heartbeat commits beyond our log"))
            }
            // raft-rs panics when an append conflicts with a committed entry, but none can
            // reach that check: an append starting below our commit index is answered with
            // that index and its entries ignored (a leader re-sending what we committed,
            // perhaps from below our compaction point, where we no longer know the terms:
            // refusing it would leave the leader re-sending it forever and this voter never
            // catching up); one starting at or above it holds only later entries, contiguous
            // as `wire::validate` checked.
            // raft-rs panics on a snapshot whose configuration it cannot restore.
            MessageType::MsgSnapshot => {
                let cs = msg.get_snapshot().get_metadata().get_conf_state();
                if same_voters(cs, &self.voters) {
                    Ok(())
                } else {
                    Err(StepError::Contradicts("snapshot of another membership"))
                }
            }
            _ => Ok(()),
        }
    }

    /// Leader lease, tighter than raft-rs's check_quorum (which samples every election
    /// timeout, so a cut-off leader could last up to two): step down as soon as a majority
    /// has not been heard from for `election_tick - 2` ticks. Two ticks short of the
    /// followers' own lease (they refuse votes for `election_tick` ticks after hearing from
    /// the leader), because the leader hears a follower a round trip after the follower heard
    /// it, and ticks are counted on different clocks: so the old controller has stepped down
    /// before a new one can be elected, rather than about when.
    fn check_lease(&mut self) {
        let raft = &mut self.raw.raft;
        if raft.state != StateRole::Leader || !self.lease {
            return;
        }
        if self.lease_term != raft.term {
            // A new term of leadership: everyone starts with a full lease.
            self.lease_term = raft.term;
            for v in &self.voters {
                self.heard.insert(*v, self.ticks);
            }
        }
        let window = (self.timing.election_tick as u64).saturating_sub(2).max(1);
        let id = raft.id;
        let recent = self
            .voters
            .iter()
            .filter(|v| **v == id || self.heard.get(v).is_some_and(|t| self.ticks - t < window))
            .count();
        if recent <= self.voters.len() / 2 {
            tracing::info!(
                target: "raft",
                id,
                term = raft.term,
                "leader lost contact with a majority; stepping down"
            );
            let term = raft.term;
            raft.become_follower(term, INVALID_ID);
            self.pin_election_timeout();
        }
    }

    /// Proposes `data` for the metadata log (leader only).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), ProposeError> {
        if data.is_empty() {
            return Err(ProposeError::Empty);
        }
        if self.raw.raft.state != StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        self.raw
            .propose(Vec::new(), data)
            .map_err(|_| ProposeError::Dropped)
    }

    #[cfg(test)]
    pub(crate) fn disable_lease_for_test(&mut self) {
        self.lease = false;
    }

    /// Simulation only: from now on, election timeouts come from `seed` (still uniform in
    /// raft's `[election_tick, 2 * election_tick)`), not from raft-rs's `thread_rng`.
    #[cfg(test)]
    pub(crate) fn seed_election_timeouts(&mut self, seed: u64) {
        self.election_rng = Some(ElectionRng {
            rng: super::sim::Rng::new(seed),
            last: (0, StateRole::Follower, 0),
        });
        self.pin_election_timeout();
    }

    /// raft-rs redraws its timeout only in `reset`, i.e. on `become_follower`,
    /// `become_candidate` and `become_leader`, each of which changes the term or the role
    /// (raft never re-enters the follower role at the same term). So when term, role and
    /// timeout are all as we last left them, raft drew nothing since; otherwise we replace
    /// its draw with ours (an extra draw on a change without a reset is harmless: any value
    /// in the range is one raft could have drawn).
    #[cfg(test)]
    fn pin_election_timeout(&mut self) {
        let Some(er) = self.election_rng.as_mut() else {
            return;
        };
        let raft = &mut self.raw.raft;
        let now = (raft.term, raft.state, raft.randomized_election_timeout());
        if now == er.last {
            return;
        }
        let e = self.timing.election_tick;
        let t = e + er.rng.below(e as u64) as usize;
        raft.set_randomized_election_timeout(t);
        er.last = (raft.term, raft.state, t);
    }

    #[cfg(not(test))]
    fn pin_election_timeout(&mut self) {}

    fn id(&self) -> u64 {
        self.raw.raft.id
    }

    fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|l| *l != INVALID_ID)
    }
}

fn same_voters(cs: &ConfState, voters: &[u64]) -> bool {
    let mut v = cs.voters.clone();
    v.sort_unstable();
    v.dedup();
    v == voters
        && cs.learners.is_empty()
        && cs.voters_outgoing.is_empty()
        && cs.learners_next.is_empty()
}

#[path = "node_ready.rs"]
mod ready;

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
