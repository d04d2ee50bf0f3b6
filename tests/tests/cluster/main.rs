//! Clusters of real broker processes on 127.0.0.1: the controller quorum forms, fails over,
//! survives the loss of a minority, stops without a majority, and never splits its brain
//! across a network partition.

mod admin;
mod broker_configs;
mod elections;
mod failover;
mod membership;
mod partition;
mod python_client;
mod reassignment;
mod replication;
mod roles;
mod routing;

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use runnel_tests::cluster::Cluster;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests;

/// A Kafka connection to running node `id`.
pub fn conn(cluster: &Cluster, id: i32) -> KafkaConn {
    KafkaConn::connect(cluster.addr(id)).expect("connect")
}

/// Partition 0 of a topic as one node's Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSeen {
    pub leader: i32,
    pub leader_epoch: i32,
    /// In the metadata's order (the preferred leader first).
    pub replicas: Vec<i32>,
    /// Sorted.
    pub isr: Vec<i32>,
    /// The partition's error code (LEADER_NOT_AVAILABLE when no leader is named).
    pub error_code: i16,
}

/// Partition 0 of `topic` as node `on` describes it.
pub fn partition_seen_by(cluster: &Cluster, on: i32, topic: &str) -> Result<PartitionSeen, String> {
    let mut request = MetadataRequest::default();
    let mut wanted = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    wanted.name = Some(requests::name(topic));
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = false;
    let mut conn = KafkaConn::connect(cluster.addr(on)).map_err(|e| e.to_string())?;
    let response: MetadataResponse = conn
        .call(ApiKey::Metadata, 12, &request)
        .map_err(|e| e.to_string())?;
    let described = response.topics.first().ok_or("no topic")?;
    let p = described
        .partitions
        .first()
        .ok_or_else(|| format!("{topic}: error {}, no partitions", described.error_code))?;
    let ids = |ids: &[kafka_protocol::messages::BrokerId]| -> Vec<i32> {
        ids.iter().map(|b| b.0).collect()
    };
    let mut isr = ids(&p.isr_nodes);
    isr.sort();
    Ok(PartitionSeen {
        leader: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        replicas: ids(&p.replica_nodes),
        isr,
        error_code: p.error_code,
    })
}

/// Polls `check` until it holds or `timeout` passes; the last failure explains.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(reason) if Instant::now() >= deadline => {
                panic!("not within {timeout:?}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Node `on`'s view of the brokers: (id, fenced), by id.
pub fn brokers_seen_by(cluster: &Cluster, on: i32) -> Result<Vec<(i32, bool)>, String> {
    let described = cluster.describe(on).map_err(|e| e.to_string())?;
    let mut brokers: Vec<(i32, bool)> = described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect();
    brokers.sort();
    Ok(brokers)
}

/// Waits until every node in `on` sees exactly `expected` as (id, fenced).
pub fn wait_for_brokers(cluster: &Cluster, on: &[i32], expected: &[(i32, bool)]) {
    eventually(Duration::from_secs(15), || {
        for &node in on {
            let seen = brokers_seen_by(cluster, node)?;
            if seen != expected {
                return Err(format!("node {node} sees {seen:?}, not {expected:?}"));
            }
        }
        Ok(())
    });
}
