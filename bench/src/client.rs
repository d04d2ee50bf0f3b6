//! A small blocking Kafka client on the kafka-protocol codec: enough for load loops and the
//! rebalance benchmark, with nothing between the caller and the socket. Also the connection
//! helpers the load generator's tasks share ([`connect`] on Runnel's runtime, [`create_topics`]),
//! kept here rather than in `runner` so that the modules `runner` uses need not import it back.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A blocking connection that pipelines requests.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    next_id: i32,
}

impl Conn {
    /// Connects to `addr` (`host:port`); an address given by the user can be wrong, so this
    /// is an error, not a panic.
    pub fn connect(addr: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Conn { stream, next_id: 0 })
    }

    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, request: &R) {
        let mut frame = encode_frame(key, version, request);
        self.send_frame(&mut frame);
    }

    /// Sends a frame made by [`encode_frame`] under the next correlation id. Load loops encode
    /// their request once and send it over and over, so the client's CPU goes to the socket.
    pub fn send_frame(&mut self, frame: &mut [u8]) {
        self.next_id += 1;
        // Size (4 bytes), API key (2), version (2), then the correlation id.
        frame[8..12].copy_from_slice(&self.next_id.to_be_bytes());
        self.stream.write_all(frame).unwrap();
    }

    pub fn receive<T: Decodable>(&mut self, key: ApiKey, version: i16) -> T {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        T::decode(&mut body, version).unwrap()
    }
}

/// A whole request frame (size prefix included), correlation id 0.
pub fn encode_frame<R: Encodable>(key: ApiKey, version: i16, request: &R) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.client_id = Some(StrBytes::from_static_str("runnel-bench"));
    let header_version = key.request_header_version(version);
    let size =
        header.compute_size(header_version).unwrap() + request.compute_size(version).unwrap();
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.extend_from_slice(&(size as i32).to_be_bytes());
    header.encode(&mut frame, header_version).unwrap();
    request.encode(&mut frame, version).unwrap();
    frame.to_vec()
}

/// Milliseconds since the Unix epoch: what records' CreateTime must be. (The broker's time
/// retention deletes segments whose records are older than `retention.ms`, 7 days by default,
/// so records stamped near 1970 vanish as soon as their segment rolls.)
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The Produce version the load generators speak.
pub const PRODUCE_VERSION: i16 = 9;

/// A Produce request frame for `topic` carrying each (partition, record batch).
pub fn produce_frame(topic: &str, batches: Vec<(usize, Bytes)>, acks: i16) -> Vec<u8> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
    for (partition, records) in batches {
        let mut data = PartitionProduceData::default();
        data.index = partition as i32;
        data.records = Some(records);
        topic_data.partition_data.push(data);
    }
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic_data];
    encode_frame(ApiKey::Produce, PRODUCE_VERSION, &request)
}

/// A connection to `bootstrap` on Runnel's runtime (for tasks running on a shard), Nagle off
/// as a Kafka client's.
pub async fn connect(bootstrap: &str) -> Result<runnel_engine::rt::TcpStream, String> {
    let stream = runnel_engine::rt::TcpStream::connect(bootstrap)
        .await
        .map_err(|e| format!("connecting to {bootstrap}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Creates `topics`, each with `partitions` partitions of `replicas` replicas and `configs`;
/// any topic's error fails the whole call. With more than one replica the bootstrap broker
/// (one of a cluster) leads every partition, the others following in turn: the load
/// generator sends everything to the bootstrap broker.
pub fn create_topics(
    bootstrap: &str,
    topics: &[String],
    partitions: usize,
    replicas: i16,
    configs: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let mut conn = Conn::connect(bootstrap)?;
    let assignment = if replicas > 1 {
        led_by_bootstrap(&mut conn, bootstrap, partitions, replicas)?
    } else {
        Vec::new()
    };
    let mut request = CreateTopicsRequest::default();
    request.timeout_ms = 30_000;
    for name in topics {
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_string(name.clone()));
        if assignment.is_empty() {
            topic.num_partitions = partitions as i32;
            topic.replication_factor = 1;
        } else {
            topic.num_partitions = -1;
            topic.replication_factor = -1;
            topic.assignments = assignment.clone();
        }
        topic.configs = configs
            .iter()
            .map(|(name, value)| {
                let mut config = CreatableTopicConfig::default();
                config.name = StrBytes::from_string(name.clone());
                config.value = Some(StrBytes::from_string(value.clone()));
                config
            })
            .collect();
        request.topics.push(topic);
    }
    conn.send(ApiKey::CreateTopics, 7, &request);
    let response: CreateTopicsResponse = conn.receive(ApiKey::CreateTopics, 7);
    for topic in response.topics {
        if topic.error_code != 0 {
            return Err(format!(
                "creating {}: error {}",
                topic.name.0, topic.error_code
            ));
        }
    }
    Ok(())
}

/// Replica assignments for `partitions` partitions of `replicas` replicas each, every one led by
/// the broker at `bootstrap` (found by its address among the brokers Metadata lists) and
/// followed by the next brokers in id order.
fn led_by_bootstrap(
    conn: &mut Conn,
    bootstrap: &str,
    partitions: usize,
    replicas: i16,
) -> Result<Vec<CreatableReplicaAssignment>, String> {
    let mut request = MetadataRequest::default();
    request.topics = Some(Vec::new());
    conn.send(ApiKey::Metadata, 12, &request);
    let metadata: MetadataResponse = conn.receive(ApiKey::Metadata, 12);
    let mut brokers: Vec<(i32, String)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    brokers.sort();
    let me = brokers
        .iter()
        .position(|(_, address)| address == bootstrap)
        .ok_or_else(|| format!("{bootstrap} is not among the brokers it lists: {brokers:?}"))?;
    let replicas = usize::try_from(replicas).unwrap_or(1);
    if replicas > brokers.len() {
        return Err(format!(
            "{replicas} replicas asked of a cluster of {} brokers",
            brokers.len()
        ));
    }
    let ids: Vec<BrokerId> = (0..replicas)
        .map(|i| BrokerId(brokers[(me + i) % brokers.len()].0))
        .collect();
    Ok((0..partitions)
        .map(|p| {
            let mut assignment = CreatableReplicaAssignment::default();
            assignment.partition_index = p as i32;
            assignment.broker_ids = ids.clone();
            assignment
        })
        .collect())
}
