//! Metadata (key 3): the brokers, and the topics asked about (all of them when none are
//! named): on a lone broker each partition led by it; in a cluster as the controller's
//! metadata places them. Topics asked about by name that don't exist are
//! created with the defaults when `auto_create_topics` is on and the client allows it (v4+),
//! as Kafka's `auto.create.topics.enable` does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::controller::view::{self, ClusterView, Lost};
use crate::kafka::authorized_operations::{authorized, Resource};
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;
use crate::partitions::authority;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::shard::{self, CreateError};
use crate::partitions::topics::{invalid_topic_name, Here, PartitionPlacement, TopicMeta};
use runnel_engine::rt;

crate::api!(Metadata, 0..=12, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let state = shard::current();
    let mut response = MetadataResponse::default();
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(view::cluster_id(&broker.cluster_id)));
    }
    // v8-v10 only: Kafka 3.x moved the cluster's operations to DescribeCluster (KIP-700), and
    // the request field is absent (false) elsewhere.
    response.cluster_authorized_operations = authorized(
        Resource::Cluster,
        (8..=10).contains(&version) && request.include_cluster_authorized_operations,
    );
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;

    // v0 asks for every topic with an empty list; later versions with a null one.
    let wanted = match request.topics {
        Some(list) if !(version == 0 && list.is_empty()) => Some(list),
        _ => None,
    };
    let allow_create =
        broker.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut create_errors = BTreeMap::new();
    if let (Some(list), true) = (&wanted, allow_create) {
        let topics = state.topics();
        for name in list.iter().filter_map(|t| t.name.as_ref()) {
            let name = name.0.to_string();
            if topics.get(&name).is_some() || invalid_topic_name(&name).is_some() {
                continue;
            }
            // Internal topics are made the way their coordinators need them, or not at all.
            if name == crate::groups::OFFSETS_TOPIC {
                if let Err(code) =
                    crate::groups::ensure_offsets_topic(broker.groups.offsets_topic_num_partitions)
                        .await
                {
                    create_errors.insert(name, code);
                }
                continue;
            }
            if name == crate::txn::state_topic::STATE_TOPIC {
                let txn = &broker.transactions;
                let ensured = crate::txn::state_topic::ensure_state_topic(
                    txn.state_log_num_partitions,
                    txn.state_log_segment_bytes,
                )
                .await;
                if let Err(code) = ensured {
                    create_errors.insert(name, code);
                }
                continue;
            }
            let create = {
                let (name, partitions) = (name.clone(), state.defaults().num_partitions);
                move || shard::create_topic(name, partitions, BTreeMap::new())
            };
            match rt::run_on(0, create).await {
                Ok(Ok(_)) | Ok(Err(CreateError::Exists(_))) => {}
                // No answer from the cluster's controller in time: the client asks again.
                Ok(Err(CreateError::Refused { .. })) => {
                    create_errors.insert(name, error_code::LEADER_NOT_AVAILABLE);
                }
                Ok(Err(e)) if authority::in_cluster() => {
                    tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
                    create_errors.insert(name, super::topic_change_error(e).0);
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
                    create_errors.insert(name, error_code::KAFKA_STORAGE_ERROR);
                }
                Err(_) => {
                    create_errors.insert(name, error_code::LEADER_NOT_AVAILABLE);
                }
            }
        }
    }
    // One look at which brokers are gone (the wait's last) serves the whole answer, so the
    // brokers listed and the leaders named agree.
    let lost = wait_for_lost_leaders_replaced(wanted.as_deref()).await;
    let unreachable: Vec<i32> = lost.iter().map(|l| l.broker).collect();
    (response.brokers, response.controller_id) = brokers(broker, &just_lost(&lost));
    let topics = state.topics();
    response.topics = match wanted {
        None => topics
            .by_name
            .values()
            .map(|meta| describe(broker, meta, version, topic_operations, &unreachable))
            .collect(),
        Some(list) => list
            .iter()
            .map(|wanted| match &wanted.name {
                Some(name) => match topics.get(name.0.as_str()) {
                    Some(meta) => describe(broker, meta, version, topic_operations, &unreachable),
                    None => {
                        let mut topic = MetadataResponseTopic::default();
                        topic.name = Some(name.clone());
                        // Kafka reports them for every topic named (it is the name that is
                        // authorized), existing or not; not for unknown topic ids.
                        topic.topic_authorized_operations =
                            authorized(Resource::Topic, topic_operations);
                        topic.error_code = if invalid_topic_name(name.0.as_str()).is_some() {
                            error_code::INVALID_TOPIC_EXCEPTION
                        } else {
                            create_errors
                                .get(name.0.as_str())
                                .copied()
                                .unwrap_or(error_code::UNKNOWN_TOPIC_OR_PARTITION)
                        };
                        topic
                    }
                },
                None => match topics.by_id(wanted.topic_id) {
                    Some(meta) => describe(broker, meta, version, topic_operations, &unreachable),
                    None => {
                        let mut topic = MetadataResponseTopic::default();
                        topic.topic_id = wanted.topic_id;
                        topic.error_code = error_code::UNKNOWN_TOPIC_ID;
                        topic
                    }
                },
            })
            .collect(),
    };
    response
}

/// How long an answer waits for the controller to replace leaders this node has just lost.
const REPLACEMENT_WAIT: Duration = Duration::from_millis(500);
/// Leaders lost longer ago than this are not waited for: the controller has had its chance
/// (the link may be cut while the broker lives on, and then every answer would wait in vain).
const JUST_LOST: Duration = Duration::from_secs(1);
const REPLACEMENT_POLL: Duration = Duration::from_millis(2);

/// Waits, up to [`REPLACEMENT_WAIT`], until no partition the answer describes (`wanted`, or
/// every topic) is led by a broker whose connections to this node closed within
/// [`JUST_LOST`]: until the controller has elected new leaders (or none, when no other
/// replica is in sync). Why: the clients that ask at once are the ones that just lost their
/// connection to the dead leader, and librdkafka, told "no leader" for a partition it had
/// nothing in flight to, asks again only at its once-a-second scan; told the new leader a few
/// milliseconds later, it moves to it at once. Returns the brokers lost, as last looked at.
async fn wait_for_lost_leaders_replaced(wanted: Option<&[MetadataRequestTopic]>) -> Vec<Lost> {
    let deadline = Instant::now() + REPLACEMENT_WAIT;
    loop {
        let lost = view::lost_now();
        let just_lost = just_lost(&lost);
        if just_lost.is_empty() || Instant::now() >= deadline {
            return lost;
        }
        let topics = shard::current().topics();
        let led_by_lost = |meta: &Arc<TopicMeta>| {
            (0..meta.shards.len() as i32)
                .filter_map(|index| meta.placement(index))
                .any(|placement| just_lost.contains(&placement.leader))
        };
        let waiting = match wanted {
            None => topics.by_name.values().any(led_by_lost),
            Some(list) => list.iter().any(|wanted| {
                let meta = match &wanted.name {
                    Some(name) => topics.get(name.0.as_str()),
                    None => topics.by_id(wanted.topic_id),
                };
                meta.is_some_and(led_by_lost)
            }),
        };
        if !waiting {
            return lost;
        }
        rt::sleep(REPLACEMENT_POLL).await;
    }
}

/// The brokers of `lost` lost within [`JUST_LOST`].
fn just_lost(lost: &[Lost]) -> Vec<i32> {
    lost.iter()
        .filter(|l| l.since.elapsed() < JUST_LOST)
        .map(|l| l.broker)
        .collect()
}

/// The brokers clients may use (unfenced ones), and the active controller (-1: none elected).
/// A broker lost within [`JUST_LOST`] stays listed even once fenced (no partition names it as
/// leader any more): librdkafka decommissions a broker that leaves the list, and doing so
/// while it is still handling that broker's lost connection undoes the move to the new
/// leader this same answer names, parking the partition until its once-a-second scan.
/// Kafka's own brokers leave a dead broker listed for its whole session timeout.
fn brokers(broker: &BrokerInfo, just_lost: &[i32]) -> (Vec<MetadataResponseBroker>, BrokerId) {
    let Some(cluster) = view::current() else {
        let mut me = MetadataResponseBroker::default();
        me.node_id = BrokerId(broker.node_id);
        me.host = StrBytes::from_string(broker.advertised_host.clone());
        me.port = i32::from(broker.advertised_port);
        return (vec![me], BrokerId(broker.node_id));
    };
    let brokers = cluster
        .brokers
        .iter()
        .filter(|b| !b.fenced || just_lost.contains(&b.id))
        .map(|b| {
            let mut entry = MetadataResponseBroker::default();
            entry.node_id = BrokerId(b.id);
            entry.host = StrBytes::from_string(b.host.clone());
            entry.port = b.port;
            entry.rack = b.rack.clone().map(StrBytes::from_string);
            entry
        })
        .collect();
    (brokers, BrokerId(cluster.controller.unwrap_or(-1)))
}

/// A topic as Metadata describes it: a lone broker's topic has every partition led by this
/// broker, its only replica; a topic from the controller has each partition as the metadata
/// places it. With its authorized operations when `operations` (v8+, asked for).
fn describe(
    broker: &BrokerInfo,
    meta: &TopicMeta,
    version: i16,
    operations: bool,
    unreachable: &[i32],
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.topic_authorized_operations = authorized(Resource::Topic, operations);
    topic.name = Some(TopicName(StrBytes::from_string(meta.name.to_string())));
    if version >= 10 {
        topic.topic_id = meta.uuid();
    }
    topic.is_internal = is_internal(&meta.name);
    let me = BrokerId(broker.node_id);
    let offline: Vec<i32> = shard::current()
        .offline
        .of_topic(&meta.name)
        .into_iter()
        .map(|(partition, _)| partition)
        .collect();
    let cluster = view::current();
    topic.partitions = (0..meta.shards.len() as i32)
        .map(|index| {
            let offline_here = offline.contains(&index);
            match meta.placement(index) {
                None => alone(index, me, offline_here),
                Some(placement) => placed(
                    index,
                    placement,
                    me,
                    offline_here,
                    cluster.as_deref(),
                    unreachable,
                ),
            }
        })
        .collect();
    topic
}

/// Partition `index` of a lone broker's topic: led by this broker, its only replica.
fn alone(index: i32, me: BrokerId, offline_here: bool) -> MetadataResponsePartition {
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = index;
    partition.leader_id = me;
    partition.leader_epoch = 0;
    partition.replica_nodes = vec![me];
    partition.isr_nodes = vec![me];
    if offline_here {
        partition.error_code = error_code::KAFKA_STORAGE_ERROR;
        partition.offline_replicas = vec![me];
    }
    partition
}

/// Partition `index` as the controller's metadata places it. Replicas on brokers that are
/// fenced, unknown or `unreachable` are offline, as is this broker's if its log failed to open.
/// A leader this node cannot reach is not named: its process most likely died and the
/// controller is about to elect another; a client told "no leader" keeps asking until it
/// has (see [`view::Unreachable`]).
fn placed(
    index: i32,
    placement: &PartitionPlacement,
    me: BrokerId,
    offline_here: bool,
    cluster: Option<&ClusterView>,
    unreachable: &[i32],
) -> MetadataResponsePartition {
    let ids = |list: &[i32]| list.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = index;
    let down = |replica: i32| {
        cluster.is_some_and(|view| {
            view.brokers
                .iter()
                .find(|b| b.id == replica)
                .is_none_or(|b| b.fenced)
        }) || unreachable.contains(&replica)
    };
    let leader = if placement.leader >= 0 && down(placement.leader) {
        -1
    } else {
        placement.leader
    };
    partition.leader_id = BrokerId(leader);
    partition.leader_epoch = placement.leader_epoch;
    partition.replica_nodes = ids(&placement.replicas);
    partition.isr_nodes = ids(&placement.isr);
    let hosted_here = placement.here != Here::Absent;
    partition.offline_replicas = placement
        .replicas
        .iter()
        .copied()
        .map(BrokerId)
        .filter(|&replica| down(replica.0) || (replica == me && hosted_here && offline_here))
        .collect();
    partition.error_code = if leader < 0 {
        error_code::LEADER_NOT_AVAILABLE
    } else if placement.here == Here::Leader && offline_here {
        error_code::KAFKA_STORAGE_ERROR
    } else {
        error_code::NONE
    };
    partition
}
