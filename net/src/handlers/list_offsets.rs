//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3: the record with the
//! largest timestamp, KIP-734) and by-timestamp offsets of partitions, asked of their owning
//! shards. Under read_committed (v2+) nothing at or past the last stable offset is reported:
//! latest is the last stable offset, and a lookup that lands beyond it finds nothing. A
//! follower asking (a replica id, after OFFSET_OUT_OF_RANGE) learns the leader's log end as
//! latest, not the high watermark, as in Kafka.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::kafka::error_code;
use crate::partitions::{shard, Partition};
use crate::route::{self, ErrorCode, Need, Routed};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

crate::api!(ListOffsets, 1..=7, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = shard::current().topics();
    let mut response = ListOffsetsResponse::default();
    let read_committed = version >= 2 && request.isolation_level == 1;
    let mut routed = Routed::new(Need::Leader);
    for topic in &request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in &topic.partitions {
            let mut result = ListOffsetsPartitionResponse::default();
            result.partition_index = partition.partition_index;
            result.timestamp = -1;
            result.offset = -1;
            result.leader_epoch = -1;
            topic_response.partitions.push(result);
            let name = topic.name.0.as_str();
            let lookup = Lookup {
                timestamp: partition.timestamp,
                read_committed,
                current_leader_epoch: if version >= 4 {
                    partition.current_leader_epoch
                } else {
                    -1
                },
                from_follower: request.replica_id.0 >= 0,
            };
            routed.push(&topics, name, partition.partition_index, lookup);
        }
        response.topics.push(topic_response);
    }
    let found = routed.scatter(look_up_all).await.gather().await;
    let answers = response.topics.iter_mut().flat_map(|t| &mut t.partitions);
    for (answer, found) in answers.zip(found) {
        match found.and_then(|found| found) {
            Ok((found, leader_epoch)) => {
                if let Some(Found { timestamp, offset }) = found {
                    answer.timestamp = timestamp;
                    answer.offset = offset;
                }
                if version >= 4 {
                    answer.leader_epoch = leader_epoch;
                }
            }
            Err(code) => answer.error_code = code,
        }
    }
    response
}

/// An offset found, with its record's timestamp (-1 where the lookup has none).
#[derive(Debug, Clone, Copy)]
struct Found {
    timestamp: i64,
    offset: i64,
}

/// One partition's question.
#[derive(Debug, Clone, Copy)]
struct Lookup {
    timestamp: i64,
    read_committed: bool,
    current_leader_epoch: i32,
    from_follower: bool,
}

/// Each partition's lookup, on the owning shard, with the partition's leader epoch.
async fn look_up_all(
    lookups: Vec<(Partition, Lookup)>,
) -> Vec<Result<(Option<Found>, i32), ErrorCode>> {
    let mut results = Vec::with_capacity(lookups.len());
    for (partition, lookup) in lookups {
        let found = look_up_one(&partition, lookup).await;
        results.push(found.map(|found| (found, partition.leader_epoch())));
    }
    results
}

/// One partition's lookup: `Ok(None)` when no record matches.
async fn look_up_one(partition: &Partition, lookup: Lookup) -> Result<Option<Found>, ErrorCode> {
    partition.check_leader_epoch(lookup.current_leader_epoch)?;
    if lookup.from_follower && lookup.timestamp == LATEST {
        return Ok(Some(Found {
            timestamp: -1,
            offset: partition.log().written_end(),
        }));
    }
    let found = look_up(partition, lookup.timestamp).await;
    if !lookup.read_committed {
        return found;
    }
    // Kafka's `fetchOffsetForTimestamp` under READ_COMMITTED.
    let stable = partition.log().last_stable_offset();
    found.map(|found| match (lookup.timestamp, found) {
        (LATEST, _) => Some(Found {
            timestamp: -1,
            offset: stable,
        }),
        (_, Some(f)) if f.offset >= stable && lookup.timestamp != EARLIEST => None,
        (_, found) => found,
    })
}

async fn look_up(partition: &Partition, timestamp: i64) -> Result<Option<Found>, ErrorCode> {
    let log = partition.log();
    let found = |timestamp, offset| Some(Found { timestamp, offset });
    match timestamp {
        LATEST => Ok(found(-1, partition.high_watermark())),
        EARLIEST => Ok(found(-1, partition.log_start_offset())),
        // The record holding the largest timestamp, not its batch's last offset (Kafka 3.8+).
        MAX_TIMESTAMP => log
            .max_timestamp_record()
            .await
            .map(|m| m.and_then(|m| found(m.timestamp, m.offset)))
            .map_err(|e| route::errors::read_error(&e)),
        timestamp if timestamp >= 0 => log
            .offset_for_timestamp(timestamp)
            .await
            .map(|m| m.and_then(|m| found(m.timestamp, m.offset)))
            .map_err(|e| route::errors::read_error(&e)),
        _ => Err(error_code::INVALID_REQUEST),
    }
}
