//! Brokers follow the controller's metadata: every broker describes the same leaders, each
//! serves only the partitions it leads (others are refused with NOT_LEADER_OR_FOLLOWER, so
//! clients re-route), librdkafka finds every leader from one bootstrap broker, group
//! coordinators live with the leader of their offsets partition, and a restarted broker keeps
//! its partitions while its metadata log replays.
//!
//! Topics are created with a CreateTopics request to the active controller's node; forwarding
//! from any broker is tested with the topic-change path itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel_tests::cluster::Cluster;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests;

use crate::{eventually, wait_for_brokers};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster of three with a controller and every broker registered; the controller's id.
fn three_brokers(name: &str) -> (Cluster, i32) {
    let cluster = Cluster::start(name, 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    (cluster, controller)
}

/// Creates `topic` with `partitions` partitions of `replication_factor` replicas through
/// node `via`, retrying what a cluster settling down answers.
pub(crate) fn create_topic(
    cluster: &Cluster,
    via: i32,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) {
    let mut creatable = CreatableTopic::default();
    creatable.name = requests::name(topic);
    creatable.num_partitions = partitions;
    creatable.replication_factor = replication_factor;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    request.timeout_ms = 10_000;
    eventually(TIMEOUT, || {
        let mut conn = KafkaConn::connect(cluster.addr(via)).map_err(|e| e.to_string())?;
        let response: CreateTopicsResponse = conn
            .call(ApiKey::CreateTopics, 7, &request)
            .map_err(|e| e.to_string())?;
        let result = &response.topics[0];
        match result.error_code {
            0 | TOPIC_ALREADY_EXISTS => Ok(()),
            code => Err(format!("create {topic}: {code} {:?}", result.error_message)),
        }
    });
}

/// Metadata (v12) for `topics` as node `on` answers it.
pub(crate) fn metadata(
    cluster: &Cluster,
    on: i32,
    topics: &[&str],
) -> Result<MetadataResponse, String> {
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut topic =
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                topic.name = Some(requests::name(t));
                topic
            })
            .collect(),
    );
    // Looking must not create anything.
    request.allow_auto_topic_creation = false;
    let mut conn = KafkaConn::connect(cluster.addr(on)).map_err(|e| e.to_string())?;
    conn.call(ApiKey::Metadata, 12, &request)
        .map_err(|e| e.to_string())
}

/// `topic`'s partition leaders as node `on` describes them, when it knows all `partitions`
/// of them, each with a leader.
pub(crate) fn leaders_seen_by(
    cluster: &Cluster,
    on: i32,
    topic: &str,
    partitions: usize,
) -> Result<Vec<i32>, String> {
    let response = metadata(cluster, on, &[topic])?;
    let described = &response.topics[0];
    if described.error_code != 0 || described.partitions.len() != partitions {
        return Err(format!(
            "node {on}: {topic} error {} with {} partitions",
            described.error_code,
            described.partitions.len()
        ));
    }
    let mut partitions: Vec<_> = described.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    partitions
        .iter()
        .map(|p| match (p.error_code, p.leader_id.0) {
            (0, leader) if leader >= 0 => Ok(leader),
            (code, leader) => Err(format!(
                "node {on}: {topic}-{} error {code}, leader {leader}",
                p.partition_index
            )),
        })
        .collect()
}

/// Waits until every node describes `topic` with the same leader for each partition; the
/// leaders, by partition.
fn agreed_leaders(cluster: &Cluster, topic: &str, partitions: usize) -> Vec<i32> {
    let mut agreed = Vec::new();
    eventually(TIMEOUT, || {
        let first = leaders_seen_by(cluster, 1, topic, partitions)?;
        for node in [2, 3] {
            let seen = leaders_seen_by(cluster, node, topic, partitions)?;
            if seen != first {
                return Err(format!(
                    "node 1 sees leaders {first:?}, node {node} {seen:?}"
                ));
            }
        }
        agreed = first;
        Ok(())
    });
    agreed
}

fn bootstrap(cluster: &Cluster, node: i32) -> String {
    cluster.addr(node).to_string()
}

#[test]
fn every_broker_describes_the_same_leaders_spread_over_the_cluster() {
    let (cluster, controller) = three_brokers("routing-leaders");
    create_topic(&cluster, controller, "spread", 6, 1);
    let leaders = agreed_leaders(&cluster, "spread", 6);
    let distinct: BTreeSet<i32> = leaders.iter().copied().collect();
    assert_eq!(distinct, BTreeSet::from([1, 2, 3]), "leaders {leaders:?}");
    // Each partition's one replica is its leader, in sync; every broker is listed.
    for node in [1, 2, 3] {
        let response = metadata(&cluster, node, &["spread"]).unwrap();
        let mut brokers: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort();
        assert_eq!(brokers, vec![1, 2, 3]);
        for p in &response.topics[0].partitions {
            let leader = leaders[p.partition_index as usize];
            let ids = |list: &[kafka_protocol::messages::BrokerId]| {
                list.iter().map(|b| b.0).collect::<Vec<_>>()
            };
            assert_eq!(ids(&p.replica_nodes), vec![leader]);
            assert_eq!(ids(&p.isr_nodes), vec![leader]);
            assert!(p.offline_replicas.is_empty());
        }
    }
}

#[test]
fn librdkafka_reaches_every_leader_through_one_bootstrap_broker() {
    let (cluster, controller) = three_brokers("routing-rdkafka");
    create_topic(&cluster, controller, "everywhere", 6, 1);
    agreed_leaders(&cluster, "everywhere", 6);
    let through = bootstrap(&cluster, 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..60 {
        let partition = i % 6;
        let value = format!("record-{i}");
        let key = format!("key-{i}");
        let record = BaseRecord::to("everywhere")
            .partition(partition)
            .key(&key)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        sent.entry(partition).or_default().push(value);
    }
    producer.flush(TIMEOUT).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .set("group.id", "routing-unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..6 {
        assignment
            .add_partition_offset("everywhere", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut received: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while received.values().map(Vec::len).sum::<usize>() < 60 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            received.entry(message.partition()).or_default().push(value);
        }
    }
    assert_eq!(received, sent);
}

#[test]
fn a_broker_refuses_partitions_it_does_not_lead() {
    let (cluster, controller) = three_brokers("routing-refuses");
    create_topic(&cluster, controller, "led", 6, 1);
    let leaders = agreed_leaders(&cluster, "led", 6);
    for (partition, &leader) in leaders.iter().enumerate() {
        let partition = partition as i32;
        let other = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
        let batch = requests::records("routed", 3, 1_700_000_000_000);
        let mut elsewhere = KafkaConn::connect(cluster.addr(other)).unwrap();
        let (code, _) = requests::produce(&mut elsewhere, "led", partition, 1, batch.clone());
        assert_eq!(
            code, NOT_LEADER_OR_FOLLOWER,
            "produce to {other}, not the leader {leader}"
        );
        let (code, _, _) = requests::fetch(&mut elsewhere, "led", partition, 0, 0);
        assert_eq!(code, NOT_LEADER_OR_FOLLOWER, "fetch from {other}");
        let (code, _, _) = requests::list_offset(&mut elsewhere, "led", partition, -1);
        assert_eq!(code, NOT_LEADER_OR_FOLLOWER, "list offsets on {other}");
        let mut at_leader = KafkaConn::connect(cluster.addr(leader)).unwrap();
        // The leader the metadata names may still be taking the partition up: retried, as
        // clients retry NOT_LEADER_OR_FOLLOWER.
        eventually(TIMEOUT, || {
            match requests::produce(&mut at_leader, "led", partition, 1, batch.clone()) {
                (0, 0) => Ok(()),
                (NOT_LEADER_OR_FOLLOWER, _) => Err(format!("{leader} is not leading yet")),
                other => panic!("produce to the leader {leader}: {other:?}"),
            }
        });
        let (code, high_watermark, batches) =
            requests::fetch(&mut at_leader, "led", partition, 0, 0);
        assert_eq!((code, high_watermark, batches.len()), (0, 3, 1));
    }
}

/// Java's `String.hashCode`, as Kafka maps a group to its offsets partition.
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

/// FindCoordinator (v3) for `group` as node `on` answers it: (error, node id, port).
fn find_coordinator(cluster: &Cluster, on: i32, group: &str) -> Result<(i16, i32, i32), String> {
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_owned());
    let mut conn = KafkaConn::connect(cluster.addr(on)).map_err(|e| e.to_string())?;
    let response: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, 3, &request)
        .map_err(|e| e.to_string())?;
    Ok((response.error_code, response.node_id.0, response.port))
}

#[test]
fn a_group_coordinated_by_another_broker_consumes_and_commits() {
    let (cluster, controller) = three_brokers("routing-groups");
    create_topic(&cluster, controller, "grouped", 3, 1);
    agreed_leaders(&cluster, "grouped", 3);
    // The first group lookup makes the offsets topic.
    eventually(TIMEOUT, || {
        match find_coordinator(&cluster, controller, "first")? {
            (0, _, _) => Ok(()),
            other => Err(format!("FindCoordinator: {other:?}")),
        }
    });
    // Every broker hears of it in its own time.
    let mut count = 0;
    eventually(TIMEOUT, || {
        let response = metadata(&cluster, 1, &["__consumer_offsets"])?;
        count = response.topics[0].partitions.len();
        match response.topics[0].error_code {
            0 if count > 0 => Ok(()),
            code => Err(format!("__consumer_offsets on 1: error {code}")),
        }
    });
    let leaders = agreed_leaders(&cluster, "__consumer_offsets", count);
    // A group whose coordinator is not the bootstrap broker (1).
    let (group, coordinator) = (0..)
        .map(|i| format!("group-{i}"))
        .map(|g| {
            let leader = leaders[offsets_partition(&g, count as i32) as usize];
            (g, leader)
        })
        .find(|(_, leader)| *leader != 1)
        .unwrap();
    for asked in [1, 2, 3] {
        assert_eq!(
            find_coordinator(&cluster, asked, &group).unwrap(),
            (0, coordinator, i32::from(cluster.addr(coordinator).port())),
            "FindCoordinator on {asked}"
        );
    }
    // The bootstrap broker is not the coordinator, and says so.
    let mut request = HeartbeatRequest::default();
    request.group_id = StrBytes::from_string(group.clone()).into();
    request.generation_id = 1;
    request.member_id = StrBytes::from_static_str("nobody");
    let mut conn = KafkaConn::connect(cluster.addr(1)).unwrap();
    let response: HeartbeatResponse = conn.call(ApiKey::Heartbeat, 4, &request).unwrap();
    assert_eq!(response.error_code, NOT_COORDINATOR);

    let through = bootstrap(&cluster, 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .create()
        .unwrap();
    for i in 0..30 {
        let value = format!("v{i}");
        producer
            .send(
                BaseRecord::<(), _>::to("grouped")
                    .partition(i % 3)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &through)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["grouped"]).unwrap();
    let mut received = 0;
    let deadline = Instant::now() + TIMEOUT;
    while received < 30 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message.unwrap();
            received += 1;
        }
    }
    assert_eq!(received, 30);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    let committed = consumer.committed(TIMEOUT).unwrap();
    let mut offsets: Vec<(i32, Offset)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    offsets.sort_by_key(|(p, _)| *p);
    assert_eq!(
        offsets,
        vec![
            (0, Offset::Offset(10)),
            (1, Offset::Offset(10)),
            (2, Offset::Offset(10))
        ]
    );
}

#[test]
fn a_restarted_broker_keeps_its_partitions_while_its_metadata_replays() {
    let (mut cluster, controller) = three_brokers("routing-restart");
    create_topic(&cluster, controller, "kept", 6, 1);
    let leaders = agreed_leaders(&cluster, "kept", 6);
    for (partition, &leader) in leaders.iter().enumerate() {
        // A leader named in every broker's metadata may not have taken the partition up yet
        // (its shard opens the log, then leads): NOT_LEADER_OR_FOLLOWER meanwhile, which
        // clients retry.
        eventually(TIMEOUT, || {
            let mut conn = KafkaConn::connect(cluster.addr(leader)).map_err(|e| e.to_string())?;
            let batch = requests::records("kept", 2, 1_700_000_000_000);
            match requests::produce(&mut conn, "kept", partition as i32, 1, batch).0 {
                0 => Ok(()),
                code @ NOT_LEADER_OR_FOLLOWER => Err(format!("kept-{partition}: error {code}")),
                code => panic!("kept-{partition}: error {code}"),
            }
        });
    }
    // More metadata after the topic, so the restart replays a snapshot and a log tail.
    for i in 0..5 {
        create_topic(&cluster, controller, &format!("later-{i}"), 1, 1);
    }
    let restarted = [1, 2, 3].into_iter().find(|&n| n != controller).unwrap();
    cluster.kill(restarted);
    cluster.start_node(restarted);
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    // Its partitions come back where they were (leadership may move while it is down).
    let led_before: Vec<usize> = (0..6).filter(|&p| leaders[p] == restarted).collect();
    assert!(!led_before.is_empty());
    eventually(TIMEOUT, || {
        let now = agreed_leaders(&cluster, "kept", 6);
        for &partition in &led_before {
            let leader = now[partition];
            let mut conn = KafkaConn::connect(cluster.addr(leader)).map_err(|e| e.to_string())?;
            let (code, high_watermark, _) =
                requests::fetch(&mut conn, "kept", partition as i32, 0, 0);
            if (code, high_watermark) != (0, 2) {
                return Err(format!(
                    "kept-{partition} on {leader}: error {code}, hw {high_watermark}"
                ));
            }
        }
        Ok(())
    });
}
