//! Nodes with one role: a controller-only node votes but hosts nothing and is no broker; a
//! broker-only node votes not, follows the quorum's metadata from its leader, hosts and leads
//! partitions, forwards topic changes, and after a restart takes up the metadata again from
//! the leader's image (the test's metadata snapshots come every few entries).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel_tests::cluster::{Cluster, NodeRole};
use runnel_tests::runnelctl::{against as runnelctl, ok};

use crate::routing::{create_topic, leaders_seen_by, metadata};
use crate::{eventually, wait_for_brokers};

const TIMEOUT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 6;

/// Every partition's replicas as node `on` describes them, by partition.
fn replicas_seen_by(cluster: &Cluster, on: i32, topic: &str) -> Vec<Vec<i32>> {
    let response = metadata(cluster, on, &[topic]).unwrap();
    let mut partitions: Vec<_> = response.topics[0].partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    partitions
        .iter()
        .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
        .collect()
}

fn produce(bootstrap: &str, topic: &str, count: i32) -> BTreeMap<i32, Vec<String>> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..count {
        let partition = i % PARTITIONS;
        let value = format!("{topic}-{i}");
        let record = BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        sent.entry(partition).or_default().push(value);
    }
    producer.flush(TIMEOUT).unwrap();
    sent
}

fn consume(bootstrap: &str, topic: &str, count: usize) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "roles-unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut received: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while received.values().map(Vec::len).sum::<usize>() < count && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            received.entry(message.partition()).or_default().push(value);
        }
    }
    received
}

#[test]
fn controller_only_and_broker_only_nodes_take_their_parts() {
    use NodeRole::{Broker, Combined, Controller};
    // Voters 1, 2 and 3; brokers 2, 3 and 4.
    let mut cluster =
        Cluster::start_roles("cluster-roles", &[Controller, Combined, Combined, Broker]);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    // Every node, the broker-only one through its observer, sees the same three brokers.
    wait_for_brokers(
        &cluster,
        &[1, 2, 3, 4],
        &[(2, false), (3, false), (4, false)],
    );
    eventually(TIMEOUT, || match cluster.describe(4) {
        Ok(d) if d.controller_id.0 == controller => Ok(()),
        other => Err(format!("node 4 names the controller {other:?}")),
    });

    // runnelctl through the broker-only node: its DescribeQuorum goes to the leader.
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(
        cluster.node(4).broker.as_ref().expect("running"),
        &["--output", "json", "cluster", "info"],
    )))
    .expect("JSON");
    assert_eq!(json["controller"], controller, "{json}");
    assert_eq!(json["quorum"]["leader"], controller, "{json}");
    let voters: Vec<i64> = json["quorum"]["voters"]
        .as_array()
        .expect("voters")
        .iter()
        .map(|v| v["id"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(voters, [1, 2, 3], "{json}");
    let brokers: Vec<i64> = json["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .map(|b| b["id"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(brokers, [2, 3, 4], "{json}");

    // A topic created through the broker-only node (forwarded to the controller) is placed
    // on the brokers alone: never on the controller-only node, and partly on node 4.
    create_topic(&cluster, 4, "mixed", PARTITIONS, 2);
    eventually(TIMEOUT, || {
        for node in [1, 2, 3, 4] {
            leaders_seen_by(&cluster, node, "mixed", PARTITIONS as usize)?;
        }
        Ok(())
    });
    let replicas = replicas_seen_by(&cluster, 4, "mixed");
    let placed: BTreeSet<i32> = replicas.iter().flatten().copied().collect();
    assert_eq!(placed, BTreeSet::from([2, 3, 4]), "replicas {replicas:?}");
    assert!(
        replicas.iter().all(|r| r.len() == 2),
        "replicas {replicas:?}"
    );
    let leaders = leaders_seen_by(&cluster, 4, "mixed", PARTITIONS as usize).unwrap();
    assert!(leaders.contains(&4), "node 4 leads none of {leaders:?}");

    // Clients bootstrap on either: the controller-only node answers their Metadata.
    let sent = produce(&cluster.addr(4).to_string(), "mixed", 60);
    assert_eq!(consume(&cluster.addr(1).to_string(), "mixed", 60), sent);

    // The broker-only node restarted: it has no metadata of its own on disk, takes the
    // leader's image and serves its partitions again.
    cluster.kill(4);
    wait_for_brokers(&cluster, &[1, 2, 3], &[(2, false), (3, false), (4, true)]);
    cluster.start_node(4);
    wait_for_brokers(
        &cluster,
        &[1, 2, 3, 4],
        &[(2, false), (3, false), (4, false)],
    );
    assert_eq!(consume(&cluster.addr(4).to_string(), "mixed", 60), sent);

    // The active controller dies: the broker-only node follows the next one, and its topic
    // changes reach it.
    cluster.kill(controller);
    let voters_left: Vec<i32> = [1, 2, 3].into_iter().filter(|&n| n != controller).collect();
    let next = cluster
        .wait_for_controller(&voters_left, Duration::from_secs(15))
        .unwrap();
    assert_ne!(next, controller);
    // A dead broker is fenced before anything new is placed (it would be placed there
    // otherwise, as on any broker not yet known dead).
    let expected: Vec<(i32, bool)> = [2, 3, 4]
        .into_iter()
        .map(|b| (b, b == controller))
        .collect();
    let mut watching = voters_left.clone();
    watching.push(4);
    wait_for_brokers(&cluster, &watching, &expected);
    create_topic(&cluster, 4, "after", PARTITIONS, 1);
    eventually(TIMEOUT, || {
        leaders_seen_by(&cluster, 4, "after", PARTITIONS as usize).map(|_| ())
    });
    let sent = produce(&cluster.addr(4).to_string(), "after", 30);
    assert_eq!(consume(&cluster.addr(4).to_string(), "after", 30), sent);
}
