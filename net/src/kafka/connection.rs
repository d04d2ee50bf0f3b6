//! One client connection: frames in, responses out, in request order.
//!
//! Requests are answered one at a time, in the order they arrived; pipelined requests wait in
//! the frame reader's buffer. A request that can't be understood (unknown API key, an
//! unsupported version of anything but ApiVersions, a malformed header or body) closes the
//! connection, as Kafka does; the broker logs it and keeps serving everyone else.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_engine::rt::{self, Either, TcpStream};

use super::fetch_response::Piece;
use super::frame::{FrameError, FrameReader};
use super::send::send_pieces;
use super::versions;
use crate::handlers::{self, Reply};

/// What every connection needs to know about this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    /// Host and port clients are told to connect to (Metadata).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub cluster_id: String,
    /// `socket.request.max.bytes`.
    pub max_request_bytes: usize,
    /// `auto.create.topics.enable`: Metadata creates topics it is asked about.
    pub auto_create_topics: bool,
    /// Fetch responses splice records from segment files instead of copying them.
    pub zero_copy_fetch: bool,
    /// Consumer group settings.
    pub groups: crate::config::GroupsConfig,
}

/// Why a connection is being closed on a request.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("request of {0} bytes is shorter than a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{0:?} v{1} is not supported")]
    UnsupportedVersion(ApiKey, i16),
    #[error("malformed {0:?} v{1} request: {2}")]
    Malformed(ApiKey, i16, String),
    #[error("cannot encode the {0:?} v{1} response: {2}")]
    Encode(ApiKey, i16, String),
}

/// Serves one connection until the peer closes it, it misbehaves, or the shard shuts down.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, broker: Rc<BrokerInfo>) {
    let _ = stream.set_nodelay(true);
    crate::metrics::connection_change(1);
    let mut frames = FrameReader::new(broker.max_request_bytes);
    loop {
        let frame = match rt::select(rt::shutdown_requested(), frames.next(&stream)).await {
            Either::Left(()) => break,
            Either::Right(Ok(frame)) => frame,
            Either::Right(Err(FrameError::Closed)) => break,
            // A client that closes with replies unread (librdkafka tearing down a consumer
            // with a fetch in flight) resets the connection: routine, as Kafka treats it.
            Either::Right(Err(FrameError::Io(e)))
                if e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                tracing::debug!(%peer, error = %e, "connection reset by the client");
                break;
            }
            Either::Right(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let (head, pieces) = match respond(frame, &broker, peer).await {
            Ok(Some(response)) => response,
            Ok(None) => continue, // acks=0: no response
            Err(refusal) => {
                tracing::warn!(%peer, error = %refusal, "closing connection");
                break;
            }
        };
        if let Err(e) = send_pieces(&stream, head, pieces).await {
            tracing::debug!(%peer, error = %e, "send failed; closing connection");
            break;
        }
        tracing::trace!(%peer, "response sent");
    }
    crate::metrics::connection_change(-1);
    if let Err(e) = stream.close().await {
        tracing::debug!(%peer, error = %e, "close failed");
    }
}

/// Decodes one request frame, runs its handler and returns the response frame.
/// The response to send: its frame head (size, header and any encoded body) and, for Fetch,
/// the body's pieces.
type Response = (BytesMut, Vec<Piece>);

async fn respond(
    mut frame: Bytes,
    broker: &BrokerInfo,
    peer: SocketAddr,
) -> Result<Option<Response>, Refusal> {
    if frame.len() < 8 {
        return Err(Refusal::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
    let key = ApiKey::try_from(raw_key).map_err(|_| Refusal::UnknownApi(raw_key))?;
    if !versions::supports(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges, so the client
            // can retry with a version we know.
            let response = ResponseKind::ApiVersions(handlers::api_versions::unsupported_version());
            return encode(ApiKey::ApiVersions, 0, correlation_id, &response)
                .map(|head| Some((head, Vec::new())));
        }
        return Err(Refusal::UnsupportedVersion(key, version));
    }
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| Refusal::Malformed(key, version, e.to_string()))?;
    let request = RequestKind::decode(key, &mut frame, version)
        .map_err(|e| Refusal::Malformed(key, version, e.to_string()))?;
    tracing::trace!(%peer, ?key, version, correlation_id, "request");
    let started = std::time::Instant::now();
    let reply = handlers::handle(broker, &header, peer, request, version).await;
    crate::metrics::record_request(raw_key, version, started.elapsed());
    match reply {
        Some(Reply::Message(response)) => {
            encode(key, version, correlation_id, &response).map(|head| Some((head, Vec::new())))
        }
        Some(Reply::Pieces(pieces)) => {
            let mut head = header_frame(key, version, correlation_id)?;
            let size = (head.len() - 4) as u64 + pieces.iter().map(Piece::len).sum::<u64>();
            let size = i32::try_from(size)
                .map_err(|_| Refusal::Encode(key, version, format!("response of {size} bytes")))?;
            head[..4].copy_from_slice(&size.to_be_bytes());
            Ok(Some((head, pieces)))
        }
        None => Ok(None),
    }
}

/// A frame's start: room for the size, then the response header.
fn header_frame(key: ApiKey, version: i16, correlation_id: i32) -> Result<BytesMut, Refusal> {
    let mut out = BytesMut::with_capacity(256);
    out.extend_from_slice(&[0; 4]);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut out, key.response_header_version(version))
        .map_err(|e| Refusal::Encode(key, version, e.to_string()))?;
    Ok(out)
}

/// Encodes a response frame: size, response header, body.
fn encode(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<BytesMut, Refusal> {
    let mut out = header_frame(key, version, correlation_id)?;
    response
        .encode(&mut out, version)
        .map_err(|e| Refusal::Encode(key, version, e.to_string()))?;
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}
