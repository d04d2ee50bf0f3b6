//! Raw Kafka requests the integration tests make, encoded with the kafka-protocol crate
//! (independent of the broker's own code) and sent with [`KafkaConn`].

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::batch;
use runnel_engine::log::builder::{BatchBuilder, Record};

use crate::kafka::KafkaConn;

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A CreateTopics request for one topic with the broker's default replication.
pub fn create_request(topic: &str, partitions: i32) -> CreateTopicsRequest {
    let mut creatable = CreatableTopic::default();
    creatable.name = name(topic);
    creatable.num_partitions = partitions;
    creatable.replication_factor = -1;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    request.timeout_ms = 10_000;
    request
}

/// Creates `topic` (CreateTopics v7); returns its error code and message.
pub fn create(
    conn: &mut KafkaConn,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let mut request = create_request(topic, partitions);
    request.topics[0].configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    request.validate_only = validate_only;
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &request).unwrap();
    let result = &response.topics[0];
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()),
    )
}

pub fn records(tag: &str, count: usize, timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for i in 0..count {
        builder.push(&Record {
            key: Some(format!("{tag}-key-{i}").into_bytes()),
            value: Some(format!("{tag}-value-{i}").into_bytes()),
            headers: vec![("h".into(), Some(tag.as_bytes().to_vec()))],
            timestamp: timestamp + i as i64,
        });
    }
    builder.build()
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, batch: Vec<u8>) -> ProduceRequest {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(Bytes::from(batch));
    let mut topic_data = TopicProduceData::default();
    topic_data.name = name(topic);
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 10_000;
    request.topic_data = vec![topic_data];
    request
}

/// Produces; returns (error code, base offset).
pub fn produce(
    conn: &mut KafkaConn,
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Vec<u8>,
) -> (i16, i64) {
    let response: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &produce_request(topic, partition, acks, batch),
        )
        .unwrap();
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut request = FetchRequest::default();
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = 50 << 20;
    request.session_epoch = -1;
    request.topics = vec![t];
    request
}

/// Fetches; returns (error code, high watermark, whole batches).
pub fn fetch(
    conn: &mut KafkaConn,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> (i16, i64, Vec<Vec<u8>>) {
    let response: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            12,
            &fetch_request(topic, partition, offset, max_wait_ms),
        )
        .unwrap();
    assert_eq!(response.error_code, 0);
    let p = &response.responses[0].partitions[0];
    let bytes = p.records.clone().unwrap_or_default();
    let mut batches = Vec::new();
    let mut at = 0;
    while let Some(len) = batch::declared_total_len(&bytes[at..]) {
        if at + len > bytes.len() {
            break;
        }
        batches.push(bytes[at..at + len].to_vec());
        at += len;
    }
    (p.error_code, p.high_watermark, batches)
}

/// Deletes `topic` (DeleteTopics v6); returns its error code.
pub fn delete_topic(conn: &mut KafkaConn, topic: &str) -> i16 {
    let mut state = DeleteTopicState::default();
    state.name = Some(name(topic));
    let mut request = DeleteTopicsRequest::default();
    request.topics = vec![state];
    request.timeout_ms = 10_000;
    let response: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 6, &request).unwrap();
    response.responses[0].error_code
}

/// ListOffsets (v7) of one partition at `timestamp` (-1 latest, -2 earliest); returns (error
/// code, offset, timestamp).
pub fn list_offset(
    conn: &mut KafkaConn,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = timestamp;
    let mut t = ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    request.topics = vec![t];
    let response: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// A batch of one record whose value is `value_len` bytes (for tests that move volume).
pub fn one_record_batch(value_len: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    builder.push(&Record {
        key: None,
        value: Some(vec![5u8; value_len]),
        headers: Vec::new(),
        timestamp: 1,
    });
    builder.build()
}

/// Each partition's answer: (topic, partition, error code).
pub type PartitionCode = (String, i32, i16);

/// AlterPartitionReassignments (v1, replication factor changes allowed) for `(topic,
/// partition, target)` entries, a `None` target cancelling: each partition's answer, in
/// order, or the top-level error.
pub fn reassign(
    conn: &mut KafkaConn,
    moves: &[(&str, i32, Option<&[i32]>)],
) -> std::io::Result<Result<Vec<PartitionCode>, i16>> {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    };
    let mut request = AlterPartitionReassignmentsRequest::default();
    request.timeout_ms = 10_000;
    request.allow_replication_factor_change = true;
    for &(topic, partition, target) in moves {
        let mut entry = ReassignablePartition::default();
        entry.partition_index = partition;
        entry.replicas = target.map(|t| t.iter().map(|&b| BrokerId(b)).collect());
        match request
            .topics
            .last_mut()
            .filter(|t| t.name.0.as_str() == topic)
        {
            Some(last) => last.partitions.push(entry),
            None => {
                let mut t = ReassignableTopic::default();
                t.name = name(topic);
                t.partitions.push(entry);
                request.topics.push(t);
            }
        }
    }
    let response: AlterPartitionReassignmentsResponse =
        conn.call(ApiKey::AlterPartitionReassignments, 1, &request)?;
    if response.error_code != 0 {
        return Ok(Err(response.error_code));
    }
    Ok(Ok(response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()))
}

/// One partition's reassignment under way: (topic, partition, replicas, adding, removing).
pub type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// ListPartitionReassignments for every partition (`None`) or those named: the moves under way,
/// or the top-level error.
pub fn reassignments(
    conn: &mut KafkaConn,
    wanted: Option<&[(&str, &[i32])]>,
) -> std::io::Result<Result<Vec<Ongoing>, i16>> {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use kafka_protocol::messages::{
        ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    };
    let mut request = ListPartitionReassignmentsRequest::default();
    request.timeout_ms = 10_000;
    request.topics = wanted.map(|wanted| {
        wanted
            .iter()
            .map(|&(topic, partitions)| {
                let mut t = ListPartitionReassignmentsTopics::default();
                t.name = name(topic);
                t.partition_indexes = partitions.to_vec();
                t
            })
            .collect()
    });
    let response: ListPartitionReassignmentsResponse =
        conn.call(ApiKey::ListPartitionReassignments, 0, &request)?;
    if response.error_code != 0 {
        return Ok(Err(response.error_code));
    }
    let ids = |ids: &[kafka_protocol::messages::BrokerId]| ids.iter().map(|b| b.0).collect();
    Ok(Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()))
}
