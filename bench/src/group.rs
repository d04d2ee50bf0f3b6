//! Consumer-group membership for the load generator's consumers (`consumer_group = true`):
//! the classic group protocol spoken directly, as a Kafka consumer does. Before a run, the
//! consumers of a topic join one group together (each its own client and connection); the
//! leader assigns the partitions round-robin; during the run each consumer heartbeats and
//! commits the offsets it has read, once a second, and leaves at the end.
//!
//! Members are created for the run's fresh topics, so they start from offset 0 (no committed
//! offsets to resume from).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, ResponseHeader, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_engine::rt::TcpStream;
use runnel_net::kafka::frame::FrameReader;

use crate::client::{encode_frame, Conn};

pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;

/// Session timeout the members ask for; they heartbeat every second.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// One member's place in a formed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group coordinator's address.
    pub coordinator: String,
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    /// The partitions of the topic the group gave this member.
    pub partitions: Vec<i32>,
}

/// Forms `group` of `members` consumers of `topic` (which has `partitions` partitions): each
/// member joins on its own connection and thread, as separate clients would, and the call
/// returns once every member has its assignment (after the broker's initial rebalance delay).
pub fn form_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: usize,
    members: usize,
) -> Result<Vec<Membership>, String> {
    let coordinator = find_coordinator(bootstrap, group)?;
    let joining: Vec<_> = (0..members)
        .map(|_| {
            let (coordinator, group, topic) =
                (coordinator.clone(), group.to_owned(), topic.to_owned());
            std::thread::spawn(move || join(&coordinator, &group, &topic, partitions))
        })
        .collect();
    joining
        .into_iter()
        .map(|member| {
            member
                .join()
                .map_err(|_| "a joining member panicked".to_string())?
        })
        .collect()
}

/// The coordinator of `group`, as `host:port`.
fn find_coordinator(bootstrap: &str, group: &str) -> Result<String, String> {
    let mut conn = Conn::connect(bootstrap)?;
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_owned());
    conn.send(ApiKey::FindCoordinator, 3, &request);
    let response: FindCoordinatorResponse = conn.receive(ApiKey::FindCoordinator, 3);
    if response.error_code != 0 {
        return Err(format!(
            "FindCoordinator for {group}: error {}",
            response.error_code
        ));
    }
    Ok(format!("{}:{}", response.host, response.port))
}

/// JoinGroup (twice on a first join, KIP-394), SyncGroup, and the assignment read back.
fn join(
    coordinator: &str,
    group: &str,
    topic: &str,
    partitions: usize,
) -> Result<Membership, String> {
    let mut conn = Conn::connect(coordinator)?;
    let mut member_id = String::new();
    let joined = loop {
        let mut request = JoinGroupRequest::default();
        request.group_id = group_id(group);
        request.session_timeout_ms = SESSION_TIMEOUT.as_millis() as i32;
        request.rebalance_timeout_ms = 60_000;
        request.member_id = StrBytes::from_string(member_id.clone());
        request.protocol_type = StrBytes::from_static_str("consumer");
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = StrBytes::from_static_str("roundrobin");
        protocol.metadata = subscription(topic);
        request.protocols = vec![protocol];
        conn.send(ApiKey::JoinGroup, 9, &request);
        let response: JoinGroupResponse = conn.receive(ApiKey::JoinGroup, 9);
        member_id = response.member_id.to_string();
        match response.error_code {
            MEMBER_ID_REQUIRED => continue,
            0 => break response,
            code => return Err(format!("JoinGroup {group}: error {code}")),
        }
    };
    let assignments = if joined.leader == joined.member_id {
        let ids: Vec<String> = joined
            .members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect();
        round_robin(topic, partitions, &ids)
    } else {
        Vec::new()
    };
    let mut request = SyncGroupRequest::default();
    request.group_id = group_id(group);
    request.generation_id = joined.generation_id;
    request.member_id = StrBytes::from_string(member_id.clone());
    request.protocol_type = Some(StrBytes::from_static_str("consumer"));
    request.protocol_name = joined.protocol_name;
    request.assignments = assignments;
    conn.send(ApiKey::SyncGroup, 5, &request);
    let response: SyncGroupResponse = conn.receive(ApiKey::SyncGroup, 5);
    if response.error_code != 0 {
        return Err(format!("SyncGroup {group}: error {}", response.error_code));
    }
    Ok(Membership {
        coordinator: coordinator.to_owned(),
        group: group.to_owned(),
        member_id,
        generation: joined.generation_id,
        partitions: assigned_partitions(response.assignment, topic)?,
    })
}

pub(crate) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

/// ConsumerProtocolSubscription v0: the topic.
pub(crate) fn subscription(topic: &str) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = vec![StrBytes::from_string(topic.to_owned())];
    versioned(&subscription)
}

/// Round-robin: partition p goes to member p % n.
pub(crate) fn round_robin(
    topic: &str,
    partitions: usize,
    members: &[String],
) -> Vec<SyncGroupRequestAssignment> {
    members
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut assignment = ConsumerProtocolAssignment::default();
            let mut owned = TopicPartition::default();
            owned.topic = TopicName(StrBytes::from_string(topic.to_owned()));
            owned.partitions = (0..partitions as i32)
                .filter(|p| *p as usize % members.len() == i)
                .collect();
            assignment.assigned_partitions = vec![owned];
            let mut entry = SyncGroupRequestAssignment::default();
            entry.member_id = StrBytes::from_string(id.clone());
            entry.assignment = versioned(&assignment);
            entry
        })
        .collect()
}

/// The consumer protocol's encoding: an int16 version (0), then the message at that version.
fn versioned<M: Encodable>(message: &M) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    message.encode(&mut out, 0).expect("encodable at v0");
    out.freeze()
}

/// The partitions of `topic` in a SyncGroup assignment.
fn assigned_partitions(mut assignment: Bytes, topic: &str) -> Result<Vec<i32>, String> {
    if assignment.len() < 2 {
        return Err("an empty assignment".into());
    }
    let version = assignment.get_i16();
    let assignment = ConsumerProtocolAssignment::decode(&mut assignment, version.clamp(0, 3))
        .map_err(|e| format!("a bad assignment: {e}"))?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .collect())
}

/// A member's connection to its coordinator during the run.
pub struct GroupSession {
    stream: TcpStream,
    frames: FrameReader,
    membership: Membership,
}

impl std::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSession")
            .field("membership", &self.membership)
            .finish()
    }
}

impl GroupSession {
    pub async fn connect(membership: Membership) -> Result<GroupSession, String> {
        let stream = crate::client::connect(&membership.coordinator).await?;
        Ok(GroupSession {
            stream,
            frames: FrameReader::new(16 << 20),
            membership,
        })
    }

    /// Commits `offsets` (partition, next offset to read) of `topic` and heartbeats. A
    /// rebalance during a run is an error (the run's partitions would no longer be its own),
    /// unless `closing`: at the end members leave one by one, and those still committing see
    /// the group rebalance around them, as any Kafka consumer group does when it shuts down.
    pub async fn commit_and_heartbeat(
        &mut self,
        topic: &str,
        offsets: &[(i32, i64)],
        closing: bool,
    ) -> Result<(), String> {
        let m = self.membership.clone();
        let mut commit = OffsetCommitRequest::default();
        commit.group_id = group_id(&m.group);
        commit.generation_id_or_member_epoch = m.generation;
        commit.member_id = StrBytes::from_string(m.member_id.clone());
        let mut committed = OffsetCommitRequestTopic::default();
        committed.name = TopicName(StrBytes::from_string(topic.to_owned()));
        committed.partitions = offsets
            .iter()
            .map(|&(partition, offset)| {
                let mut p = OffsetCommitRequestPartition::default();
                p.partition_index = partition;
                p.committed_offset = offset;
                p
            })
            .collect();
        commit.topics = vec![committed];
        let response: OffsetCommitResponse = self.call(ApiKey::OffsetCommit, 8, &commit).await?;
        let failed = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code != 0 && !(closing && p.error_code == REBALANCE_IN_PROGRESS));
        if let Some(p) = failed {
            return Err(format!(
                "committing offsets of {}: error {}",
                self.membership.group, p.error_code
            ));
        }
        let mut heartbeat = HeartbeatRequest::default();
        heartbeat.group_id = group_id(&self.membership.group);
        heartbeat.generation_id = self.membership.generation;
        heartbeat.member_id = StrBytes::from_string(self.membership.member_id.clone());
        let response: HeartbeatResponse = self.call(ApiKey::Heartbeat, 4, &heartbeat).await?;
        match response.error_code {
            0 => Ok(()),
            REBALANCE_IN_PROGRESS if closing => Ok(()),
            code => Err(format!(
                "group {} rebalanced during the run (heartbeat error {code})",
                self.membership.group
            )),
        }
    }

    /// Leaves the group and closes the connection.
    pub async fn leave(mut self) -> Result<(), String> {
        let mut request = LeaveGroupRequest::default();
        request.group_id = group_id(&self.membership.group);
        let mut me = MemberIdentity::default();
        me.member_id = StrBytes::from_string(self.membership.member_id.clone());
        request.members = vec![me];
        let response: LeaveGroupResponse = self.call(ApiKey::LeaveGroup, 5, &request).await?;
        let _ = self.stream.close().await;
        match response.error_code {
            0 => Ok(()),
            code => Err(format!("LeaveGroup: error {code}")),
        }
    }

    async fn call<R: Encodable, T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<T, String> {
        let (sent, _) = self
            .stream
            .send_all(encode_frame(key, version, request))
            .await;
        sent.map_err(|e| format!("{key:?} to the coordinator: {e}"))?;
        let mut body = self
            .frames
            .next(&self.stream)
            .await
            .map_err(|e| format!("{key:?} response: {e}"))?;
        ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| e.to_string())?;
        T::decode(&mut body, version).map_err(|e| e.to_string())
    }
}
