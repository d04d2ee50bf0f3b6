//! DescribeQuorum (key 55) and `runnelctl cluster info` against a three-node cluster and a
//! single broker: every node, leader or not, describes the same quorum (followers forward to
//! the leader), the voters' lag settles near zero, and a broker without a quorum answers
//! UNSUPPORTED_VERSION, as a Kafka broker that isn't a KRaft node effectively does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::cluster::Cluster;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::runnelctl::{against as runnelctl, ok};
use runnel_tests::{backends_under_test, Broker, TempDir};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNSUPPORTED_VERSION: i16 = 35;

/// How far behind the leader a follower may be once the cluster has settled: heartbeats and
/// fencing checks keep appending, so "caught up" is within a few entries, not exactly equal.
const SETTLED_LAG: i64 = 5;

fn request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    let mut p = PartitionData::default();
    p.partition_index = partition;
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partitions = vec![p];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![t];
    request
}

fn describe(addr: SocketAddr, version: i16) -> std::io::Result<DescribeQuorumResponse> {
    KafkaConn::connect(addr)?.call(
        ApiKey::DescribeQuorum,
        version,
        &request("__cluster_metadata", 0),
    )
}

/// What one node said: (leader, epoch, [(voter, log end offset)]), or why it is not usable.
type Described = (i32, i32, Vec<(i32, i64)>);

fn described(response: &DescribeQuorumResponse) -> Result<Described, String> {
    if response.error_code != 0 {
        return Err(format!("top-level error {}", response.error_code));
    }
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("no partition in the answer")?;
    if partition.error_code != 0 {
        return Err(format!("partition error {}", partition.error_code));
    }
    let voters = partition
        .current_voters
        .iter()
        .map(|v| (v.replica_id.0, v.log_end_offset))
        .collect();
    Ok((partition.leader_id.0, partition.leader_epoch, voters))
}

/// Whether every node's answer agrees on the leader and epoch, lists voters 1..=3, and has
/// the leader's lag 0 and each follower's at most [`SETTLED_LAG`].
fn settled(answers: &[Described]) -> Result<i32, String> {
    let (leader, epoch, _) = answers.first().ok_or("no answers")?;
    for (other_leader, other_epoch, voters) in answers {
        if (other_leader, other_epoch) != (leader, epoch) {
            return Err(format!("leaders disagree: {answers:?}"));
        }
        let ids: Vec<i32> = voters.iter().map(|(id, _)| *id).collect();
        if ids != [1, 2, 3] {
            return Err(format!("voters {ids:?}"));
        }
        let leader_end = voters
            .iter()
            .find(|(id, _)| id == leader)
            .map(|(_, end)| *end)
            .ok_or("the leader is not among the voters")?;
        if leader_end <= 0 {
            return Err(format!("leader's log end {leader_end}"));
        }
        for (id, end) in voters {
            let lag = leader_end - end;
            if *end < 0 || lag > SETTLED_LAG {
                return Err(format!("voter {id} at {end}, leader at {leader_end}"));
            }
        }
    }
    Ok(*leader)
}

/// Waits until node `id` reports `n` registered brokers, none fenced.
fn wait_for_unfenced_brokers(cluster: &Cluster, id: i32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let brokers = cluster.describe(id).map(|d| d.brokers);
        if let Ok(brokers) = &brokers {
            if brokers.len() == n && brokers.iter().all(|b| !b.is_fenced) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "brokers never all registered and unfenced: {brokers:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_node_describes_the_same_quorum_and_runnelctl_shows_its_voters() {
    let cluster = Cluster::start("quorum-status", 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(30))
        .expect("a controller");
    // Several connections to each node, so that requests arrive on both of its shards (the
    // handler hops to shard 0, where the voter is) and reach leader and followers alike.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let answers: Result<Vec<Described>, String> = (1..=3)
            .flat_map(|id| std::iter::repeat_n(id, 3))
            .map(|id| {
                describe(cluster.addr(id), 2)
                    .map_err(|e| format!("node {id}: {e}"))
                    .and_then(|r| described(&r).map_err(|e| format!("node {id}: {e}")))
            })
            .collect();
        match answers.and_then(|a| settled(&a)) {
            Ok(leader) => break leader,
            Err(why) if Instant::now() >= deadline => panic!("quorum never settled: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    // In combined mode the quorum's leader is the active controller.
    assert_eq!(leader, controller);

    // Every version decodes, from the leader and from a follower; v2 lists the voters'
    // controller endpoints, earlier versions none.
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    for id in [leader, follower] {
        for version in 0..=2 {
            let response = describe(cluster.addr(id), version).expect("an answer");
            let (named, _, voters) = described(&response).expect("a description");
            assert_eq!((named, voters.len()), (leader, 3), "node {id} v{version}");
            if version == 2 {
                let ports: Vec<(i32, u16)> = response
                    .nodes
                    .iter()
                    .map(|n| (n.node_id.0, n.listeners[0].port))
                    .collect();
                let expected: Vec<(i32, u16)> = (1..=3)
                    .map(|n| (n, cluster.node(n).controller_port))
                    .collect();
                assert_eq!(ports, expected);
            } else {
                assert!(response.nodes.is_empty());
            }
            // Kafka reports the current time for the leader's own timestamps.
            let partition = &response.topics[0].partitions[0];
            let own = partition
                .current_voters
                .iter()
                .find(|v| v.replica_id.0 == leader)
                .expect("the leader's entry");
            if version >= 1 {
                assert!(own.last_fetch_timestamp > 0, "{own:?}");
            }
        }
    }

    // Anything but exactly the metadata partition: every named partition is unknown.
    let mut conn = KafkaConn::connect(cluster.addr(follower)).expect("connect");
    let refused: DescribeQuorumResponse = conn
        .call(ApiKey::DescribeQuorum, 2, &request("orders", 0))
        .expect("an answer");
    assert_eq!(refused.topics[0].topic_name.0.as_str(), "orders");
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let refused: DescribeQuorumResponse = conn
        .call(ApiKey::DescribeQuorum, 2, &request("__cluster_metadata", 1))
        .expect("an answer");
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // runnelctl, through a follower: three brokers, the controller, three voters. The
    // brokers register and are unfenced on their own schedule: wait for all three.
    wait_for_unfenced_brokers(&cluster, follower, 3);
    let broker = cluster.node(follower).broker.as_ref().expect("running");
    let table = ok(runnelctl(broker, &["cluster", "info"]));
    assert!(
        table.contains(&format!("controller quorum: leader {leader}, epoch ")),
        "{table}"
    );
    let voter_rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("VOTER"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(voter_rows.len(), 3, "{table}");
    for (row, id) in voter_rows.iter().zip(1..=3) {
        assert_eq!(row[0], id.to_string(), "{table}");
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!(row[1], role, "{table}");
        let lag: i64 = row[3].parse().expect("a known lag");
        assert!(lag <= SETTLED_LAG, "{table}");
        if id == leader {
            assert_eq!(lag, 0, "{table}");
        }
    }
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(
        broker,
        &["--output", "json", "cluster", "info"],
    )))
    .expect("JSON");
    assert_eq!(json["controller"], leader);
    assert_eq!(json["brokers"].as_array().map(Vec::len), Some(3), "{json}");
    assert_eq!(json["brokers"][0]["fenced"], false, "{json}");
    assert_eq!(json["quorum"]["leader"], leader);
    let voters = json["quorum"]["voters"].as_array().expect("voters");
    let roles: Vec<(i64, &str)> = voters
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().unwrap_or(-1),
                v["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let expected: Vec<(i64, &str)> = (1..=3)
        .map(|id| {
            let role = if id == leader { "leader" } else { "follower" };
            (i64::from(id), role)
        })
        .collect();
    assert_eq!(roles, expected);
}

#[test]
fn a_single_broker_has_no_quorum_to_describe_and_runnelctl_still_works() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("quorum-status-single");
    let broker = Broker::start_in(&dir, backend, &[]);
    for version in 0..=2 {
        // Whatever partition is named: the broker has no quorum at all.
        for (topic, partition) in [("__cluster_metadata", 0), ("orders", 0)] {
            let mut conn = KafkaConn::connect(broker.addr).expect("connect");
            let response: DescribeQuorumResponse = conn
                .call(ApiKey::DescribeQuorum, version, &request(topic, partition))
                .expect("an answer, not a closed connection");
            assert_eq!(response.error_code, UNSUPPORTED_VERSION, "v{version}");
            assert_ne!(response.error_code, NOT_LEADER_OR_FOLLOWER);
            assert!(response.topics.is_empty());
            if version == 2 {
                assert!(response.error_message.is_some());
            }
        }
    }
    let table = ok(runnelctl(&broker, &["cluster", "info"]));
    assert!(table.starts_with("cluster id: "), "{table}");
    assert!(
        table.contains("controller quorum: none (a single broker)"),
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(2)
        .expect("a broker row")
        .split_whitespace()
        .collect();
    assert_eq!(row[0], "0");
    assert_eq!(row.last(), Some(&"controller"));
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(
        &broker,
        &["--output", "json", "cluster", "info"],
    )))
    .expect("JSON");
    assert_eq!(json["quorum"], serde_json::Value::Null);
    assert_eq!(json["brokers"][0]["fenced"], false);
}

#[test]
fn without_a_majority_there_is_no_leader_to_describe() {
    let mut cluster = Cluster::start("quorum-status-minority", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(30))
        .expect("a controller");
    cluster.kill(1);
    cluster.kill(2);
    // Node 3 alone: a follower's leader is gone (forwarding fails), a leader steps down once
    // it no longer hears from a majority (check_quorum); either way, no leader to describe.
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        let response = describe(cluster.addr(3), 2).expect("an answer");
        let code = response.topics.first().and_then(|t| t.partitions.first());
        if code.is_some_and(|p| p.error_code == NOT_LEADER_OR_FOLLOWER) {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "still described without a majority: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(
        response.topics[0].topic_name.0.as_str(),
        "__cluster_metadata"
    );
    assert_eq!(partition.leader_id.0, -1);
    assert!(partition.error_message.is_some());
    // runnelctl still shows the brokers, and says why the quorum isn't described.
    let broker = cluster.node(3).broker.as_ref().expect("running");
    let table = ok(runnelctl(broker, &["cluster", "info"]));
    assert!(
        table.contains("controller quorum: not described now (NotLeaderOrFollower"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(
        broker,
        &["--output", "json", "cluster", "info"],
    )))
    .expect("JSON");
    assert!(json["quorum"]["error"].is_string(), "{json}");
}
