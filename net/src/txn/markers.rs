//! Writing a transaction's markers to its partitions: what WriteTxnMarkers does, and what the
//! coordinator does directly for the partitions of this broker; the partitions other brokers
//! lead get their markers by a WriteTxnMarkers request to their leader (Kafka's
//! `TransactionMarkerChannelManager`), [`write_anywhere`]. Each marker is appended on the
//! shard owning its partition; a marker in `__consumer_offsets` also decides the offsets the
//! transaction committed there (the group coordinator applies or drops them).

use runnel_engine::log::txn::marker::{EndTxnMarker, MarkerKind};

use crate::groups::{self, OFFSETS_TOPIC};
use crate::kafka::error_code;
use crate::partitions::{shard, Partition, TopicPartition};
use crate::route::{self, ErrorCode, Need, Routed};

/// One transaction's markers: the same for every partition it wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerWrite {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl MarkerWrite {
    fn marker(self) -> EndTxnMarker {
        EndTxnMarker {
            kind: if self.commit {
                MarkerKind::Commit
            } else {
                MarkerKind::Abort
            },
            coordinator_epoch: self.coordinator_epoch,
        }
    }
}

/// How long a WriteTxnMarkers request to another broker may take before its partitions are
/// retried.
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes `marker` to every partition in `partitions`, wherever it is led: on this broker's
/// shards, or through a WriteTxnMarkers request to each other leader (all at once); each
/// partition's error code, in order. A leader that can't be reached gets its partitions
/// answered COORDINATOR_NOT_AVAILABLE, which the coordinator retries.
pub async fn write_anywhere(
    marker: MarkerWrite,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, ErrorCode)> {
    let topics = shard::current().topics();
    let mut local = Vec::new();
    let mut remote: std::collections::BTreeMap<i32, Vec<TopicPartition>> = Default::default();
    for tp in &partitions {
        match route::owner(&topics, &tp.topic, tp.partition) {
            Some((_, route::Owner::OtherBroker { leader })) if leader >= 0 => {
                remote.entry(leader).or_default().push(tp.clone())
            }
            Some((
                _,
                route::Owner::Follower {
                    leader: Some(leader),
                    ..
                },
            )) => remote.entry(leader).or_default().push(tp.clone()),
            _ => local.push(tp.clone()),
        }
    }
    let sending: Vec<_> = remote
        .into_iter()
        .map(|(leader, tps)| {
            runnel_engine::rt::spawn_local(async move {
                let codes = write_on_broker(leader, marker, &tps).await;
                tps.into_iter().zip(codes).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut codes: std::collections::BTreeMap<TopicPartition, ErrorCode> =
        write(marker, local).await.into_iter().collect();
    for sent in sending {
        codes.extend(sent.await);
    }
    partitions
        .into_iter()
        .map(|tp| {
            let code = codes
                .get(&tp)
                .copied()
                .unwrap_or(error_code::COORDINATOR_NOT_AVAILABLE);
            (tp, code)
        })
        .collect()
}

/// WriteTxnMarkers (v1) for `partitions` to broker `leader`: each partition's error code.
async fn write_on_broker(
    leader: i32,
    marker: MarkerWrite,
    partitions: &[TopicPartition],
) -> Vec<ErrorCode> {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let unreachable = vec![error_code::COORDINATOR_NOT_AVAILABLE; partitions.len()];
    let Some(address) = crate::controller::view::current().and_then(|view| {
        view.brokers
            .iter()
            .find(|b| b.id == leader)
            .map(|b| format!("{}:{}", b.host, b.port))
    }) else {
        return unreachable;
    };
    let mut written = WritableTxnMarker::default();
    written.producer_id = ProducerId(marker.producer_id);
    written.producer_epoch = marker.producer_epoch;
    written.transaction_result = marker.commit;
    written.coordinator_epoch = marker.coordinator_epoch;
    for tp in partitions {
        let name = TopicName(StrBytes::from_string(tp.topic.to_string()));
        match written.topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.partition_indexes.push(tp.partition),
            None => {
                let mut topic = WritableTxnMarkerTopic::default();
                topic.name = name;
                topic.partition_indexes.push(tp.partition);
                written.topics.push(topic);
            }
        }
    }
    let mut request = WriteTxnMarkersRequest::default();
    request.markers.push(written);
    let mut client = crate::replication::broker_client::BrokerClient::new(
        leader,
        address,
        "runnel-txn-markers".into(),
        1 << 20,
    );
    let answer: Result<WriteTxnMarkersResponse, _> = client
        .call(ApiKey::WriteTxnMarkers, 1, &request, REMOTE_TIMEOUT)
        .await;
    let Ok(answer) = answer else {
        return unreachable;
    };
    partitions
        .iter()
        .map(|tp| {
            answer
                .markers
                .iter()
                .filter(|m| m.producer_id.0 == marker.producer_id)
                .flat_map(|m| &m.topics)
                .filter(|t| t.name.0.as_str() == &*tp.topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == tp.partition)
                .map_or(error_code::COORDINATOR_NOT_AVAILABLE, |p| p.error_code)
        })
        .collect()
}

/// Appends `marker` to every partition in `partitions` this broker leads (on their owning
/// shards, all at once); each partition's error code, in order.
pub async fn write(
    marker: MarkerWrite,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, ErrorCode)> {
    let topics = shard::current().topics();
    let mut routed = Routed::new(Need::Leader);
    for tp in &partitions {
        routed.push(&topics, &tp.topic, tp.partition, ());
    }
    let results = routed
        .scatter(move |on_shard: Vec<(Partition, ())>| write_on_shard(marker, on_shard))
        .await
        .gather()
        .await;
    partitions
        .into_iter()
        .zip(results)
        .map(|(tp, result)| (tp, result.and_then(|r| r).err().unwrap_or(0)))
        .collect()
}

/// On the owning shard: appends the marker to each partition, in order.
///
/// A marker for an offsets partition waits until the group coordinator has loaded that
/// partition, so the marker decides offsets the coordinator holds: placed while a load reads
/// the partition, it would land past what the load reads and find no group to apply to. A
/// shard still starting (no coordinator yet) answers COORDINATOR_LOAD_IN_PROGRESS, and the
/// transaction coordinator retries.
/// How long a marker waits for the in-sync replicas before the transaction coordinator is
/// told to retry it.
const MARKER_REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn write_on_shard(
    marker: MarkerWrite,
    partitions: Vec<(Partition, ())>,
) -> Vec<Result<(), ErrorCode>> {
    let mut ready = Vec::with_capacity(partitions.len());
    for (partition, _) in &partitions {
        let offsets =
            (partition.tp.topic.as_ref() == OFFSETS_TOPIC).then_some(partition.tp.partition);
        let loaded = match offsets {
            None => Ok(None),
            Some(p) => match groups::coordinator::try_current() {
                None => Err(error_code::COORDINATOR_LOAD_IN_PROGRESS),
                Some(groups) => groups.ensure_loaded(p).await.map(|()| Some((groups, p))),
            },
        };
        ready.push(loaded);
    }
    // Placed in order now (before the next await), written concurrently.
    let appends: Vec<_> = partitions
        .iter()
        .zip(ready)
        .map(|((partition, _), loaded)| {
            let loaded = loaded?;
            let append = partition.log().append_marker(
                marker.producer_id,
                marker.producer_epoch,
                marker.marker(),
            );
            Ok((append, loaded, partition.clone()))
        })
        .collect();
    let mut results = Vec::with_capacity(appends.len());
    for append in appends {
        let result = match append {
            Ok((append, offsets, partition)) => {
                let written = match append.await {
                    // A marker counts once every in-sync replica has it (Kafka writes markers
                    // with acks=all).
                    Ok(info) => {
                        partition
                            .wait_replicated(info.last_offset + 1, MARKER_REPLICATION_TIMEOUT)
                            .await
                    }
                    Err(e) => Err(route::errors::append_error(&e)),
                };
                if let (Ok(()), Some((groups, p))) = (&written, offsets) {
                    groups.complete_txn(p, marker.producer_id, marker.commit);
                }
                written
            }
            Err(code) => Err(code),
        };
        results.push(result);
    }
    results
}
