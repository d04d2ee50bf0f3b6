//! A follower's connection to a leader's Kafka listener: plain Kafka framing, one request in
//! flight, each bounded by a timeout. Followers speak to leaders the way any Kafka client
//! does (Fetch with a replica id, OffsetsForLeaderEpoch), so a leader needs no second
//! listener and a fault-injecting proxy between brokers sees ordinary Kafka traffic.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_engine::rt::{self, TcpStream};

use crate::kafka::frame::{put_frame, FrameReader};

/// The largest response a follower accepts: a Fetch answer is bounded by
/// `replica.fetch.response.max.bytes`, except that its first batch comes whole however large
/// (KIP-74): room for a batch of 256 MiB (a topic's `max.message.bytes` above that stalls
/// its followers, who log why).
pub fn max_response_bytes(fetch_response_max_bytes: usize) -> usize {
    fetch_response_max_bytes
        .saturating_add(256 << 20)
        .saturating_add(1 << 20)
}

/// Why a call got no usable answer. Every one drops the connection: the next call opens a
/// new one.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("broker {broker} at {address} unreachable: {source}")]
    Unreachable {
        broker: i32,
        address: String,
        source: std::io::Error,
    },
    #[error("broker {broker} did not answer within {timeout:?}")]
    TimedOut { broker: i32, timeout: Duration },
    #[error("broker {broker} sent a bad answer: {reason}")]
    BadAnswer { broker: i32, reason: String },
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    reader: FrameReader,
}

/// Calls to one broker.
#[derive(Debug)]
pub struct BrokerClient {
    broker: i32,
    address: String,
    client_id: StrBytes,
    max_response: usize,
    connection: Option<Connection>,
    next_correlation: i32,
    /// A call is between sending and reading its answer. Still set when the next call
    /// starts, that call was dropped mid-exchange (its caller gave up on it): the
    /// connection's next bytes would be its answer, so the connection goes.
    mid_exchange: bool,
}

impl BrokerClient {
    pub fn new(broker: i32, address: String, client_id: String, max_response: usize) -> Self {
        BrokerClient {
            broker,
            address,
            client_id: StrBytes::from_string(client_id),
            max_response,
            connection: None,
            next_correlation: 0,
            mid_exchange: false,
        }
    }

    pub fn broker(&self) -> i32 {
        self.broker
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` as `key` at `version` and decodes the answer, within `timeout`
    /// (connecting included). Dropping the future before it completes is safe: the next call
    /// starts on a new connection.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let broker = self.broker;
        let bad = |reason: String| CallError::BadAnswer { broker, reason };
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let correlation_id = self.next_correlation;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(|e| bad(format!("encoding {key:?}: {e}")))?;
        request
            .encode(&mut body, version)
            .map_err(|e| bad(format!("encoding {key:?}: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        put_frame(&mut frame, &body);
        if std::mem::take(&mut self.mid_exchange) {
            self.connection = None;
        }
        self.mid_exchange = true;
        let exchanged = rt::timeout(timeout, self.exchange(frame.freeze())).await;
        self.mid_exchange = false;
        let answer = match exchanged {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.connection = None;
                return Err(e);
            }
            Err(_) => {
                // A late answer on this connection would be taken for the next call's.
                self.connection = None;
                return Err(CallError::TimedOut { broker, timeout });
            }
        };
        let mut answer = answer;
        let decoded = ResponseHeader::decode(&mut answer, key.response_header_version(version))
            .map_err(|e| bad(format!("{key:?} response header: {e}")))
            .and_then(|header| {
                if header.correlation_id == correlation_id {
                    Ok(())
                } else {
                    Err(bad(format!(
                        "answered request {correlation_id} with {}",
                        header.correlation_id
                    )))
                }
            })
            .and_then(|()| {
                Resp::decode(&mut answer, version).map_err(|e| bad(format!("{key:?}: {e}")))
            });
        if decoded.is_err() {
            self.connection = None;
        }
        decoded
    }

    /// Sends one frame and reads the answer's body.
    async fn exchange(&mut self, frame: bytes::Bytes) -> Result<bytes::Bytes, CallError> {
        let unreachable = |source| CallError::Unreachable {
            broker: self.broker,
            address: self.address.clone(),
            source,
        };
        if self.connection.is_none() {
            let stream = TcpStream::connect(&self.address)
                .await
                .map_err(unreachable)?;
            let _ = stream.set_nodelay(true);
            self.connection = Some(Connection {
                stream,
                reader: FrameReader::new(self.max_response),
            });
        }
        let connection = self.connection.as_mut().expect("connected just above");
        let (sent, _) = connection.stream.send_all(frame).await;
        sent.map_err(unreachable)?;
        connection
            .reader
            .next(&connection.stream)
            .await
            .map_err(|e| {
                unreachable(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    e.to_string(),
                ))
            })
    }
}
