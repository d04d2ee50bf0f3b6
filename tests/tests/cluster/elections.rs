//! Preferred leader election (ElectLeaders): after a failover the preferred replica comes back
//! and leads again when asked, through a broker that forwards the request to the controller.

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, ElectLeadersRequest,
    ElectLeadersResponse,
};
use runnel_tests::cluster::Cluster;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests;

use crate::replication::wait_for_isr;
use crate::{eventually, partition_seen_by, wait_for_brokers};

const TIMEOUT: Duration = Duration::from_secs(30);
const TOPIC: &str = "preferred";

/// Creates `topic` with one partition on replicas `replicas`, in that order, through `via`.
pub fn create_assigned(cluster: &Cluster, via: i32, topic_name: &str, replicas: &[i32]) {
    let mut assignment = CreatableReplicaAssignment::default();
    assignment.partition_index = 0;
    assignment.broker_ids = replicas.iter().map(|&b| BrokerId(b)).collect();
    let mut topic = CreatableTopic::default();
    topic.name = requests::name(topic_name);
    topic.num_partitions = -1;
    topic.replication_factor = -1;
    topic.assignments = vec![assignment];
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 10_000;
    eventually(TIMEOUT, || {
        let mut conn = KafkaConn::connect(cluster.addr(via)).map_err(|e| e.to_string())?;
        let response: CreateTopicsResponse = conn
            .call(ApiKey::CreateTopics, 7, &request)
            .map_err(|e| e.to_string())?;
        match response.topics[0].error_code {
            0 | 36 => Ok(()),
            code => Err(format!("create: {code}")),
        }
    });
}

/// ElectLeaders PREFERRED for `partitions` through `via`: (topic, partition, code), in order.
fn elect(
    cluster: &Cluster,
    via: i32,
    partitions: &[(&str, i32)],
) -> Result<Vec<(String, i32, i16)>, String> {
    let mut request = ElectLeadersRequest::default();
    request.election_type = 0;
    request.timeout_ms = 10_000;
    request.topic_partitions = Some(
        partitions
            .iter()
            .map(|&(topic, p)| {
                let mut t = TopicPartitions::default();
                t.topic = requests::name(topic);
                t.partitions = vec![p];
                t
            })
            .collect(),
    );
    let mut conn = KafkaConn::connect(cluster.addr(via)).map_err(|e| e.to_string())?;
    let response: ElectLeadersResponse = conn
        .call(ApiKey::ElectLeaders, 2, &request)
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("ElectLeaders: error {}", response.error_code));
    }
    Ok(response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
        })
        .collect())
}

#[test]
fn the_preferred_replica_leads_again_after_a_failover_when_asked() {
    let mut cluster = Cluster::start("cluster-elect-leaders", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_assigned(&cluster, 2, TOPIC, &[1, 2, 3]);
    assert_eq!(wait_for_isr(&cluster, TOPIC, &[1, 2, 3]), 1);

    // The preferred leader dies: leadership moves.
    cluster.kill(1);
    eventually(TIMEOUT, || match partition_seen_by(&cluster, 2, TOPIC)? {
        seen if seen.leader == 2 || seen.leader == 3 => Ok(()),
        seen => Err(format!("still {seen:?}")),
    });
    // It comes back and catches up, but does not lead (the automatic balance runs only every
    // five minutes by default).
    cluster.start_node(1);
    let leader = wait_for_isr(&cluster, TOPIC, &[1, 2, 3]);
    assert_ne!(leader, 1);
    let epoch_before = partition_seen_by(&cluster, 3, TOPIC).unwrap().leader_epoch;

    // Asked through broker 3 (it forwards to the controller, wherever that is).
    let mut elected = Vec::new();
    eventually(TIMEOUT, || {
        elected = elect(&cluster, 3, &[(TOPIC, 0)])?;
        match elected.as_slice() {
            [(_, 0, 0)] => Ok(()),
            other => Err(format!("answered {other:?}")),
        }
    });
    eventually(TIMEOUT, || {
        for node in cluster.running() {
            let seen = partition_seen_by(&cluster, node, TOPIC)?;
            if seen.leader != 1 || seen.isr != [1, 2, 3] || seen.leader_epoch <= epoch_before {
                return Err(format!("node {node} sees {seen:?}"));
            }
        }
        Ok(())
    });

    // Asked again: nothing to do. An unknown topic is answered per partition.
    let again = elect(&cluster, 2, &[(TOPIC, 0), ("no-such-topic", 0)]).unwrap();
    assert_eq!(
        again,
        vec![
            (TOPIC.to_string(), 0, 84),          // ELECTION_NOT_NEEDED
            ("no-such-topic".to_string(), 0, 3), // UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
}
