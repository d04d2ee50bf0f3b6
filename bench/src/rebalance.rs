//! How long a consumer group takes to rebalance, measured with members that speak the classic
//! group protocol directly (JoinGroup v9 with KIP-394's member-id round trip, SyncGroup v5,
//! Heartbeat v4, LeaveGroup v5), one thread and connection each, so the figure is the broker's
//! and the protocol's, not a client library's.
//!
//! A round: the group is stable; one member restarts (LeaveGroup, then joins again with no
//! member id, as a restarted non-static consumer does); the round ends when every member has
//! completed SyncGroup in one newer generation. The others learn of the rebalance from their
//! next heartbeat, so a round costs at least about one heartbeat interval.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Conn;
use crate::group::{
    group_id, round_robin, subscription, MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bootstrap: String,
    pub group: String,
    /// An existing topic the members subscribe to.
    pub topic: String,
    pub partitions: i32,
    pub members: usize,
    pub heartbeat: Duration,
    pub session_timeout: Duration,
    pub rounds: usize,
}

/// What members report.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Finished SyncGroup for `generation`.
    Synced(Synced),
    /// Sent its LeaveGroup for a restart: the round starts.
    Left(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Synced {
    member: usize,
    generation: i32,
    /// When it sent the JoinGroup of this generation.
    joined: Instant,
    at: Instant,
}

/// One round's times.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// From the restarting member's LeaveGroup to the last member's SyncGroup answer.
    pub total: Duration,
    /// From the last member's JoinGroup to the last SyncGroup answer: the coordinator's part
    /// (forming the generation, storing it, handing out the assignment), without the wait
    /// for members to notice the rebalance.
    pub coordinator: Duration,
}

enum Command {
    Restart,
}

/// Forms the group, then times `rounds` restarts of one member each.
pub fn measure(settings: &Settings) -> Vec<Round> {
    let (events_tx, events) = channel();
    let mut commands = Vec::new();
    let mut threads = Vec::new();
    for index in 0..settings.members {
        let (tx, rx) = channel();
        commands.push(tx);
        let settings = settings.clone();
        let events_tx = events_tx.clone();
        threads.push(std::thread::spawn(move || {
            Member::new(index, &settings).run(rx, events_tx)
        }));
    }
    drop(events_tx);
    let mut latest: HashMap<usize, Synced> = HashMap::new();
    let formed = wait_stable(&events, &mut latest, settings.members, -1, None);
    let mut rounds = Vec::with_capacity(settings.rounds);
    let mut generation = formed;
    for round in 0..settings.rounds {
        commands[round % settings.members]
            .send(Command::Restart)
            .expect("member running");
        let mut left = None;
        generation = wait_stable(
            &events,
            &mut latest,
            settings.members,
            generation,
            Some(&mut left),
        );
        let started = left.expect("the restarting member left");
        let last = latest.values().map(|s| s.at).max().expect("members");
        let last_join = latest.values().map(|s| s.joined).max().expect("members");
        rounds.push(Round {
            total: last - started,
            coordinator: last - last_join,
        });
    }
    drop(commands);
    for thread in threads {
        thread.join().expect("member thread");
    }
    rounds
}

/// Waits until every member has synced the same generation, newer than `after` (and, when
/// timing a round, after the restarting member left, which `left` records); returns it.
fn wait_stable(
    events: &Receiver<Event>,
    latest: &mut HashMap<usize, Synced>,
    members: usize,
    after: i32,
    mut left: Option<&mut Option<Instant>>,
) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let generations: Vec<i32> = latest.values().map(|s| s.generation).collect();
        if generations.len() == members
            && generations
                .iter()
                .all(|g| *g == generations[0] && *g > after)
            && left
                .as_ref()
                .is_none_or(|l| l.is_some_and(|since| latest.values().all(|s| s.at >= since)))
        {
            return generations[0];
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(remaining) {
            Ok(Event::Synced(s)) => {
                latest.insert(s.member, s);
            }
            Ok(Event::Left(at)) => {
                if let Some(left) = left.as_mut() {
                    **left = Some(at);
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("the group did not stabilize in 120 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("a member thread failed"),
        }
    }
}

struct Member {
    index: usize,
    conn: Conn,
    settings: Settings,
    member_id: String,
    generation: i32,
}

impl Member {
    fn new(index: usize, settings: &Settings) -> Member {
        Member {
            index,
            // The caller has already reached the bootstrap (to create the topic), so a failure
            // here is the broker going away mid-benchmark, which `measure` treats as fatal.
            conn: Conn::connect(&settings.bootstrap).unwrap_or_else(|e| panic!("{e}")),
            settings: settings.clone(),
            member_id: String::new(),
            generation: -1,
        }
    }

    fn run(mut self, commands: Receiver<Command>, events: Sender<Event>) {
        let mut need_join = true;
        loop {
            match commands.try_recv() {
                Ok(Command::Restart) => {
                    if events.send(Event::Left(Instant::now())).is_err() {
                        return;
                    }
                    self.leave();
                    self.member_id.clear();
                    need_join = true;
                }
                Err(TryRecvError::Disconnected) => {
                    self.leave();
                    return;
                }
                Err(TryRecvError::Empty) => {}
            }
            if need_join {
                if let Some((generation, joined)) = self.join_and_sync() {
                    need_join = false;
                    let at = Instant::now();
                    let member = self.index;
                    let synced = Synced {
                        member,
                        generation,
                        joined,
                        at,
                    };
                    if events.send(Event::Synced(synced)).is_err() {
                        return;
                    }
                }
                continue;
            }
            std::thread::sleep(self.settings.heartbeat);
            match self.heartbeat() {
                0 => {}
                REBALANCE_IN_PROGRESS => need_join = true,
                _ => {
                    // Unknown member or old generation: start over as a new member.
                    self.member_id.clear();
                    need_join = true;
                }
            }
        }
    }

    fn group_id(&self) -> GroupId {
        group_id(&self.settings.group)
    }

    /// JoinGroup (twice on a first join, KIP-394) and SyncGroup; on success the generation
    /// and when its JoinGroup was sent.
    fn join_and_sync(&mut self) -> Option<(i32, Instant)> {
        let mut sent;
        let joined = loop {
            let mut request = JoinGroupRequest::default();
            request.group_id = self.group_id();
            request.session_timeout_ms = self.settings.session_timeout.as_millis() as i32;
            request.rebalance_timeout_ms = 30_000;
            request.member_id = StrBytes::from_string(self.member_id.clone());
            request.protocol_type = StrBytes::from_static_str("consumer");
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = StrBytes::from_static_str("range");
            protocol.metadata = subscription(&self.settings.topic);
            request.protocols = vec![protocol];
            sent = Instant::now();
            self.conn.send(ApiKey::JoinGroup, 9, &request);
            let response: JoinGroupResponse = self.conn.receive(ApiKey::JoinGroup, 9);
            self.member_id = response.member_id.to_string();
            match response.error_code {
                MEMBER_ID_REQUIRED => continue,
                0 => break response,
                _ => return None,
            }
        };
        self.generation = joined.generation_id;
        let assignments = if joined.leader == joined.member_id && !joined.skip_assignment {
            let ids: Vec<String> = joined
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            round_robin(
                &self.settings.topic,
                self.settings.partitions as usize,
                &ids,
            )
        } else {
            Vec::new()
        };
        let mut request = SyncGroupRequest::default();
        request.group_id = self.group_id();
        request.generation_id = self.generation;
        request.member_id = StrBytes::from_string(self.member_id.clone());
        request.protocol_type = Some(StrBytes::from_static_str("consumer"));
        request.protocol_name = joined.protocol_name;
        request.assignments = assignments;
        self.conn.send(ApiKey::SyncGroup, 5, &request);
        let response: SyncGroupResponse = self.conn.receive(ApiKey::SyncGroup, 5);
        (response.error_code == 0).then_some((self.generation, sent))
    }

    fn heartbeat(&mut self) -> i16 {
        let mut request = HeartbeatRequest::default();
        request.group_id = self.group_id();
        request.generation_id = self.generation;
        request.member_id = StrBytes::from_string(self.member_id.clone());
        self.conn.send(ApiKey::Heartbeat, 4, &request);
        let response: HeartbeatResponse = self.conn.receive(ApiKey::Heartbeat, 4);
        response.error_code
    }

    fn leave(&mut self) {
        if self.member_id.is_empty() {
            return;
        }
        let mut request = LeaveGroupRequest::default();
        request.group_id = self.group_id();
        let mut me = MemberIdentity::default();
        me.member_id = StrBytes::from_string(self.member_id.clone());
        request.members = vec![me];
        self.conn.send(ApiKey::LeaveGroup, 5, &request);
        let _: LeaveGroupResponse = self.conn.receive(ApiKey::LeaveGroup, 5);
    }
}
