//! One client connection: frames in, responses out, in request order.
//!
//! Pipelined Produce requests overlap (see [`serve_connection`]); every other request runs
//! alone. A request that can't be understood (unknown API key, an unsupported version of
//! anything but ApiVersions, a malformed header or body) closes the connection, as Kafka does;
//! the broker logs it (rate-limited) and keeps serving everyone else. A connection with
//! nothing in flight that receives nothing for `connections.max.idle.ms` is closed.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_engine::rt::{self, Either, TcpStream};

use super::decode_budget;
use super::dispatch::{Api, Apis, Call, Handled, HandlerError, ResponseBody, Run};
use super::fetch_response::Piece;
use super::frame::{FrameError, FrameReader};
use super::outbox::Outbox;
use super::send::send_pieces;
use crate::conn_limits::log_limit::LogLimit;
use crate::conn_limits::queued::{QueuedBytes, QUEUED_REQUEST_BYTES};
use crate::warn_limited;

/// What every connection needs to know about this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    /// Part of a cluster (a controller quorum is configured), not a broker running alone.
    pub in_cluster: bool,
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
    /// Zero-copy fetches copy partition reads smaller than this.
    pub fetch_splice_min_bytes: u64,
    /// Consumer group settings.
    pub groups: crate::config::GroupsConfig,
    /// Transaction coordinator settings.
    pub transactions: crate::config::TransactionsConfig,
    /// `connections.max.idle.ms`.
    pub connections_max_idle: Duration,
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
    #[error("{0:?} v{1}: {2}")]
    Handler(ApiKey, i16, HandlerError),
}

/// Responses a connection may have queued or in progress before the broker stops reading its
/// requests. Only Produce requests overlap (everything else waits for the queue to empty), so
/// this bounds the produce requests, and the records they hold, in flight per connection; Java
/// clients send at most 5, librdkafka as many as it is allowed.
const MAX_PIPELINED: usize = 32;

/// Request bytes a connection's pipelined Produce requests may hold at once (a request larger
/// than this still runs, alone). Bounds the broker's memory per connection to this plus the
/// frame just read (up to `socket.request.max.bytes`), where one at a time would hold one
/// request; `queued.max.request.bytes` bounds all connections together (conn_limits::queued).
const MAX_PIPELINED_BYTES: usize = 64 << 20;

/// What the writer sends for one request: its response frame, nothing (acks=0), or a reason
/// to close the connection.
type Framed = Result<Option<EncodedResponse>, Refusal>;

/// What the writer takes from the outbox: the framed response and the request's bytes in the
/// broker-wide pool, given back once the response is sent.
type Answer = (Framed, Option<QueuedBytes>);

/// Warnings for connections closed on a bad frame or request, and for responses that
/// couldn't be encoded: one line a second at most, each kind.
static BAD_FRAME: LogLimit = LogLimit::new();
static BAD_REQUEST: LogLimit = LogLimit::new();
static BAD_RESPONSE: LogLimit = LogLimit::new();

/// Serves one connection until the peer closes it, it misbehaves, or the shard shuts down.
///
/// A reader (this task) decodes requests and starts them; a writer task sends the responses in
/// request order (see [`Outbox`]). Produce requests are pipelined: each is placed in its logs
/// (offsets assigned) before the next request is read, and completes while later ones are
/// read, so a client's in-flight produce requests are written and synced together. Every
/// other request runs alone once all earlier responses have been sent, as Kafka runs a
/// connection's requests one at a time.
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Rc<BrokerInfo>,
    apis: Apis,
) {
    let _ = stream.set_nodelay(true);
    crate::metrics::connection_change(1);
    let stream = Rc::new(stream);
    let outbox = Rc::new(Outbox::new(MAX_PIPELINED, MAX_PIPELINED_BYTES));
    let activity = Rc::new(Cell::new(Instant::now()));
    let writer = rt::spawn_local(write_responses(
        stream.clone(),
        outbox.clone(),
        activity.clone(),
        peer,
    ));
    read_requests(&stream, &outbox, activity, &broker, apis, peer).await;
    outbox.close();
    writer.await;
    crate::metrics::connection_change(-1);
    let Ok(stream) = Rc::try_unwrap(stream) else {
        unreachable!("the writer, the stream's only other owner, has finished");
    };
    if let Err(e) = stream.close().await {
        tracing::debug!(%peer, error = %e, "close failed");
    }
}

/// Reads and starts requests until the peer closes, a request is refused, the writer stops or
/// the shard shuts down.
async fn read_requests(
    stream: &TcpStream,
    outbox: &Outbox<Answer>,
    activity: Rc<Cell<Instant>>,
    broker: &Rc<BrokerInfo>,
    apis: Apis,
    peer: SocketAddr,
) {
    let mut frames = FrameReader::for_requests(
        broker.max_request_bytes,
        &QUEUED_REQUEST_BYTES,
        activity.clone(),
    );
    // A full outbox stops reading: the client waits, and so does the memory its requests take.
    while outbox.room_for(0).await {
        let next = rt::select(
            frames.next_request(stream),
            idle(&activity, outbox, broker.connections_max_idle),
        );
        let (frame, queued) = match rt::select(rt::shutdown_requested(), next).await {
            Either::Left(()) => break,
            Either::Right(Either::Right(())) => {
                tracing::debug!(%peer, idle = ?broker.connections_max_idle, "closing idle connection");
                break;
            }
            Either::Right(Either::Left(Ok(frame))) => frame,
            Either::Right(Either::Left(Err(FrameError::Closed))) => break,
            // A client that closes with replies unread (librdkafka tearing down a consumer
            // with a fetch in flight) resets the connection: routine, as Kafka treats it.
            Either::Right(Either::Left(Err(FrameError::Io(e))))
                if e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                tracing::debug!(%peer, error = %e, "connection reset by the client");
                break;
            }
            Either::Right(Either::Left(Err(e))) => {
                warn_limited!(BAD_FRAME, %peer, error = %e, "closing connection");
                break;
            }
        };
        let size = frame.len();
        let request = match decode(frame, apis) {
            Ok(Decoded::Request(request)) => *request,
            Ok(Decoded::Answered(head)) => {
                let answer = (Ok(Some((head, Vec::new()))), queued);
                outbox.push(Box::pin(std::future::ready(answer)), 0);
                continue;
            }
            Err(refusal) => {
                warn_limited!(BAD_REQUEST, %peer, error = %refusal, "closing connection");
                break;
            }
        };
        tracing::trace!(%peer, key = ?request.key, request.version, request.correlation_id, "request");
        let started = std::time::Instant::now();
        let Request {
            api,
            raw_key,
            key,
            version,
            correlation_id,
            header,
            body,
        } = request;
        let call = Call {
            broker: broker.clone(),
            header,
            peer,
            version,
            body,
        };
        match api.run {
            Run::Pipelined(run) => {
                if !outbox.room_for(size).await {
                    break;
                }
                crate::metrics::record_queueing(started.elapsed());
                let finishing = run(call).await.into_future();
                // Its own task, so the request is timed when it completes, not when the
                // writer gets to it.
                let finished = rt::spawn_local(async move {
                    let handled = finishing.await;
                    crate::metrics::record_request(raw_key, version, started.elapsed());
                    frame_response(key, version, correlation_id, handled)
                });
                outbox.push(Box::pin(async move { (finished.await, queued) }), size);
            }
            Run::Alone(run) => {
                if !outbox.idle().await {
                    break;
                }
                crate::metrics::record_queueing(started.elapsed());
                let handled = run(call).await;
                crate::metrics::record_request(raw_key, version, started.elapsed());
                let framed = frame_response(key, version, correlation_id, handled);
                outbox.push(Box::pin(std::future::ready((framed, queued))), 0);
            }
        }
    }
}

/// Resolves once the connection has been idle for `limit`: nothing received (nor sent) for
/// that long with nothing in flight. A request in flight (a pipelined produce, a response
/// being sent) restarts the period; a request running alone stops the reader, and this with
/// it, until it is answered.
async fn idle(activity: &Cell<Instant>, outbox: &Outbox<Answer>, limit: Duration) {
    loop {
        let now = Instant::now();
        let deadline = activity.get() + limit;
        if now >= deadline {
            if outbox.is_empty() {
                return;
            }
            activity.set(now);
            continue;
        }
        rt::sleep(deadline - now).await;
    }
}

/// Sends the responses in request order until the reader closes the outbox, a send fails or
/// a response can't be encoded; on failure the socket is shut down so the reader stops too.
async fn write_responses(
    stream: Rc<TcpStream>,
    outbox: Rc<Outbox<Answer>>,
    activity: Rc<Cell<Instant>>,
    peer: SocketAddr,
) {
    while let Some(answer) = outbox.next().await {
        // `_queued` is held until the response has been sent (the end of this iteration).
        let (framed, _queued) = answer.await;
        let (head, pieces) = match framed {
            Ok(Some(response)) => response,
            Ok(None) => {
                outbox.sent(); // acks=0: no response
                continue;
            }
            Err(refusal) => {
                warn_limited!(BAD_RESPONSE, %peer, error = %refusal, "closing connection");
                break;
            }
        };
        let sending = std::time::Instant::now();
        if let Err(e) = send_pieces(&stream, head, pieces).await {
            tracing::debug!(%peer, error = %e, "send failed; closing connection");
            break;
        }
        crate::metrics::record_send(sending.elapsed());
        activity.set(Instant::now());
        tracing::trace!(%peer, "response sent");
        outbox.sent();
    }
    if !outbox.is_closed_and_empty() {
        outbox.fail();
        // Wakes the reader's pending receive (it sees the end of the stream).
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A decoded request.
struct Request {
    api: &'static Api,
    raw_key: i16,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    header: RequestHeader,
    body: RequestKind,
}

/// What a frame turned out to be.
enum Decoded {
    Request(Box<Request>),
    /// Answered without a handler (ApiVersions at a version we don't know): the response frame.
    Answered(BytesMut),
}

/// A response ready to send: its frame head (size, header and any encoded body) and, for
/// Fetch, the body's pieces.
type EncodedResponse = (BytesMut, Vec<Piece>);

/// Decodes one request frame as a connection does, and says which API it is for (or why the
/// connection would close). For the fuzz target that feeds it arbitrary frames.
pub fn decode_request(frame: Bytes, apis: Apis) -> Result<Option<ApiKey>, Refusal> {
    decode(frame, apis).map(|decoded| match decoded {
        Decoded::Request(request) => Some(request.key),
        Decoded::Answered(_) => None,
    })
}

/// Decodes one request frame.
fn decode(mut frame: Bytes, apis: Apis) -> Result<Decoded, Refusal> {
    if frame.len() < 8 {
        return Err(Refusal::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
    let key = ApiKey::try_from(raw_key).map_err(|_| Refusal::UnknownApi(raw_key))?;
    let Some(api) = apis.at_version(key, version) else {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges, so the client
            // can retry with a version we know.
            let response = ResponseKind::ApiVersions(apis.api_versions_unsupported());
            return encode(ApiKey::ApiVersions, 0, correlation_id, &response)
                .map(Decoded::Answered);
        }
        return Err(Refusal::UnsupportedVersion(key, version));
    };
    let header_version = key.request_header_version(version);
    // Under a memory budget proportional to the frame: a request whose small wire elements
    // would decode to gigabytes is refused (as malformed) before it allocates them.
    let (header, body) = decode_budget::within_budget(frame.len(), || {
        let header = RequestHeader::decode(&mut frame, header_version);
        // `{:#}`: the codec's error with its causes (which field, and why).
        let header = header.map_err(|e| format!("{e:#}"))?;
        let body = RequestKind::decode(key, &mut frame, version).map_err(|e| format!("{e:#}"))?;
        Ok((header, body))
    })
    .map_err(|e: String| Refusal::Malformed(key, version, e))?;
    Ok(Decoded::Request(Box::new(Request {
        api,
        raw_key,
        key,
        version,
        correlation_id,
        header,
        body,
    })))
}

/// Frames what a handler produced: its response, `None` when no response is due, or why the
/// connection closes.
fn frame_response(key: ApiKey, version: i16, correlation_id: i32, handled: Handled) -> Framed {
    match handled.map_err(|e| Refusal::Handler(key, version, e))? {
        Some(ResponseBody::Message(response)) => {
            encode(key, version, correlation_id, &response).map(|head| Some((head, Vec::new())))
        }
        Some(ResponseBody::Pieces(pieces)) => {
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
