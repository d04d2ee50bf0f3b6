//! A broker's calls to the active controller: one connection at a time, to the voter believed
//! to be the active controller, one request in flight.
//!
//! The client does not chase the controller itself: a caller told NOT_CONTROLLER (or whose
//! call failed) points it elsewhere with [`RpcClient::aim_at`] or [`RpcClient::try_next`] and
//! calls again on its own schedule (a heartbeat's next tick, a request's retry).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_engine::rt::{self, TcpStream};

use super::frame::{decode_body, encode_frame, Kind, MAX_FRAME_BYTES};
use crate::kafka::frame::FrameReader;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("controller {voter} at {address} unreachable: {source}")]
    Unreachable {
        voter: i32,
        address: String,
        source: std::io::Error,
    },
    #[error("controller {voter} did not answer within {0:?}", .timeout)]
    TimedOut { voter: i32, timeout: Duration },
    #[error("controller {voter} sent a bad answer: {reason}")]
    BadAnswer { voter: i32, reason: String },
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    reader: FrameReader,
}

/// Calls to the controller quorum's voters.
#[derive(Debug)]
pub struct RpcClient {
    /// (id, controller listener) of every voter.
    voters: Vec<(i32, String)>,
    /// Index into `voters` of the one calls go to.
    target: usize,
    connection: Option<Connection>,
    client_id: StrBytes,
    next_correlation: i32,
    timeout: Duration,
}

impl RpcClient {
    /// A client of `voters` naming itself `client_id`, each call bounded by `timeout`.
    pub fn new(voters: Vec<(i32, String)>, client_id: String, timeout: Duration) -> RpcClient {
        RpcClient {
            voters,
            target: 0,
            connection: None,
            client_id: StrBytes::from_string(client_id),
            next_correlation: 0,
            timeout,
        }
    }

    /// The voter calls go to.
    pub fn target(&self) -> Option<i32> {
        self.voters.get(self.target).map(|(id, _)| *id)
    }

    /// Sends the next calls to voter `id` (the controller named by an answer or the metadata).
    pub fn aim_at(&mut self, id: i32) {
        if let Some(index) = self.voters.iter().position(|(v, _)| *v == id) {
            if index != self.target {
                self.target = index;
                self.connection = None;
            }
        }
    }

    /// Sends the next calls to the next voter in turn (the current one failed us).
    pub fn try_next(&mut self) {
        if !self.voters.is_empty() {
            self.target = (self.target + 1) % self.voters.len();
        }
        self.connection = None;
    }

    /// Sends `request` as `key` at `version` to the target voter and decodes its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, RpcError> {
        let (voter, address) =
            self.voters
                .get(self.target)
                .cloned()
                .ok_or_else(|| RpcError::BadAnswer {
                    voter: -1,
                    reason: "no voters configured".into(),
                })?;
        let bad = |reason: String| RpcError::BadAnswer { voter, reason };
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let correlation_id = self.next_correlation;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, key.request_header_version(version))
            .map_err(|e| bad(format!("encoding {key:?}: {e}")))?;
        request
            .encode(&mut payload, version)
            .map_err(|e| bad(format!("encoding {key:?}: {e}")))?;
        let timeout = self.timeout;
        let exchange = self.exchange(voter, &address, encode_frame(Kind::Request, &payload));
        let answer = match rt::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.connection = None;
                return Err(e);
            }
            Err(_) => {
                // The answer may still come; on this connection it would be mistaken for the
                // next call's.
                self.connection = None;
                return Err(RpcError::TimedOut { voter, timeout });
            }
        };
        let mut answer = answer;
        let header = ResponseHeader::decode(&mut answer, key.response_header_version(version))
            .map_err(|e| bad(format!("{key:?} response header: {e}")))?;
        if header.correlation_id != correlation_id {
            self.connection = None;
            return Err(bad(format!(
                "answered request {correlation_id} with {}",
                header.correlation_id
            )));
        }
        Resp::decode(&mut answer, version).map_err(|e| bad(format!("{key:?} response: {e}")))
    }

    /// Sends one request frame and reads the response's payload.
    async fn exchange(
        &mut self,
        voter: i32,
        address: &str,
        frame: Bytes,
    ) -> Result<Bytes, RpcError> {
        let unreachable = |source| RpcError::Unreachable {
            voter,
            address: address.to_owned(),
            source,
        };
        if self.connection.is_none() {
            let stream = TcpStream::connect(address).await.map_err(unreachable)?;
            let _ = stream.set_nodelay(true);
            self.connection = Some(Connection {
                stream,
                reader: FrameReader::new(MAX_FRAME_BYTES),
            });
        }
        let connection = self.connection.as_mut().expect("connected just above");
        let (sent, _) = connection.stream.send_all(frame).await;
        sent.map_err(unreachable)?;
        let body = connection
            .reader
            .next(&connection.stream)
            .await
            .map_err(|e| {
                unreachable(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    e,
                ))
            })?;
        match decode_body(body) {
            Some((Kind::Response, payload)) => Ok(payload),
            _ => Err(RpcError::BadAnswer {
                voter,
                reason: "not a response frame".into(),
            }),
        }
    }
}
