//! DescribeQuorum (key 55, KIP-595/KIP-836): the controller quorum's leader, its epoch, its
//! high watermark, and how far each voter has replicated the metadata log, for
//! `kafka-metadata-quorum.sh`, the admin client's `describeMetadataQuorum` and
//! `runnelctl cluster info`.
//!
//! Only the leader knows the voters' progress (Kafka's KafkaRaftClient answers only as the
//! leader), so a node that isn't leader forwards the request to the one it knows over the
//! controller listener and relays its answer; the leader answers there too
//! (`controller::node::requests`).
//!
//! The "offsets" are raft indexes. A raft entry's index is its position counting from 1, so
//! the index of the last entry is the end offset (one past the last offset) the log would
//! have if its entries were numbered from 0, as Kafka's are: a voter's log end offset is its
//! highest replicated index, and the high watermark is the commit index.
//!
//! A broker running without a quorum (single-broker mode) is not a KRaft node: a Kafka broker
//! that isn't one doesn't serve this API, and its clients get UnsupportedVersionException, so
//! it answers UNSUPPORTED_VERSION at the top level (which the admin client turns into that
//! same exception) rather than a retriable error its clients would retry until they time out.

use std::time::Duration;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt;

use crate::controller::node::source::{local_source, MetadataSource};
use crate::controller::node::voter::{node_of, Voter};
use crate::controller::quorum::{QuorumStatus, Role};
use crate::controller::transport::RpcClient;
use crate::kafka::error_code;

/// The metadata log's topic and partition, the only ones a quorum describes.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_PARTITION: i32 = 0;

/// The versions served, on the Kafka listener and forwarded over the controller listener.
pub const MAX_VERSION: i16 = 2;

/// Kafka's name for the listener voters talk to each other on (v2's node endpoints).
const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// How long a forwarded request waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

crate::api!(DescribeQuorum, 0..=2, |call, request| handle(
    call.broker.in_cluster,
    request,
    call.version
)
.await);

pub async fn handle(
    in_cluster: bool,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    if !in_cluster {
        // Not advertised by such a broker (ApiVersions), so only a client that ignores
        // ApiVersions gets here.
        return fit_to_version(no_quorum(), version);
    }
    // The voter lives on shard 0; its answer is plain data, so it travels back to this one.
    let response = match rt::run_on(0, move || answer_on_shard_zero(request)).await {
        Ok(response) => response,
        // Shard 0 stopped: the node is shutting down, and another node can answer.
        Err(_) => not_leader("this node is shutting down"),
    };
    fit_to_version(response, version)
}

/// Answers on shard 0: as the leader, or by asking the leader.
async fn answer_on_shard_zero(request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let Some(metadata) = local_source() else {
        // A node of a cluster still joining it (the other shards serve first).
        return not_leader("this node is still joining the cluster");
    };
    if !names_the_metadata_partition(&request) {
        return unknown_partitions(&request);
    }
    if let MetadataSource::Voter(voter) = &metadata {
        if voter.status().role == Role::Leader {
            return leader_answer(voter);
        }
    }
    match metadata.leader() {
        Some(leader) => forward(&metadata.voter_addresses(), leader, &request).await,
        None => not_leader("no controller quorum leader is elected"),
    }
}

/// The leader's answer, for a request that reached it on the controller listener (or on its
/// own Kafka listener): NOT_LEADER_OR_FOLLOWER if it has lost the leadership meanwhile.
pub fn answer_as_leader(voter: &Voter, request: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !names_the_metadata_partition(request) {
        return unknown_partitions(request);
    }
    leader_answer(voter)
}

fn leader_answer(voter: &Voter) -> DescribeQuorumResponse {
    let status = voter.status();
    if status.role != Role::Leader {
        return not_leader("this node is no longer the controller quorum leader");
    }
    describe(&status, &voter.voter_addresses(), now_ms())
}

/// Sends `request` to `leader`'s controller listener and relays the answer.
async fn forward(
    voters: &[(i32, String)],
    leader: i32,
    request: &DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if !voters.iter().any(|(id, _)| *id == leader) {
        return not_leader(&format!(
            "the leader, node {leader}, is not a configured voter"
        ));
    }
    // A connection per request: DescribeQuorum is an occasional admin call, not worth a
    // connection kept open to whichever node leads.
    let mut client = RpcClient::new(
        voters.to_vec(),
        "runnel-describe-quorum".into(),
        FORWARD_TIMEOUT,
    );
    client.aim_at(leader);
    // At the highest version, whatever the client's: the answer is fitted to its version
    // when encoded.
    match client
        .call(ApiKey::DescribeQuorum, MAX_VERSION, request)
        .await
    {
        Ok(response) => response,
        // Retriable: by the time the client retries, the leader is reachable or another
        // one is elected.
        Err(e) => not_leader(&format!("the leader, node {leader}, did not answer: {e}")),
    }
}

/// Whether the request names exactly the metadata partition, as Kafka requires (anything
/// else, even the metadata partition among others, is refused whole).
pub fn names_the_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION)
        }
        _ => false,
    }
}

/// UNKNOWN_TOPIC_OR_PARTITION for every partition the request names.
pub fn unknown_partitions(request: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut data = TopicData::default();
            data.topic_name = topic.topic_name.clone();
            data.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = unknown_leader(p.partition_index);
                    partition.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    partition
                })
                .collect();
            data
        })
        .collect();
    response
}

/// The metadata partition with NOT_LEADER_OR_FOLLOWER (retriable: the admin client retries).
pub fn not_leader(message: &str) -> DescribeQuorumResponse {
    let mut partition = unknown_leader(METADATA_PARTITION);
    partition.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
    partition.error_message = Some(StrBytes::from_string(message.to_owned()));
    metadata_topic(partition)
}

/// The answer of a broker without a quorum (see the module notes).
pub fn no_quorum() -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    response.error_code = error_code::UNSUPPORTED_VERSION;
    response.error_message = Some(StrBytes::from_static_str(
        "this broker runs alone, without a controller quorum",
    ));
    response
}

/// The leader's description of the quorum from its raft status, at `now_ms` (wall clock).
pub fn describe(
    status: &QuorumStatus,
    voter_addresses: &[(i32, String)],
    now_ms: i64,
) -> DescribeQuorumResponse {
    let leader = node_of(status.id);
    let mut partition = PartitionData::default();
    partition.partition_index = METADATA_PARTITION;
    partition.leader_id = BrokerId(leader);
    partition.leader_epoch = i32::try_from(status.term).unwrap_or(i32::MAX);
    partition.high_watermark = offset(status.commit);
    partition.current_voters = status
        .voters
        .iter()
        .map(|progress| {
            let id = node_of(progress.id);
            let mut voter = ReplicaState::default();
            voter.replica_id = BrokerId(id);
            // raft-rs resets a follower's match to 0 when a leader takes over, until the
            // follower confirms an entry: 0 is "not known yet", which Kafka reports as -1.
            // (The leader's own match is its persisted index, as Kafka's is its flushed end.)
            voter.log_end_offset = if progress.matched == 0 {
                -1
            } else {
                offset(progress.matched)
            };
            // Kafka reports the current time for the leader; it doesn't track when each
            // follower last fetched or caught up here, so those are unknown (-1).
            let at = if id == leader { now_ms } else { -1 };
            voter.last_fetch_timestamp = at;
            voter.last_caught_up_timestamp = at;
            voter
        })
        .collect();
    // Every node is a voter (combined mode): there are no observers to list.
    let mut response = metadata_topic(partition);
    response.nodes = voter_addresses
        .iter()
        .map(|(id, address)| {
            let mut node = Node::default();
            node.node_id = BrokerId(*id);
            node.listeners = endpoint(address).into_iter().collect();
            node
        })
        .collect();
    response
}

/// Drops what `version` can't carry (v2's node endpoints), so that it encodes.
pub fn fit_to_version(
    mut response: DescribeQuorumResponse,
    version: i16,
) -> DescribeQuorumResponse {
    if version < 2 {
        response.nodes.clear();
        for replica in response
            .topics
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
            .flat_map(|p| p.current_voters.iter_mut().chain(p.observers.iter_mut()))
        {
            replica.replica_directory_id = Default::default();
        }
    }
    response
}

/// A controller listener's `host:port` as a v2 endpoint (none if it doesn't parse; the
/// settings check it does).
fn endpoint(address: &str) -> Option<Listener> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut listener = Listener::default();
    listener.name = StrBytes::from_static_str(CONTROLLER_LISTENER);
    listener.host = StrBytes::from_string(host.to_owned());
    listener.port = port.parse().ok()?;
    Some(listener)
}

/// A partition whose leader is not given (an error's): -1, "none", rather than node 0.
fn unknown_leader(partition_index: i32) -> PartitionData {
    let mut partition = PartitionData::default();
    partition.partition_index = partition_index;
    partition.leader_id = BrokerId(-1);
    partition.leader_epoch = -1;
    partition.high_watermark = -1;
    partition
}

fn metadata_topic(partition: PartitionData) -> DescribeQuorumResponse {
    let mut topic = TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut response = DescribeQuorumResponse::default();
    response.topics = vec![topic];
    response
}

fn offset(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::describe_quorum_request;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::controller::quorum::VoterProgress;

    fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
        let mut request = DescribeQuorumRequest::default();
        request.topics = topics
            .iter()
            .map(|(name, partitions)| {
                let mut topic = describe_quorum_request::TopicData::default();
                topic.topic_name = TopicName(StrBytes::from_string(name.to_string()));
                topic.partitions = partitions
                    .iter()
                    .map(|&index| {
                        let mut p = describe_quorum_request::PartitionData::default();
                        p.partition_index = index;
                        p
                    })
                    .collect();
                topic
            })
            .collect();
        request
    }

    /// Leader raft id 2 (node 1) at term 7, commit 40, with node 0 at 40, node 2 at 38.
    fn leader_status() -> QuorumStatus {
        QuorumStatus {
            id: 2,
            role: Role::Leader,
            term: 7,
            leader: Some(2),
            commit: 40,
            applied: 40,
            last_index: 41,
            snapshot_index: 0,
            voters: vec![
                VoterProgress { id: 1, matched: 40 },
                VoterProgress { id: 2, matched: 41 },
                VoterProgress { id: 3, matched: 38 },
            ],
        }
    }

    fn addresses() -> Vec<(i32, String)> {
        vec![
            (0, "127.0.0.1:9093".into()),
            (1, "[::1]:9094".into()),
            (2, "nonsense".into()),
        ]
    }

    fn roundtrip(response: &DescribeQuorumResponse, version: i16) -> DescribeQuorumResponse {
        let mut buf = BytesMut::new();
        response.encode(&mut buf, version).expect("encodes");
        DescribeQuorumResponse::decode(&mut buf.freeze(), version).expect("decodes")
    }

    #[test]
    fn only_exactly_the_metadata_partition_is_described() {
        assert!(names_the_metadata_partition(&request(&[(
            "__cluster_metadata",
            &[0]
        )])));
        for refused in [
            request(&[]),
            request(&[("__cluster_metadata", &[1])]),
            request(&[("__cluster_metadata", &[0, 1])]),
            request(&[("__cluster_metadata", &[])]),
            request(&[("orders", &[0])]),
            request(&[("__cluster_metadata", &[0]), ("orders", &[0])]),
        ] {
            assert!(!names_the_metadata_partition(&refused), "{refused:?}");
        }
    }

    #[test]
    fn every_named_partition_of_a_refused_request_is_unknown() {
        let response = unknown_partitions(&request(&[
            ("__cluster_metadata", &[0]),
            ("orders", &[3, 4]),
        ]));
        assert_eq!(response.error_code, 0);
        let named: Vec<(&str, i32, i16)> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic_name.0.as_str(), p.partition_index, p.error_code))
            })
            .collect();
        let unknown = error_code::UNKNOWN_TOPIC_OR_PARTITION;
        assert_eq!(
            named,
            [
                ("__cluster_metadata", 0, unknown),
                ("orders", 3, unknown),
                ("orders", 4, unknown)
            ]
        );
    }

    #[test]
    fn the_leader_maps_raft_ids_terms_and_indexes_to_kafka_s_fields() {
        let response = describe(&leader_status(), &addresses(), 1_000);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(response.topics[0].topic_name.0.as_str(), METADATA_TOPIC);
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.leader_id, BrokerId(1));
        assert_eq!(partition.leader_epoch, 7);
        assert_eq!(partition.high_watermark, 40);
        let voters: Vec<(i32, i64, i64)> = partition
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_fetch_timestamp))
            .collect();
        assert_eq!(voters, [(0, 40, -1), (1, 41, 1_000), (2, 38, -1)]);
        assert!(partition.observers.is_empty());
        // v2's endpoints: bracketed IPv6 hosts unwrapped, an unparseable one left out.
        let nodes: Vec<(i32, Vec<(String, u16)>)> = response
            .nodes
            .iter()
            .map(|n| {
                let listeners = n
                    .listeners
                    .iter()
                    .map(|l| (l.host.to_string(), l.port))
                    .collect();
                (n.node_id.0, listeners)
            })
            .collect();
        assert_eq!(
            nodes,
            [
                (0, vec![("127.0.0.1".to_owned(), 9093)]),
                (1, vec![("::1".to_owned(), 9094)]),
                (2, vec![])
            ]
        );
    }

    #[test]
    fn a_follower_the_leader_has_not_heard_from_is_unknown() {
        let mut status = leader_status();
        status.voters[2].matched = 0;
        let response = describe(&status, &addresses(), 1_000);
        assert_eq!(
            response.topics[0].partitions[0].current_voters[2].log_end_offset,
            -1
        );
    }

    #[test]
    fn huge_terms_and_indexes_saturate_rather_than_wrap() {
        let mut status = leader_status();
        status.term = u64::MAX;
        status.commit = u64::MAX;
        let response = describe(&status, &addresses(), 1_000);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.leader_epoch, i32::MAX);
        assert_eq!(partition.high_watermark, i64::MAX);
    }

    #[test]
    fn every_answer_encodes_at_every_version_once_fitted() {
        let answers = [
            describe(&leader_status(), &addresses(), 1_000),
            not_leader("no leader"),
            no_quorum(),
            unknown_partitions(&request(&[("orders", &[0])])),
        ];
        for answer in answers {
            for version in 0..=MAX_VERSION {
                let fitted = fit_to_version(answer.clone(), version);
                let decoded = roundtrip(&fitted, version);
                assert_eq!(decoded.error_code, answer.error_code);
                assert_eq!(decoded.topics.len(), answer.topics.len());
                if version == 2 {
                    assert_eq!(decoded, answer);
                }
            }
        }
    }

    #[test]
    fn errors_name_no_leader_and_the_single_broker_answer_is_top_level() {
        let partition = &not_leader("x").topics[0].partitions[0];
        assert_eq!(partition.error_code, error_code::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(partition.leader_id, BrokerId(-1));
        let alone = no_quorum();
        assert_eq!(alone.error_code, error_code::UNSUPPORTED_VERSION);
        assert!(alone.topics.is_empty());
    }
}
