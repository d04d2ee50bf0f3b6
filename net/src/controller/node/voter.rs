//! A voter of the controller quorum, driven on its shard: it feeds the [`Quorum`] ticks and
//! the messages that arrive, carries out its outputs (send, apply, write, then send what had
//! to wait for the write; the order of `quorum`'s module notes), and keeps the metadata image
//! every committed entry is applied to.
//!
//! Everything here runs on one shard. The state the loop and the request handlers share sits
//! in a `RefCell` that is never borrowed across an await; the files belong to the loop alone,
//! so one output's writes finish before the next output is taken.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use raft::eraftpb::Message;
use runnel_engine::rt::{self, LocalEvent};

use super::disk::{Found, QuorumFiles};
/// Raft id -> Kafka node id, for the readers of [`Voter::status`] (which speaks raft ids).
pub use super::ids::node_of;
use super::ids::raft_id_of;
use crate::controller::metadata::{
    decode_batch, encode_batch, ControllerSettings, MetadataController, MetadataImage,
    MetadataRecord, Outcome,
};
use crate::controller::quorum::{Output, Quorum, QuorumStatus, Role, Timing};
use crate::controller::settings::QuorumSettings;
use crate::controller::transport::{encode_frame, Kind, LinkState, PeerLink, Watcher};
use crate::controller::view::Unreachable;
use crate::kafka::error_code;

/// How long a request waits for its records to commit before the broker is told to retry.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of the entry a request proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryFate {
    /// Not applied yet.
    Waiting,
    /// Applied at the term it was proposed in.
    Applied { term: u64 },
    /// Something else was applied at its index, or its records were refused on apply.
    Lost,
}

/// The state the loop and request handlers share.
struct Shared {
    quorum: Quorum,
    controller: MetadataController,
    settings: ControllerSettings,
    /// Messages from peers, stepped by the loop.
    inbox: VecDeque<Message>,
    /// Index of the entry a new leader's term starts with: it becomes the active controller
    /// once that is applied (everything committed before it is in the image).
    term_start: Option<u64>,
    /// The entries requests wait for, by index.
    proposals: BTreeMap<u64, EntryFate>,
    /// Applied index.
    applied: u64,
    /// The term in which this voter proposed a cluster id (one proposal per term: a second
    /// one, refused on apply, would take the records batched with it down too).
    cluster_id_proposed: Option<u64>,
}

/// What [`Voter::committed_since`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommittedSince {
    /// The entries with records (index, records) in `from..=through`; `through` is below
    /// `from` when nothing new is applied.
    Entries {
        entries: Vec<(u64, Bytes)>,
        through: u64,
    },
    /// `from` lies below this voter's snapshot: follow from its image instead.
    Compacted,
}

/// A voter; cheap to clone (shared on its shard).
#[derive(Clone)]
pub struct Voter {
    shared: Rc<RefCell<Shared>>,
    links: Rc<BTreeMap<u64, PeerLink>>,
    /// A link was refused since the loop last looked: the controller's work is due now.
    refused: Rc<Cell<bool>>,
    /// The peers the links cannot reach now, shared with every shard's handlers.
    unreachable: Arc<Unreachable>,
    /// Rung when the loop has something new to step or propose.
    wake: Rc<LocalEvent>,
    /// Rung after every output applied or change of role.
    progressed: Rc<LocalEvent>,
    /// One request's decision at a time, each derived from an image holding every earlier
    /// one's records.
    turn: Rc<Cell<bool>>,
    turn_free: Rc<LocalEvent>,
    node_id: i32,
    /// Every voter's (node id, controller listener), as configured: where a request for the
    /// leader is forwarded, and what DescribeQuorum v2 lists as the voters' endpoints.
    voter_addresses: Rc<Vec<(i32, String)>>,
    /// The commit index found on disk at start: the image is complete up to what this node
    /// knew before it stopped only once it has applied this far.
    recovered_commit: u64,
}

impl std::fmt::Debug for Voter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voter")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Voter {
    /// Starts the voter's loop on this shard with what start-up found on disk.
    pub async fn start(settings: &QuorumSettings, found: Found) -> std::io::Result<Voter> {
        let files = QuorumFiles::open(&found).await?;
        let controller_settings = ControllerSettings {
            session_timeout: settings.broker_session_timeout,
            auto_leader_rebalance: settings.auto_leader_rebalance,
            leader_imbalance_check_interval: settings.leader_imbalance_check_interval,
            leader_imbalance_per_broker_percentage: settings.leader_imbalance_per_broker_percentage,
            unclean_leader_election: settings.unclean_leader_election,
            ..ControllerSettings::default()
        };
        let (image, applied) = match &found.snapshot {
            Some((index, bytes)) => {
                let image = MetadataImage::from_snapshot_bytes(bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("metadata snapshot at {index}: {e}"),
                    )
                })?;
                (image, *index)
            }
            None => (MetadataImage::default(), 0),
        };
        let voters: Vec<u64> = settings.voter_ids().into_iter().map(raft_id_of).collect();
        let quorum = Quorum::new(
            raft_id_of(settings.node_id),
            &voters,
            found.recovered,
            applied,
            Timing {
                election_tick: TICKS_PER_ELECTION,
                ..Timing::default()
            },
        )
        .map_err(|e| std::io::Error::other(format!("controller quorum: {e}")))?;
        let recovered_commit = quorum.status().commit;
        // Each link keeps the shared set of unreachable peers current, and wakes the loop: a
        // peer whose connections are refused is fenced at once, not a tick later.
        let wake = Rc::new(LocalEvent::new());
        let unreachable = Arc::new(Unreachable::default());
        let refused = Rc::new(Cell::new(false));
        let links = settings
            .voters
            .iter()
            .filter(|v| v.id != settings.node_id)
            .map(|v| {
                let (id, wake, unreachable) = (v.id, wake.clone(), unreachable.clone());
                let refused = refused.clone();
                let watcher: Watcher = Rc::new(move |state, connection| {
                    unreachable.link_changed(id, state, connection);
                    if state == LinkState::Refused {
                        refused.set(true);
                        wake.notify_all();
                    }
                });
                (
                    raft_id_of(v.id),
                    PeerLink::start(v.address.clone(), watcher),
                )
            })
            .collect();
        let voter = Voter {
            shared: Rc::new(RefCell::new(Shared {
                quorum,
                controller: MetadataController::new(image, controller_settings.clone()),
                settings: controller_settings,
                inbox: VecDeque::new(),
                term_start: None,
                proposals: BTreeMap::new(),
                applied,
                cluster_id_proposed: None,
            })),
            links: Rc::new(links),
            refused,
            unreachable,
            wake,
            progressed: Rc::new(LocalEvent::new()),
            turn: Rc::new(Cell::new(false)),
            turn_free: Rc::new(LocalEvent::new()),
            node_id: settings.node_id,
            voter_addresses: Rc::new(
                settings
                    .voters
                    .iter()
                    .map(|v| (v.id, v.address.clone()))
                    .collect(),
            ),
            recovered_commit,
        };
        let tick = settings.election_timeout / TICKS_PER_ELECTION as u32;
        crate::controller::spawn_until_shutdown(voter.clone().run(
            files,
            tick,
            settings.metadata_snapshot_bytes,
        ));
        Ok(voter)
    }

    /// A Raft message's payload from the controller listener.
    pub fn receive(&self, payload: Bytes) {
        match Message::decode(payload) {
            Ok(message) => {
                let mut shared = self.shared.borrow_mut();
                if shared.inbox.len() >= MAX_INBOX {
                    tracing::debug!("controller: inbox full; raft message dropped");
                    return;
                }
                shared.inbox.push_back(message);
                drop(shared);
                self.wake.notify_all();
            }
            Err(e) => tracing::debug!("controller: undecodable raft message: {e}"),
        }
    }

    /// The node id of the leader this voter knows of.
    pub fn leader(&self) -> Option<i32> {
        self.shared.borrow().quorum.status().leader.map(node_of)
    }

    /// Every voter's (node id, controller listener), sorted by id.
    pub fn voter_addresses(&self) -> Vec<(i32, String)> {
        self.voter_addresses.as_ref().clone()
    }

    pub fn status(&self) -> QuorumStatus {
        self.shared.borrow().quorum.status()
    }

    /// The metadata image as of the last applied entry, and that entry's index.
    pub fn image(&self) -> (MetadataImage, u64) {
        let shared = self.shared.borrow();
        (shared.controller.image().clone(), shared.applied)
    }

    /// Reads the applied image in place (no copy: the image holds every partition).
    pub fn with_image<T>(&self, read: impl FnOnce(&MetadataImage) -> T) -> T {
        read(self.shared.borrow().controller.image())
    }

    /// The index of the last applied metadata entry.
    pub fn applied(&self) -> u64 {
        self.shared.borrow().applied
    }

    /// The committed entries from index `from` on that carry metadata records, up to the
    /// applied index and about `max_bytes` (at least one entry), for a broker-only node
    /// following the metadata: see [`super::metadata_fetch`].
    pub fn committed_since(&self, from: u64, max_bytes: usize) -> CommittedSince {
        let shared = self.shared.borrow();
        let applied = shared.applied;
        let storage = shared.quorum.storage();
        if from > applied {
            return CommittedSince::Entries {
                entries: Vec::new(),
                through: applied,
            };
        }
        if from < storage.first() {
            return CommittedSince::Compacted;
        }
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut through = from - 1;
        let skip = (from - storage.first()) as usize;
        for entry in storage.log_entries().iter().skip(skip) {
            if entry.index > applied || (bytes >= max_bytes && !entries.is_empty()) {
                break;
            }
            through = entry.index;
            // Leaders' empty entries and the bootstrap configuration carry no records.
            if entry.get_entry_type() == raft::eraftpb::EntryType::EntryNormal
                && !entry.data.is_empty()
            {
                bytes += entry.data.len();
                entries.push((entry.index, Bytes::copy_from_slice(&entry.data)));
            }
        }
        CommittedSince::Entries { entries, through }
    }

    /// The commit index recovered from disk at start. Until the image has applied this far,
    /// it is a replay in progress: older than what this node had seen before it stopped.
    pub fn recovered_commit(&self) -> u64 {
        self.recovered_commit
    }

    /// Waits for the next applied output or change of role.
    pub async fn progressed(&self) {
        self.progressed.wait().await
    }

    /// Whether this voter is the active controller: the leader, with its image complete.
    fn is_active(shared: &Shared) -> bool {
        shared.quorum.status().role == Role::Leader
            && shared
                .term_start
                .is_some_and(|start| shared.applied >= start)
    }

    /// Decides a request on the active controller and, when the decision has records,
    /// proposes them and waits until they are applied: the reply is given only for a decision
    /// that took effect. Errors are Kafka codes (NOT_CONTROLLER: ask the new controller).
    pub async fn decide<T>(
        &self,
        decide: impl FnOnce(&mut MetadataController, Instant) -> Outcome<T>,
    ) -> Result<T, i16> {
        while self.turn.replace(true) {
            self.turn_free.wait().await;
        }
        // Released however this ends, a caller dropping the future included.
        let _turn = TurnGuard(self);
        self.decide_in_turn(decide).await
    }

    async fn decide_in_turn<T>(
        &self,
        decide: impl FnOnce(&mut MetadataController, Instant) -> Outcome<T>,
    ) -> Result<T, i16> {
        let (index, term, reply) = {
            let mut shared = self.shared.borrow_mut();
            if !Self::is_active(&shared) {
                return Err(error_code::NOT_CONTROLLER);
            }
            let decision = decide(&mut shared.controller, Instant::now())?;
            if decision.records.is_empty() {
                return Ok(decision.reply);
            }
            let (index, term) = propose(&mut shared, &decision.records)?;
            // Before the loop can apply it: the loop records the fate of awaited entries only.
            shared.proposals.insert(index, EntryFate::Waiting);
            (index, term, decision.reply)
        };
        self.wake.notify_all();
        let deadline = Instant::now() + COMMIT_TIMEOUT;
        let fate = loop {
            let fate = {
                let shared = self.shared.borrow();
                match shared.proposals.get(&index) {
                    Some(EntryFate::Waiting) if shared.quorum.status().term != term => {
                        Some(EntryFate::Lost)
                    }
                    Some(EntryFate::Waiting) => None,
                    other => Some(other.copied().unwrap_or(EntryFate::Lost)),
                }
            };
            if let Some(fate) = fate {
                break fate;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break EntryFate::Waiting;
            }
            let _ = rt::timeout(left, self.progressed.wait()).await;
        };
        self.shared.borrow_mut().proposals.remove(&index);
        match fate {
            EntryFate::Applied { term: applied } if applied == term => Ok(reply),
            // Not known to have taken effect (still pending, refused on apply, or leadership
            // moved while it waited: a new leader may yet commit it): the broker asks again,
            // and decisions are idempotent.
            _ => Err(error_code::REQUEST_TIMED_OUT),
        }
    }

    /// The loop: steps messages and ticks, carries out outputs, and as the active controller
    /// runs the controller's periodic checks (fencing brokers whose sessions expired).
    async fn run(self, mut files: QuorumFiles, tick: Duration, snapshot_bytes: u64) {
        let mut next_tick = Instant::now() + tick;
        let mut ticks: u64 = 0;
        // WAL bytes right after the last snapshot (its head): snapshots are taken on what was
        // written since, not on a head that holds entries not yet applied.
        let mut wal_base = files.wal_len();
        loop {
            // Taken before the inbox is drained: a message arriving during this round's writes
            // completes it, so the loop does not sleep with work waiting.
            let woken = self.wake.wait();
            {
                let mut shared = self.shared.borrow_mut();
                // Ticks first, each one the shard missed included: a leader whose shard stalled
                // must count the time it was away (and step down if a majority stopped hearing
                // it meanwhile) before stale acknowledgements in its inbox renew its lease.
                let now = Instant::now();
                let mut due = 0;
                while next_tick <= now && due < MAX_TICKS_CAUGHT_UP {
                    next_tick += tick;
                    due += 1;
                }
                if next_tick <= now {
                    next_tick = now + tick;
                }
                if due as usize > TICKS_PER_ELECTION / 2 {
                    // Its peers heard nothing from this voter meanwhile either: enough of
                    // this and a controller loses its lease, or a follower its vote.
                    tracing::warn!(
                        held_up_ms = (tick * due).as_millis() as u64,
                        "the controller's loop was held up (its shard was busy or starved)"
                    );
                }
                for _ in 0..due {
                    shared.quorum.tick();
                    ticks += 1;
                    if ticks % CONTROLLER_TICK_EVERY == 0 {
                        self.controller_tick(&mut shared);
                    }
                }
                if self.refused.take() {
                    // A peer's process just went away: fence it now.
                    self.controller_tick(&mut shared);
                }
                let messages = std::mem::take(&mut shared.inbox);
                for message in messages {
                    if let Err(e) = shared.quorum.step(message) {
                        tracing::debug!("controller: raft message dropped: {e}");
                    }
                }
            }
            let mut written = self.carry_out_outputs(&mut files).await;
            if written.is_ok() && files.wal_len().saturating_sub(wal_base) > snapshot_bytes {
                written = self.snapshot(&mut files).await;
                wal_base = files.wal_len();
            }
            if let Err(e) = written {
                // A voter that cannot write its log, or cannot read what its quorum committed,
                // must not vote or acknowledge: stop the broker (the main thread shuts down on
                // SIGTERM) rather than run on.
                tracing::error!("controller: {e}; shutting down");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::this(),
                    nix::sys::signal::Signal::SIGTERM,
                );
                return;
            }
            let now = Instant::now();
            if now < next_tick {
                let _ = rt::select(woken, rt::sleep(next_tick - now)).await;
            }
        }
    }

    /// Snapshots the image at the applied index and starts a new WAL after it, so that a
    /// restart reads the snapshot and a short log rather than the whole history.
    async fn snapshot(&self, files: &mut QuorumFiles) -> std::io::Result<()> {
        let persist = {
            let mut shared = self.shared.borrow_mut();
            let applied = shared.applied;
            if applied == 0 || applied <= shared.quorum.status().snapshot_index {
                // Nothing applied since the last snapshot: another would be the same (and one
                // at index 0 is no snapshot at all).
                return Ok(());
            }
            let data = shared.controller.image().snapshot_bytes();
            match shared.quorum.compact(applied, data) {
                Ok(persist) => persist,
                Err(e) => {
                    // An installed snapshot is being written: take ours after it.
                    tracing::debug!("controller: snapshot deferred: {e}");
                    return Ok(());
                }
            }
        };
        files.write(persist).await?;
        tracing::info!(wal_bytes = files.wal_len(), "metadata snapshot taken");
        Ok(())
    }

    /// The peers this voter's links cannot reach now.
    pub fn unreachable(&self) -> Arc<Unreachable> {
        self.unreachable.clone()
    }

    /// The active controller's periodic work, proposed as one entry.
    fn controller_tick(&self, shared: &mut Shared) {
        if !Self::is_active(shared) || self.turn.get() {
            return;
        }
        // Voters whose controller listener refuses connections are gone: their sessions end
        // now (see `MetadataController::peer_refused`).
        for (&raft_id, link) in self.links.iter() {
            if let Some(at) = link.last_refused() {
                shared
                    .controller
                    .peer_refused(super::ids::node_of(raft_id), at);
            }
        }
        let mut records = shared.controller.tick(Instant::now());
        for record in &records {
            if let MetadataRecord::FenceBroker { broker_id, .. } = record {
                tracing::info!(
                    broker = broker_id,
                    "fencing a broker that is gone or silent"
                );
            }
        }
        let term = shared.quorum.status().term;
        if shared.controller.image().cluster_id().is_none()
            && shared.cluster_id_proposed != Some(term)
        {
            shared.cluster_id_proposed = Some(term);
            // The first controller of a new cluster names it.
            records.push(MetadataRecord::ClusterId {
                id: super::ids::random_id(),
            });
        }
        if !records.is_empty() {
            if let Err(code) = propose(shared, &records) {
                tracing::debug!(code, "controller: periodic proposal refused");
            }
        }
    }

    /// Drains the quorum's outputs, each carried out in order.
    async fn carry_out_outputs(&self, files: &mut QuorumFiles) -> std::io::Result<()> {
        loop {
            let Some(output) = self.shared.borrow_mut().quorum.ready() else {
                break;
            };
            let Output {
                number,
                messages,
                persist,
                installed,
                committed,
                applied,
            } = output;
            self.send(messages);
            {
                let mut shared = self.shared.borrow_mut();
                if let Some(snapshot) = installed {
                    match MetadataImage::from_snapshot_bytes(&snapshot.data) {
                        Ok(image) => {
                            let settings = shared.settings.clone();
                            shared.controller = MetadataController::new(image, settings);
                        }
                        Err(e) => {
                            // The leader's snapshot is unreadable: continuing would apply the
                            // next entries to the wrong image.
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("snapshot from the leader at {}: {e}", snapshot.index),
                            ));
                        }
                    }
                }
                for entry in committed {
                    let applied_ok = match decode_batch(&entry.data) {
                        Ok(records) => match shared.controller.apply_batch(entry.index, &records) {
                            Ok(()) => true,
                            Err(e) => {
                                // Derived from an image that has since moved on (see the
                                // metadata module): harmless, and the same on every voter.
                                tracing::debug!(index = entry.index, "metadata entry refused: {e}");
                                false
                            }
                        },
                        Err(e) => {
                            // Committed on a majority yet unreadable here (a newer record
                            // format, or damage): skipping it would leave this image different
                            // from every other voter's.
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "committed metadata entry {} is unreadable: {e}",
                                    entry.index
                                ),
                            ));
                        }
                    };
                    if let Some(fate) = shared.proposals.get_mut(&entry.index) {
                        *fate = if applied_ok {
                            EntryFate::Applied { term: entry.term }
                        } else {
                            EntryFate::Lost
                        };
                    }
                }
                shared.applied = shared.applied.max(applied);
                let applied = shared.applied;
                for (_, fate) in shared.proposals.range_mut(..=applied) {
                    if *fate == EntryFate::Waiting {
                        // Its index was applied without it (a new leader's no-op took it).
                        *fate = EntryFate::Lost;
                    }
                }
                self.track_role(&mut shared);
            }
            self.progressed.notify_all();
            files.write(persist).await?;
            let released = self.shared.borrow_mut().quorum.persisted(number);
            self.send(released);
        }
        let became_follower = {
            let mut shared = self.shared.borrow_mut();
            self.track_role(&mut shared)
        };
        if became_follower {
            self.progressed.notify_all();
        }
        Ok(())
    }

    /// Notes a change of leadership: a new leader's term starts at its first entry, and a
    /// controller taking over gives every broker a fresh session. Returns whether leadership
    /// was lost.
    fn track_role(&self, shared: &mut Shared) -> bool {
        let status = shared.quorum.status();
        match (status.role == Role::Leader, shared.term_start) {
            (true, None) => {
                shared.term_start = Some(status.last_index);
                let image = shared.controller.image().clone();
                let settings = shared.settings.clone();
                shared.controller = MetadataController::new(image, settings);
                tracing::info!(term = status.term, "this node is the active controller");
                false
            }
            (false, Some(_)) => {
                shared.term_start = None;
                tracing::info!(term = status.term, "this node is no longer the controller");
                true
            }
            _ => false,
        }
    }

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            match self.links.get(&message.to) {
                Some(link) => link.send(encode_frame(Kind::Raft, &message.encode_to_vec())),
                None => tracing::debug!(to = message.to, "controller: message to no voter"),
            }
        }
    }
}

/// Holds [`Voter::decide`]'s turn; releasing it wakes the next decision.
struct TurnGuard<'a>(&'a Voter);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.0.turn.set(false);
        self.0.turn_free.notify_all();
    }
}

/// Proposes `records` as one entry; its index and term.
fn propose(shared: &mut Shared, records: &[MetadataRecord]) -> Result<(u64, u64), i16> {
    let data = encode_batch(records);
    shared
        .quorum
        .propose(data)
        .map_err(|_| error_code::NOT_CONTROLLER)?;
    let status = shared.quorum.status();
    Ok((status.last_index, status.term))
}

/// Ticks per election timeout: raft campaigns after 10 to 20 ticks without a leader.
const TICKS_PER_ELECTION: usize = 10;
/// Ticks caught up at most after a stall: enough to end any lease or start any election.
const MAX_TICKS_CAUGHT_UP: u32 = 2 * TICKS_PER_ELECTION as u32 + 2;
/// The active controller's periodic checks (session expiry, voters found gone, leaders of
/// fenced brokers) run every this many ticks (a tenth of a second at the default election
/// timeout): a dead leader's partitions move within one check, and a check walks every
/// partition, which ten times a second costs little.
const CONTROLLER_TICK_EVERY: u64 = 2;
/// Raft messages waiting for the loop at most; beyond, new ones are dropped (Raft resends),
/// so a stalled loop does not grow without bound.
const MAX_INBOX: usize = 4096;
