//! A consumer's fetch loop on Runnel's runtime: long-polls a topic's partitions (Fetch v12,
//! 100 ms max wait) from where it left off and hands back the records' values, for the load
//! generator's consumers.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use runnel_engine::rt::TcpStream;
use runnel_net::kafka::frame::FrameReader;

use crate::client::encode_frame;

const FETCH_VERSION: i16 = 12;

/// Reads `partitions` of one topic from offset 0 on.
#[derive(Debug)]
pub struct Fetcher {
    stream: TcpStream,
    frames: FrameReader,
    topic: TopicName,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
}

impl Fetcher {
    pub async fn connect(
        bootstrap: &str,
        topic: &str,
        partitions: Vec<i32>,
    ) -> Result<Fetcher, String> {
        let stream = crate::client::connect(bootstrap).await?;
        Ok(Fetcher {
            stream,
            frames: FrameReader::new(256 << 20),
            topic: TopicName(StrBytes::from_string(topic.to_owned())),
            offsets: vec![0; partitions.len()],
            partitions,
        })
    }

    /// One fetch: when its response arrived, and the values of the records in it (none when
    /// the long poll timed out), in offset order per partition.
    pub async fn next(&mut self) -> Result<(Instant, Vec<Bytes>), String> {
        let mut fetch = FetchRequest::default();
        fetch.replica_id = BrokerId(-1);
        fetch.max_wait_ms = 100;
        fetch.min_bytes = 1;
        fetch.max_bytes = 64 << 20;
        let mut wanted = FetchTopic::default();
        wanted.topic = self.topic.clone();
        wanted.partitions = self
            .partitions
            .iter()
            .zip(&self.offsets)
            .map(|(&p, &offset)| {
                let mut partition = FetchPartition::default();
                partition.partition = p;
                partition.fetch_offset = offset;
                partition.partition_max_bytes = 8 << 20;
                partition.log_start_offset = -1;
                partition
            })
            .collect();
        fetch.topics = vec![wanted];
        let (sent, _) = self
            .stream
            .send_all(encode_frame(ApiKey::Fetch, FETCH_VERSION, &fetch))
            .await;
        sent.map_err(|e| format!("sending a fetch: {e}"))?;
        let mut body = self
            .frames
            .next(&self.stream)
            .await
            .map_err(|e| format!("reading a fetch response: {e}"))?;
        let arrived = Instant::now();
        ResponseHeader::decode(
            &mut body,
            ApiKey::Fetch.response_header_version(FETCH_VERSION),
        )
        .map_err(|e| e.to_string())?;
        let response =
            FetchResponse::decode(&mut body, FETCH_VERSION).map_err(|e| e.to_string())?;
        let mut values = Vec::new();
        for partition in response.responses.into_iter().flat_map(|t| t.partitions) {
            let Some(i) = self
                .partitions
                .iter()
                .position(|p| *p == partition.partition_index)
            else {
                continue;
            };
            if partition.error_code != 0 {
                return Err(format!("fetch failed with error {}", partition.error_code));
            }
            let Some(mut records) = partition.records else {
                continue;
            };
            while !records.is_empty() {
                // A batch cut off at the size limit is read again next time.
                let Ok(set) = RecordBatchDecoder::decode(&mut records) else {
                    break;
                };
                for record in set.records {
                    self.offsets[i] = self.offsets[i].max(record.offset + 1);
                    values.extend(record.value);
                }
            }
        }
        Ok((arrived, values))
    }

    /// Where each partition's reading stands: (partition, next offset), what a group
    /// consumer commits.
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .copied()
            .zip(self.offsets.iter().copied())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}
