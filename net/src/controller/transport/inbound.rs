//! The controller listener: accepts connections from voters and brokers and hands what they
//! send to the controller.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use runnel_engine::rt::{self, TcpListener, TcpStream};

use super::frame::{decode_body, encode_frame, Kind, MAX_FRAME_BYTES};
use crate::kafka::frame::{FrameError, FrameReader};

/// An answer to a request, produced later.
pub type Answer = Pin<Box<dyn Future<Output = Option<Bytes>>>>;

/// What the controller does with what arrives.
pub struct Handlers {
    /// A Raft message's payload, from whichever voter.
    pub raft: Box<dyn Fn(Bytes)>,
    /// A broker's request (Kafka header and body); the answer is a Kafka response (header and
    /// body), or `None` to close the connection (a request that makes no sense).
    pub request: Box<dyn Fn(Bytes) -> Answer>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handlers")
    }
}

/// Serves `listener` until the shard stops.
pub async fn serve(listener: TcpListener, handlers: Rc<Handlers>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                crate::controller::spawn_until_shutdown(serve_connection(
                    stream,
                    peer,
                    handlers.clone(),
                ));
            }
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!("controller listener: accept failed: {e}");
                rt::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: std::net::SocketAddr, handlers: Rc<Handlers>) {
    let mut reader = FrameReader::new(MAX_FRAME_BYTES);
    loop {
        let body = match reader.next(&stream).await {
            Ok(body) => body,
            Err(FrameError::Closed) => break,
            Err(e) => {
                tracing::debug!(%peer, "controller listener: {e}");
                break;
            }
        };
        match decode_body(body) {
            Some((Kind::Raft, payload)) => (handlers.raft)(payload),
            Some((Kind::Request, payload)) => {
                let Some(response) = (handlers.request)(payload).await else {
                    tracing::debug!(%peer, "controller listener: unintelligible request");
                    break;
                };
                let (sent, _) = stream
                    .send_all(encode_frame(Kind::Response, &response))
                    .await;
                if sent.is_err() {
                    break;
                }
            }
            Some((Kind::Response, _)) | None => {
                tracing::debug!(%peer, "controller listener: not a controller frame");
                break;
            }
        }
    }
    let _ = stream.close().await;
}
