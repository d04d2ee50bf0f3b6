//! OffsetForLeaderEpoch (key 23, v2-v4; KIP-101/279/320): the end offset of a leader epoch in
//! a partition leader's log, from its leader-epoch cache. Followers ask it after a leader
//! change to find where their log diverged from the leader's, and truncate there; consumers
//! ask it (KIP-320) to detect that their position was truncated away by an unclean change.
//!
//! The answer is Kafka's: the largest epoch at or below the one asked, with the start offset
//! of the next epoch after it (or the log end when it is the latest), or UNDEFINED (-1, -1)
//! when the log holds nothing of that epoch or before it.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::partitions::{shard, Partition};
use crate::route::{ErrorCode, Need, Routed};

crate::api!(OffsetForLeaderEpoch, 2..=4, |call, request| handle(request)
    .await);

/// What one partition asks: the epoch to look up, and the leader epoch the asker believes
/// current (-1: unchecked).
#[derive(Debug, Clone, Copy)]
struct Ask {
    leader_epoch: i32,
    current_leader_epoch: i32,
}

pub async fn handle(request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = shard::current().topics();
    let mut response = OffsetForLeaderEpochResponse::default();
    let mut routed = Routed::new(Need::Leader);
    for topic in &request.topics {
        let mut result = OffsetForLeaderTopicResult::default();
        result.topic = topic.topic.clone();
        for partition in &topic.partitions {
            let mut answer = EpochEndOffset::default();
            answer.partition = partition.partition;
            answer.leader_epoch = -1;
            answer.end_offset = -1;
            result.partitions.push(answer);
            let ask = Ask {
                leader_epoch: partition.leader_epoch,
                current_leader_epoch: partition.current_leader_epoch,
            };
            routed.push(&topics, topic.topic.0.as_str(), partition.partition, ask);
        }
        response.topics.push(result);
    }
    let found = routed.scatter(look_up_all).await.gather().await;
    let answers = response.topics.iter_mut().flat_map(|t| &mut t.partitions);
    for (answer, found) in answers.zip(found) {
        match found.and_then(|found| found) {
            Ok((epoch, end_offset)) => {
                answer.leader_epoch = epoch;
                answer.end_offset = end_offset;
            }
            Err(code) => answer.error_code = code,
        }
    }
    response
}

async fn look_up_all(asks: Vec<(Partition, Ask)>) -> Vec<Result<(i32, i64), ErrorCode>> {
    asks.into_iter()
        .map(|(partition, ask)| {
            partition.check_leader_epoch(ask.current_leader_epoch)?;
            Ok(end_offset_for_epoch(&partition, ask.leader_epoch))
        })
        .collect()
}

/// The end offset of `epoch` in the partition's log. A log whose leader-epoch cache is
/// empty was written by a lone broker (epoch 0, no stamps): all of it is the current epoch's.
fn end_offset_for_epoch(partition: &Partition, epoch: i32) -> (i32, i64) {
    let log = partition.log();
    match log.latest_leader_epoch() {
        Some(_) => log.end_offset_for_epoch(epoch),
        None if (0..=partition.leader_epoch()).contains(&epoch) => {
            (partition.leader_epoch(), log.written_end())
        }
        None => (-1, -1),
    }
}
