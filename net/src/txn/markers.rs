//! Writing a transaction's markers to its partitions: what WriteTxnMarkers does, and what the
//! coordinator does directly for the partitions of this broker. Each marker is appended on the
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

/// Appends `marker` to every partition in `partitions` (on their owning shards, all at once);
/// each partition's error code, in order.
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
