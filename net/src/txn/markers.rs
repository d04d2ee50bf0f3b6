//! Writing a transaction's markers to its partitions: what WriteTxnMarkers does, and what the
//! coordinator does directly for the partitions of this broker. Each marker is appended on the
//! shard owning its partition; a marker in `__consumer_offsets` also decides the offsets the
//! transaction committed there (the group coordinator applies or drops them).

use runnel_engine::log::txn::marker::{EndTxnMarker, MarkerKind};

use crate::groups::{self, OFFSETS_TOPIC};
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
async fn write_on_shard(
    marker: MarkerWrite,
    partitions: Vec<(Partition, ())>,
) -> Vec<Result<(), ErrorCode>> {
    // Placed in order now (before the first await), written concurrently.
    let appends: Vec<_> = partitions
        .iter()
        .map(|(partition, _)| {
            partition.log().append_marker(
                marker.producer_id,
                marker.producer_epoch,
                marker.marker(),
            )
        })
        .collect();
    let mut results = Vec::with_capacity(appends.len());
    for ((partition, _), append) in partitions.iter().zip(appends) {
        let result = append
            .await
            .map(drop)
            .map_err(|e| route::errors::append_error(&e));
        if result.is_ok() && partition.tp.topic.as_ref() == OFFSETS_TOPIC {
            groups::coordinator::current().complete_txn(
                partition.tp.partition,
                marker.producer_id,
                marker.commit,
            );
        }
        results.push(result);
    }
    results
}
