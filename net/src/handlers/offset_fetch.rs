//! OffsetFetch (key 9): a group's committed offsets (-1 where none), for the partitions asked
//! or, with a null topic list (v2+), every partition the group has committed. v8+ asks for
//! several groups at once, each routed to its own coordinator. v7+ may require stable offsets:
//! a partition with an offset an open transaction committed gets UNSTABLE_OFFSET_COMMIT
//! (retriable) until the transaction ends.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::groups::coordinator::FetchedOffset;
use crate::groups::on_coordinator;
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;

type Asked = Option<Vec<(String, Vec<i32>)>>;

crate::api!(OffsetFetch, 1..=9, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for group in request.groups {
            let asked: Asked = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let (error, offsets) =
                fetch(broker, &group.group_id, asked, request.require_stable).await;
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = group.group_id;
            out.error_code = error;
            out.topics = group_topics(offsets);
            response.groups.push(out);
        }
        return response;
    }
    let asked: Asked = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fallback = asked.clone();
    // v7+: a read_committed consumer asks not to be given offsets a transaction may change.
    let require_stable = version >= 7 && request.require_stable;
    let (error, mut offsets) = fetch(broker, &request.group_id, asked, require_stable).await;
    if error != error_code::NONE {
        if version >= 2 {
            response.error_code = error;
        } else {
            // v1 has no request-level error: every partition carries it.
            offsets = failed(fallback, error);
        }
    }
    let topics = by_topic(offsets)
        .into_iter()
        .map(|(name, offsets)| {
            let mut topic = OffsetFetchResponseTopic::default();
            topic.name = name;
            topic.partitions = offsets
                .into_iter()
                .map(|o| {
                    let mut partition = OffsetFetchResponsePartition::default();
                    partition.partition_index = o.partition;
                    partition.committed_offset = o.offset;
                    partition.committed_leader_epoch = o.leader_epoch;
                    partition.metadata = Some(StrBytes::from_string(o.metadata));
                    partition.error_code = o.error;
                    partition
                })
                .collect();
            topic
        })
        .collect();
    response.topics = topics;
    response
}

async fn fetch(
    broker: &BrokerInfo,
    group: &GroupId,
    asked: Asked,
    require_stable: bool,
) -> (i16, Vec<FetchedOffset>) {
    let id = group.to_string();
    let result = on_coordinator(
        broker.groups.offsets_topic_num_partitions,
        &id.clone(),
        move |coordinator, _| async move { coordinator.fetch_offsets(&id, asked, require_stable) },
    )
    .await;
    match result {
        Ok(offsets) => (error_code::NONE, offsets),
        Err(code) => (code, Vec::new()),
    }
}

fn failed(asked: Asked, error: i16) -> Vec<FetchedOffset> {
    asked
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(topic, partitions)| {
            partitions.into_iter().map(move |partition| FetchedOffset {
                topic: topic.clone(),
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error,
            })
        })
        .collect()
}

/// Consecutive offsets of the same topic, grouped (the coordinator lists them topic by topic).
fn by_topic(offsets: Vec<FetchedOffset>) -> Vec<(TopicName, Vec<FetchedOffset>)> {
    let mut topics: Vec<(TopicName, Vec<FetchedOffset>)> = Vec::new();
    for o in offsets {
        match topics.last_mut() {
            Some((name, list)) if name.0.as_str() == o.topic => list.push(o),
            _ => topics.push((TopicName(StrBytes::from_string(o.topic.clone())), vec![o])),
        }
    }
    topics
}

/// The v8+ shape of the same answer.
fn group_topics(offsets: Vec<FetchedOffset>) -> Vec<OffsetFetchResponseTopics> {
    by_topic(offsets)
        .into_iter()
        .map(|(name, offsets)| {
            let mut topic = OffsetFetchResponseTopics::default();
            topic.name = name;
            topic.partitions = offsets
                .into_iter()
                .map(|o| {
                    let mut partition = OffsetFetchResponsePartitions::default();
                    partition.partition_index = o.partition;
                    partition.committed_offset = o.offset;
                    partition.committed_leader_epoch = o.leader_epoch;
                    partition.metadata = Some(StrBytes::from_string(o.metadata));
                    partition.error_code = o.error;
                    partition
                })
                .collect();
            topic
        })
        .collect()
}
