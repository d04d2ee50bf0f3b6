//! DescribeProducers (key 61): the idempotent producers each partition remembers (what
//! `kafka-transactions.sh describe-producers` and admin clients show), asked of the owning
//! shards.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use crate::partitions::{shard, Partition};
use crate::route::{Need, Routed};

crate::api!(DescribeProducers, 0..=0, |call, request| handle(request)
    .await);

pub async fn handle(request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = shard::current().topics();
    let mut response = DescribeProducersResponse::default();
    let mut routed = Routed::new(Need::Leader);
    for topic in &request.topics {
        let mut topic_response = TopicResponse::default();
        topic_response.name = topic.name.clone();
        for &index in &topic.partition_indexes {
            let mut partition = PartitionResponse::default();
            partition.partition_index = index;
            topic_response.partitions.push(partition);
            routed.push(&topics, topic.name.0.as_str(), index, ());
        }
        response.topics.push(topic_response);
    }
    let found = routed.scatter(describe_all).await.gather().await;
    let answers = response.topics.iter_mut().flat_map(|t| &mut t.partitions);
    for (answer, found) in answers.zip(found) {
        match found {
            Ok(producers) => answer.active_producers = producers,
            Err(code) => answer.error_code = code,
        }
    }
    response
}

/// Each partition's producers, on the owning shard.
async fn describe_all(partitions: Vec<(Partition, ())>) -> Vec<Vec<ProducerState>> {
    partitions
        .iter()
        .map(|(partition, ())| describe(partition))
        .collect()
}

fn describe(partition: &Partition) -> Vec<ProducerState> {
    partition
        .log()
        .producers()
        .into_iter()
        .map(|(id, entry)| {
            let last = entry.batches.back();
            let mut state = ProducerState::default();
            state.producer_id = ProducerId(id);
            state.producer_epoch = i32::from(entry.epoch);
            state.last_sequence = last.map_or(-1, |b| b.last_seq);
            state.last_timestamp = last.map_or(-1, |b| b.max_timestamp);
            state.coordinator_epoch = entry.coordinator_epoch;
            // Where the producer's open transaction starts: what holds the partition's last
            // stable offset back (kafka-transactions.sh find-hanging reads this).
            state.current_txn_start_offset = entry.current_txn_first_offset.unwrap_or(-1);
            state
        })
        .collect()
}
