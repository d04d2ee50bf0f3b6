//! Admin look-ups that produce, consume and group share: a topic's partitions and leaders
//! (Metadata), offsets by time or position (ListOffsets, sent to each partition's leader), and
//! a group's coordinator (FindCoordinator), with retries while a coordinator is loading.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{kafka_error, Client};
use crate::Global;

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// Kafka error codes a command waits out (the coordinator is loading or moved).
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A topic-partition.
pub type Tp = (String, i32);

/// The brokers and the asked-for topics' partitions with their leaders.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Broker id -> `host:port`.
    pub brokers: BTreeMap<i32, String>,
    /// Topic -> partition -> leader broker id.
    pub topics: HashMap<String, BTreeMap<i32, i32>>,
}

impl Cluster {
    /// The partitions of `topic` (only `partition` when given), or why not.
    pub fn partitions(&self, topic: &str, partition: Option<i32>) -> Result<Vec<i32>, String> {
        let partitions = self
            .topics
            .get(topic)
            .ok_or_else(|| format!("unknown topic {topic}"))?;
        match partition {
            None => Ok(partitions.keys().copied().collect()),
            Some(p) if partitions.contains_key(&p) => Ok(vec![p]),
            Some(p) => Err(format!(
                "topic {topic} has no partition {p} (it has {})",
                partitions.len()
            )),
        }
    }
}

/// Metadata for `topics` (all topics when `None`); unknown topics are left out (or created,
/// with `create`, where the broker creates topics on demand).
pub fn metadata(
    client: &mut Client,
    topics: Option<&[&str]>,
    create: bool,
) -> Result<Cluster, String> {
    let mut request = MetadataRequest::default();
    request.allow_auto_topic_creation = create;
    request.topics = topics.map(|names| {
        names
            .iter()
            .map(|name| {
                let mut topic = MetadataRequestTopic::default();
                topic.name = Some(TopicName(StrBytes::from_string((*name).to_owned())));
                topic
            })
            .collect()
    });
    let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &request)?;
    let mut cluster = Cluster::default();
    for broker in &response.brokers {
        cluster
            .brokers
            .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
    }
    for topic in &response.topics {
        if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            continue;
        }
        let Some(name) = &topic.name else { continue };
        if topic.error_code != 0 {
            return Err(format!(
                "topic {}: {}",
                name.as_str(),
                kafka_error(topic.error_code, None)
            ));
        }
        cluster.topics.insert(
            name.to_string(),
            topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect(),
        );
    }
    Ok(cluster)
}

/// ListOffsets for `partitions` at `timestamp` (`LATEST`, `EARLIEST` or milliseconds), each
/// asked of its leader. A timestamp after the last record gives offset -1, as in Kafka.
pub fn list_offsets(
    global: &Global,
    cluster: &Cluster,
    partitions: &[Tp],
    timestamp: i64,
) -> Result<BTreeMap<Tp, i64>, String> {
    let mut by_leader: BTreeMap<i32, Vec<&Tp>> = BTreeMap::new();
    for tp in partitions {
        let leader = cluster
            .topics
            .get(&tp.0)
            .and_then(|p| p.get(&tp.1))
            .copied()
            .ok_or_else(|| format!("unknown partition {}-{}", tp.0, tp.1))?;
        by_leader.entry(leader).or_default().push(tp);
    }
    let mut offsets = BTreeMap::new();
    for (leader, tps) in by_leader {
        let addr = cluster
            .brokers
            .get(&leader)
            .ok_or_else(|| format!("partition {}-{} has no leader", tps[0].0, tps[0].1))?;
        let mut client = Client::connect(addr, Duration::from_secs(global.timeout.max(1)))?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in tps {
            topics.entry(topic).or_default().push(*partition);
        }
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                let mut topic = ListOffsetsTopic::default();
                topic.name = TopicName(StrBytes::from_string(name.to_owned()));
                topic.partitions = partitions
                    .into_iter()
                    .map(|index| {
                        let mut partition = ListOffsetsPartition::default();
                        partition.partition_index = index;
                        partition.current_leader_epoch = -1;
                        partition.timestamp = timestamp;
                        partition
                    })
                    .collect();
                topic
            })
            .collect();
        let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 6, &request)?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(format!(
                        "listing offsets of {}-{}: {}",
                        topic.name.as_str(),
                        partition.partition_index,
                        kafka_error(partition.error_code, None)
                    ));
                }
                offsets.insert(
                    (topic.name.to_string(), partition.partition_index),
                    partition.offset,
                );
            }
        }
    }
    for tp in partitions {
        if !offsets.contains_key(tp) {
            return Err(format!("no offset listed for {}-{}", tp.0, tp.1));
        }
    }
    Ok(offsets)
}

/// Why a group request failed: a Kafka error code (0 for anything else) and a message.
#[derive(Debug)]
pub struct Failure {
    pub code: i16,
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { code: 0, message }
    }
}

impl Failure {
    pub fn kafka(code: i16, message: Option<&str>) -> Failure {
        Failure {
            code,
            message: kafka_error(code, message),
        }
    }
}

/// Runs `attempt` with a connection to `group`'s coordinator, again (with a fresh look-up)
/// while the coordinator is loading, unavailable or moved, until `--timeout` passes.
pub fn with_coordinator<T>(
    global: &Global,
    group: &str,
    mut attempt: impl FnMut(&mut Client) -> Result<T, Failure>,
) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(global.timeout.max(1));
    loop {
        let result = coordinator(global, group).and_then(|mut client| attempt(&mut client));
        match result {
            Ok(value) => return Ok(value),
            Err(failure)
                if matches!(
                    failure.code,
                    COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(failure) => return Err(failure.message),
        }
    }
}

/// A connection to `group`'s coordinator.
fn coordinator(global: &Global, group: &str) -> Result<Client, Failure> {
    let mut client = global.connect()?;
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_owned());
    request.key_type = 0;
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &request)?;
    if response.error_code != 0 {
        return Err(Failure::kafka(
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let addr = format!("{}:{}", response.host, response.port);
    if addr == client.addr() {
        return Ok(client);
    }
    Ok(Client::connect(
        &addr,
        Duration::from_secs(global.timeout.max(1)),
    )?)
}
