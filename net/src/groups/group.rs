//! One group's membership state machine: Kafka's classic group protocol (the rules of Kafka's
//! `GroupCoordinator`, which clients depend on to the error code).
//!
//! States: `Empty` (no members; may hold offsets), `PreparingRebalance` (members must rejoin;
//! their JoinGroups wait), `CompletingRebalance` (a generation was formed; waiting for the
//! leader's SyncGroup with the assignment), `Stable`, and `Dead` (deleted). Everything here is
//! synchronous and takes the time as an argument; the coordinator drives it from requests and a
//! ticker, persists what [`Group::take_store_request`] asks for and reports back with
//! [`Group::stored`]. Waiting requests get their answers through [`reply`] one-shots.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::oneshot::{self, Pending, Sender};
use super::records::{GroupValue, MemberValue};
use super::txn_offsets::{self, OffsetPartition, PendingTxnOffsets, PlacedOffset};
use crate::kafka::error_code as ec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The broker's group settings that the state machine needs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Kafka's `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty
    /// group waits for more members (extended while more keep arriving).
    pub initial_rebalance_delay: Duration,
    /// How long a member that joined during a rebalance may wait before being dropped
    /// (Kafka's fixed 5 minutes).
    pub new_member_join_timeout: Duration,
}

/// A JoinGroup, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty on a first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    /// v4+: a first join gets MEMBER_ID_REQUIRED and a member id to join again with (KIP-394).
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v9+: the answer can tell a leader not to assign (`skip_assignment`).
    pub supports_skip_assignment: bool,
}

/// A JoinGroup's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// The leader was not asked to assign (a static leader rejoining a stable group).
    pub skip_assignment: bool,
    /// For the leader only: every member and its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A SyncGroup's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

/// An answer now, or one to wait for (a JoinGroup until the rebalance completes).
#[derive(Debug)]
pub enum Deferred<T> {
    Now(T),
    Later(Pending<T>),
}

impl<T> Deferred<T> {
    pub async fn get(self) -> Option<T> {
        match self {
            Deferred::Now(value) => Some(value),
            Deferred::Later(pending) => pending.recv().await,
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<Sender<JoinResult>>,
    sync_waiter: Option<Sender<SyncResult>>,
    heartbeat_deadline: Instant,
    /// Joined during the current rebalance (and may only wait `new_member_join_timeout`).
    is_new: bool,
    joined_at: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Takes what a rejoin may change (protocols, timeouts, client) and counts as a heartbeat.
    fn update(&mut self, req: &JoinRequest, now: Instant) {
        self.protocols = req.protocols.clone();
        self.session_timeout = req.session_timeout;
        self.rebalance_timeout = req.rebalance_timeout;
        self.client_id = req.client_id.clone();
        self.client_host = req.client_host.clone();
        self.refresh(now);
    }

    fn refresh(&mut self, now: Instant) {
        self.heartbeat_deadline = now + self.session_timeout;
    }

    /// Kafka's `shouldKeepAlive`: members waiting for a rebalance step are never expired by
    /// their session (they can't heartbeat while their request waits), except a new member
    /// that has waited too long.
    fn alive(&self, now: Instant, timing: &Timing) -> bool {
        if self.join_waiter.is_some() {
            !self.is_new || now < self.joined_at + timing.new_member_join_timeout
        } else if self.sync_waiter.is_some() {
            true
        } else {
            now < self.heartbeat_deadline
        }
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first is the leader when one must be picked.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: HashMap<String, Instant>,
    /// Members that have not sent their SyncGroup for the current generation.
    pending_sync: HashSet<String>,
    join_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits `initial_rebalance_delay`, again while new
    /// members keep arriving, up to the rebalance timeout.
    initial_delay: Option<InitialDelay>,
    sync_deadline: Option<Instant>,
    /// The leader's assignment waits for the group to be stored before members get it.
    assignment_pending_store: bool,
    store_requested: bool,
    /// When the group entered its state (ms since the epoch), for offset expiry.
    pub state_since_ms: i64,
    /// Committed offsets, each with where its record is in the log: a commit whose write
    /// finished after a later one's doesn't overwrite it.
    pub offsets: HashMap<OffsetPartition, PlacedOffset>,
    /// Offsets committed by transactions not yet decided.
    pub pending_txn_offsets: PendingTxnOffsets,
    /// Which group object this is (the coordinator numbers them).
    pub incarnation: u64,
}

#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    remaining: Duration,
    new_member_added: bool,
}

/// Milliseconds since the epoch.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            assignment_pending_store: false,
            store_requested: false,
            state_since_ms: wall_ms(),
            offsets: HashMap::new(),
            pending_txn_offsets: PendingTxnOffsets::default(),
            incarnation: 0,
        }
    }

    /// A group as stored in `__consumer_offsets`: with members it is `Stable` (they keep their
    /// assignment if they heartbeat within their session timeout), else `Empty`.
    pub fn from_value(id: String, value: GroupValue, now: Instant) -> Group {
        let mut group = Group::new(id);
        group.generation = value.generation;
        group.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        group.protocol = value.protocol;
        group.leader = value.leader;
        if value.current_state_timestamp >= 0 {
            group.state_since_ms = value.current_state_timestamp;
        }
        let protocol = group.protocol.clone().unwrap_or_default();
        for m in value.members {
            let session_timeout = Duration::from_millis(m.session_timeout.max(0) as u64);
            group.members.push(Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout,
                rebalance_timeout: Duration::from_millis(m.rebalance_timeout.max(0) as u64),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                heartbeat_deadline: now + session_timeout,
                is_new: false,
                joined_at: now,
            });
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// What `__consumer_offsets` keeps of the group.
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_since_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: millis(m.rebalance_timeout),
                    session_timeout: millis(m.session_timeout),
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the ticker must keep visiting this group (deadlines may pass).
    pub fn needs_ticks(&self) -> bool {
        !self.members.is_empty()
            || !self.pending.is_empty()
            || self.state == GroupState::PreparingRebalance
    }

    /// Whether [`take_store_request`](Self::take_store_request) has something.
    pub fn wants_store(&self) -> bool {
        self.store_requested
    }

    /// The group's state must be written (a generation completed, it emptied, a static member
    /// was replaced). Taking it clears the request.
    pub fn take_store_request(&mut self) -> Option<GroupValue> {
        std::mem::take(&mut self.store_requested).then(|| self.to_value())
    }

    /// The write asked for at `generation` finished (`ok`) or failed.
    pub fn stored(&mut self, generation: i32, ok: bool, now: Instant) {
        if !(self.assignment_pending_store
            && self.state == GroupState::CompletingRebalance
            && self.generation == generation)
        {
            return;
        }
        self.assignment_pending_store = false;
        if ok {
            self.set_state(GroupState::Stable);
            let (protocol_type, protocol) = (self.protocol_type.clone(), self.protocol.clone());
            for m in &mut self.members {
                if let Some(waiter) = m.sync_waiter.take() {
                    waiter.send(SyncResult {
                        error: ec::NONE,
                        protocol_type: protocol_type.clone(),
                        protocol: protocol.clone(),
                        assignment: m.assignment.clone(),
                    });
                }
            }
        } else {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(waiter) = m.sync_waiter.take() {
                    waiter.send(sync_error(ec::COORDINATOR_NOT_AVAILABLE));
                }
            }
            self.prepare_rebalance(now);
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_since_ms = wall_ms();
    }

    fn index_of(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    fn static_member(&self, instance_id: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// A request naming `instance_id` with a member id other than the one registered for it
    /// (an older incarnation of a static member) is fenced.
    pub fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|instance| self.static_member(instance))
            .is_some_and(|i| self.members[i].id != member_id)
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.index_of(member_id).is_some()
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending.contains_key(member_id)
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let Some(first) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidates();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// Each member votes for its most preferred protocol that all support; most votes wins
    /// (ties go to the first member's preference).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in &self.members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// The answer for a member of the current generation.
    fn current_join_result(&self, member: usize) -> JoinResult {
        let id = &self.members[member].id;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        JoinResult {
            error: ec::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.clone(),
            skip_assignment: false,
            members: if is_leader {
                self.member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    /// JoinGroup. `new_member_id` makes the id for a member joining without one.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
        new_member_id: impl FnOnce(&str) -> String,
    ) -> Deferred<JoinResult> {
        if self.state == GroupState::Dead {
            return Deferred::Now(join_error(ec::COORDINATOR_NOT_AVAILABLE, &req.member_id));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Deferred::Now(join_error(ec::INCONSISTENT_GROUP_PROTOCOL, &req.member_id));
        }
        if req.member_id.is_empty() {
            let id = new_member_id(&req.client_id);
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old) = self.static_member(&instance) {
                    return self.replace_static_member(old, id, req, now, timing);
                }
                return self.add_member(id, req, now, timing);
            }
            if req.require_known_member_id {
                self.pending.insert(id.clone(), now + req.session_timeout);
                return Deferred::Now(join_error(ec::MEMBER_ID_REQUIRED, &id));
            }
            return self.add_member(id, req, now, timing);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, now, timing);
        }
        if self.is_fenced(&req.member_id, req.instance_id.as_deref()) {
            return Deferred::Now(join_error(ec::FENCED_INSTANCE_ID, &req.member_id));
        }
        let Some(index) = self.index_of(&req.member_id) else {
            return Deferred::Now(join_error(ec::UNKNOWN_MEMBER_ID, &req.member_id));
        };
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let unchanged = self.members[index].same_protocols(&req.protocols);
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // The member missed its JoinGroup answer: send it again.
                self.members[index].refresh(now);
                Deferred::Now(self.current_join_result(index))
            }
            GroupState::Stable if unchanged && !is_leader => {
                self.members[index].refresh(now);
                Deferred::Now(self.current_join_result(index))
            }
            _ => self.update_member_and_wait(index, req, now, timing),
        }
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
    ) -> Deferred<JoinResult> {
        let (reply, pending) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            if let Some(delay) = &mut self.initial_delay {
                delay.new_member_added = true;
            }
        }
        self.members.push(Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(reply),
            sync_waiter: None,
            heartbeat_deadline: now + req.session_timeout,
            is_new: true,
            joined_at: now,
        });
        self.rebalance_for(pending, now, timing)
    }

    /// A member now waits in a JoinGroup: rebalance (if not already) and see whether that
    /// completes it.
    fn rebalance_for(
        &mut self,
        pending: Pending<JoinResult>,
        now: Instant,
        timing: &Timing,
    ) -> Deferred<JoinResult> {
        self.maybe_prepare_rebalance(now, timing);
        self.maybe_complete_join(now, timing);
        Deferred::Later(pending)
    }

    fn update_member_and_wait(
        &mut self,
        index: usize,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
    ) -> Deferred<JoinResult> {
        let (reply, pending) = oneshot::channel();
        let member = &mut self.members[index];
        member.update(&req, now);
        member.join_waiter = Some(reply);
        self.rebalance_for(pending, now, timing)
    }

    /// KIP-345: a static member (known `group.instance.id`) joining without its member id is
    /// a restart of that member: it takes over the old member's place under a new id, and the
    /// old incarnation is fenced. A stable group whose protocol stays the same hands it its old
    /// assignment without a rebalance.
    fn replace_static_member(
        &mut self,
        index: usize,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
    ) -> Deferred<JoinResult> {
        let old_id = self.members[index].id.clone();
        {
            let member = &mut self.members[index];
            if let Some(waiter) = member.join_waiter.take() {
                waiter.send(join_error(ec::FENCED_INSTANCE_ID, &old_id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                waiter.send(sync_error(ec::FENCED_INSTANCE_ID));
            }
            member.id = new_id.clone();
            member.update(&req, now);
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if self.state == GroupState::Stable && self.select_protocol() == self.protocol {
            self.store_requested = true;
            let mut result = self.current_join_result(index);
            if self.leader.as_deref() == Some(new_id.as_str()) {
                // A stable group keeps its assignment, so the leader must not assign again:
                // v9 says so; older clients are given the old leader id (Kafka's way), which
                // isn't theirs, so they act as followers.
                if req.supports_skip_assignment {
                    result.skip_assignment = true;
                } else {
                    result.leader = old_id;
                    result.members = Vec::new();
                }
            }
            return Deferred::Now(result);
        }
        self.update_member_and_wait(index, req, now, timing)
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, timing: &Timing) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            let was_empty = self.state == GroupState::Empty;
            self.prepare_rebalance(now);
            if was_empty {
                // The first rebalance of an empty group waits for more members.
                let delay = timing.initial_rebalance_delay;
                self.join_deadline = Some(now + delay);
                self.initial_delay = Some(InitialDelay {
                    remaining: self.max_rebalance_timeout().saturating_sub(delay),
                    new_member_added: false,
                });
            }
        }
    }

    /// Starts a rebalance: members must rejoin within the rebalance timeout.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if let Some(waiter) = m.sync_waiter.take() {
                    waiter.send(sync_error(ec::REBALANCE_IN_PROGRESS));
                }
            }
        }
        self.assignment_pending_store = false;
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.initial_delay = None;
        self.join_deadline = Some(now + self.max_rebalance_timeout());
        self.set_state(GroupState::PreparingRebalance);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.iter().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now: Instant, timing: &Timing) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let deadline_passed = self.join_deadline.is_none_or(|d| now >= d);
        if let Some(delay) = self.initial_delay {
            if !deadline_passed {
                return;
            }
            if delay.new_member_added && !delay.remaining.is_zero() {
                let next = timing.initial_rebalance_delay.min(delay.remaining);
                self.initial_delay = Some(InitialDelay {
                    remaining: delay.remaining - next,
                    new_member_added: false,
                });
                self.join_deadline = Some(now + next);
                return;
            }
        } else if !(deadline_passed || self.all_joined()) {
            return;
        }
        self.complete_join(now);
    }

    /// Forms the next generation from the members that rejoined.
    fn complete_join(&mut self, now: Instant) {
        // Dynamic members that didn't rejoin are gone; static ones keep their place (KIP-345:
        // a restarting static member must not cost a second rebalance) until their session
        // times out.
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        // The leader must be a member that rejoined: it alone gets the members to assign.
        let leader_rejoined = self.leader.as_deref().is_some_and(|leader| {
            self.members
                .iter()
                .any(|m| m.id == leader && m.join_waiter.is_some())
        });
        if !leader_rejoined {
            match self.members.iter().find(|m| m.join_waiter.is_some()) {
                Some(m) => self.leader = Some(m.id.clone()),
                None if !self.members.is_empty() => {
                    // Only absent static members: wait for them or their session timeouts.
                    self.join_deadline = Some(now + self.max_rebalance_timeout());
                    return;
                }
                None => {}
            }
        }
        self.initial_delay = None;
        self.join_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            self.store_requested = true;
            return;
        }
        self.protocol = self.select_protocol();
        self.set_state(GroupState::CompletingRebalance);
        self.pending_sync = self.members.iter().map(|m| m.id.clone()).collect();
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        for index in 0..self.members.len() {
            let result = self.current_join_result(index);
            let member = &mut self.members[index];
            member.is_new = false;
            member.refresh(now);
            if let Some(waiter) = member.join_waiter.take() {
                waiter.send(result);
            }
        }
    }

    /// Removes a member; its waiting requests are answered UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, id: &str) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        let member = self.members.remove(index);
        if let Some(waiter) = member.join_waiter {
            waiter.send(join_error(ec::UNKNOWN_MEMBER_ID, id));
        }
        if let Some(waiter) = member.sync_waiter {
            waiter.send(sync_error(ec::UNKNOWN_MEMBER_ID));
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
    }

    /// Removes a member and moves the group on: a rebalance for the others.
    fn remove_member_and_rebalance(&mut self, id: &str, now: Instant, timing: &Timing) {
        self.remove_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                self.maybe_complete_join(now, timing);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, timing),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Deferred<SyncResult> {
        if self.state == GroupState::Dead {
            return Deferred::Now(sync_error(ec::COORDINATOR_NOT_AVAILABLE));
        }
        if self.is_fenced(member_id, instance_id) {
            return Deferred::Now(sync_error(ec::FENCED_INSTANCE_ID));
        }
        let Some(index) = self.index_of(member_id) else {
            return Deferred::Now(sync_error(ec::UNKNOWN_MEMBER_ID));
        };
        if generation != self.generation {
            return Deferred::Now(sync_error(ec::ILLEGAL_GENERATION));
        }
        let type_differs = protocol_type.is_some_and(|t| self.protocol_type.as_deref() != Some(t));
        let name_differs = protocol.is_some_and(|p| self.protocol.as_deref() != Some(p));
        if type_differs || name_differs {
            return Deferred::Now(sync_error(ec::INCONSISTENT_GROUP_PROTOCOL));
        }
        match self.state {
            GroupState::Empty => Deferred::Now(sync_error(ec::UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => Deferred::Now(sync_error(ec::REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let member = &mut self.members[index];
                member.refresh(now);
                Deferred::Now(SyncResult {
                    error: ec::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (reply, pending) = oneshot::channel();
                self.pending_sync.remove(member_id);
                let member = &mut self.members[index];
                member.refresh(now);
                member.sync_waiter = Some(reply);
                let is_leader = self.leader.as_deref() == Some(member_id);
                if is_leader && !self.assignment_pending_store {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.assignment_pending_store = true;
                    self.store_requested = true;
                }
                Deferred::Later(pending)
            }
            GroupState::Dead => unreachable!("checked above"),
        }
    }

    /// Heartbeat: keeps the member's session alive and tells it whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ec::COORDINATOR_NOT_AVAILABLE;
        }
        if self.is_fenced(member_id, instance_id) {
            return ec::FENCED_INSTANCE_ID;
        }
        let Some(index) = self.index_of(member_id) else {
            return ec::UNKNOWN_MEMBER_ID;
        };
        if generation != self.generation {
            return ec::ILLEGAL_GENERATION;
        }
        self.members[index].refresh(now);
        match self.state {
            GroupState::PreparingRebalance => ec::REBALANCE_IN_PROGRESS,
            GroupState::Empty => ec::UNKNOWN_MEMBER_ID,
            _ => ec::NONE,
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        timing: &Timing,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ec::COORDINATOR_NOT_AVAILABLE;
        }
        if let Some(instance) = instance_id {
            let Some(index) = self.static_member(instance) else {
                return ec::UNKNOWN_MEMBER_ID;
            };
            if !member_id.is_empty() && self.members[index].id != member_id {
                return ec::FENCED_INSTANCE_ID;
            }
            let id = self.members[index].id.clone();
            self.remove_member_and_rebalance(&id, now, timing);
            return ec::NONE;
        }
        if self.pending.remove(member_id).is_some() {
            self.maybe_complete_join(now, timing);
            return ec::NONE;
        }
        if !self.has_member(member_id) {
            return ec::UNKNOWN_MEMBER_ID;
        }
        self.remove_member_and_rebalance(member_id, now, timing);
        ec::NONE
    }

    /// Whether an OffsetCommit from this member may be applied (Kafka's rules: a group that
    /// isn't using group management commits with generation -1 while it is empty).
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        if self.is_pending_member(member_id) {
            return Err(ec::REBALANCE_IN_PROGRESS);
        }
        if self.is_fenced(member_id, instance_id) {
            return Err(ec::FENCED_INSTANCE_ID);
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if !self.has_member(member_id) {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(ec::ILLEGAL_GENERATION);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(ec::REBALANCE_IN_PROGRESS),
            _ => Ok(()),
        }
    }

    /// Whether a TxnOffsetCommit from this member may be staged (Kafka's
    /// `doTxnCommitOffsets`): looser than a plain commit, since producers before KIP-447 send no
    /// member or generation (empty member id, generation -1) and those are let through.
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ec::COORDINATOR_NOT_AVAILABLE);
        }
        if self.is_fenced(member_id, instance_id) {
            return Err(ec::FENCED_INSTANCE_ID);
        }
        if !member_id.is_empty() && !self.has_member(member_id) {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if generation >= 0 && generation != self.generation {
            return Err(ec::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// Advances deadlines: expired sessions, pending member ids, rebalance and sync timeouts.
    pub fn tick(&mut self, now: Instant, timing: &Timing) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| now < *deadline);
        if self.pending.len() != before {
            self.maybe_complete_join(now, timing);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.alive(now, timing))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member's session expired");
            self.remove_member_and_rebalance(&id, now, timing);
        }
        self.maybe_complete_join(now, timing);
        let sync_expired = self.sync_deadline.is_some_and(|d| now >= d)
            && matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
        if sync_expired {
            self.sync_deadline = None;
            let late: Vec<String> = self.pending_sync.drain().collect();
            for id in late {
                tracing::info!(group = %self.id, member = %id, "member did not sync in time");
                self.remove_member_and_rebalance(&id, now, timing);
            }
        }
    }

    /// DeleteGroups: only an empty group may go. Its offsets go with it.
    pub fn mark_dead(&mut self) {
        self.set_state(GroupState::Dead);
        self.offsets.clear();
        // Its transactions' offsets go too: their commits must not bring the group back.
        self.pending_txn_offsets = PendingTxnOffsets::default();
    }

    /// The group's offsets partition is no longer led here (Kafka's `onGroupUnloaded`): the
    /// group is dead on this broker, and every member waiting for its JoinGroup or SyncGroup
    /// answer gets NOT_COORDINATOR, so its client looks the coordinator up again and rejoins
    /// there. The group's state lives on in the partition's log, for the new leader to load.
    pub fn unload(&mut self) {
        self.set_state(GroupState::Dead);
        for m in &mut self.members {
            if let Some(waiter) = m.join_waiter.take() {
                waiter.send(join_error(ec::NOT_COORDINATOR, &m.id));
            }
            if let Some(waiter) = m.sync_waiter.take() {
                waiter.send(sync_error(ec::NOT_COORDINATOR));
            }
        }
        // Nothing of the dead group is to be stored or timed out here any more.
        self.members.clear();
        self.leader = None;
        self.pending.clear();
        self.pending_sync.clear();
        self.join_deadline = None;
        self.initial_delay = None;
        self.sync_deadline = None;
        self.assignment_pending_store = false;
        self.store_requested = false;
    }

    /// Applies a committed offset written at `placed.log_offset`, unless a later record
    /// already set this partition's offset.
    pub fn apply_offset(&mut self, partition: OffsetPartition, placed: PlacedOffset) {
        txn_offsets::apply_if_newer(&mut self.offsets, partition, placed);
    }

    /// Undoes [`mark_dead`](Self::mark_dead) when the deletion could not be written.
    pub fn revive(
        &mut self,
        offsets: HashMap<OffsetPartition, PlacedOffset>,
        pending: PendingTxnOffsets,
    ) {
        self.set_state(GroupState::Empty);
        self.offsets = offsets;
        self.pending_txn_offsets = pending;
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

pub fn join_error(error: i16, member_id: &str) -> JoinResult {
    JoinResult {
        error,
        generation: -1,
        member_id: member_id.to_owned(),
        ..Default::default()
    }
}

pub fn sync_error(error: i16) -> SyncResult {
    SyncResult {
        error,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
