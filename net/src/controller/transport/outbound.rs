//! One voter's connection to another: frames queue here and a task sends them, reconnecting
//! whenever the connection fails.
//!
//! Raft needs no delivery guarantee (it resends what was not acknowledged), so this link
//! drops rather than waits: frames queued while the peer is unreachable are discarded, and a
//! queue that keeps growing (a slow peer) loses its oldest frames. What it must never do is
//! stall the controller's loop behind one dead peer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use runnel_engine::rt::{self, LocalEvent, TcpStream};

/// Frames waiting for the connection; beyond this the oldest are dropped.
const MAX_QUEUED_FRAMES: usize = 4096;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause between failed connection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Shared {
    queue: RefCell<VecDeque<Bytes>>,
    ready: LocalEvent,
    closed: Cell<bool>,
    /// Whether the link is connected now (for status reports).
    connected: Cell<bool>,
    /// When the latest connection attempt was refused (nothing listens at the peer's
    /// address: its process is gone); cleared by any other outcome. The latest, not the first:
    /// a request the peer sent just before it died can still be handled after the first
    /// refusal, and only a refusal later than everything heard from the peer says it is gone.
    last_refused: Cell<Option<Instant>>,
}

/// The outbound link to one peer; dropping it stops its task.
#[derive(Debug)]
pub struct PeerLink {
    shared: Rc<Shared>,
}

impl PeerLink {
    /// Starts the link to `address` (`host:port`) on this shard.
    pub fn start(address: String) -> PeerLink {
        let shared = Rc::new(Shared::default());
        crate::controller::spawn_until_shutdown(run(address, shared.clone()));
        PeerLink { shared }
    }

    /// Queues a frame (made by [`super::encode_frame`]) for the peer.
    pub fn send(&self, frame: Bytes) {
        let mut queue = self.shared.queue.borrow_mut();
        if queue.len() >= MAX_QUEUED_FRAMES {
            queue.pop_front();
        }
        queue.push_back(frame);
        drop(queue);
        self.shared.ready.notify_all();
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.get()
    }

    /// When the latest attempt to connect to the peer was refused, if connecting is refused now.
    pub fn last_refused(&self) -> Option<Instant> {
        self.shared.last_refused.get()
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.shared.closed.set(true);
        self.shared.ready.notify_all();
    }
}

async fn run(address: String, shared: Rc<Shared>) {
    while !shared.closed.get() {
        let stream = match rt::timeout(CONNECT_TIMEOUT, TcpStream::connect(address.as_str())).await
        {
            Ok(Ok(stream)) => stream,
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::trace!(%address, "controller peer unreachable: {e}");
                    let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                    shared.last_refused.set(refused.then(Instant::now));
                } else {
                    shared.last_refused.set(None);
                }
                // What was queued for a peer that is down is stale by the time it is back.
                shared.queue.borrow_mut().clear();
                rt::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.connected.set(true);
        shared.last_refused.set(None);
        let error = send_until_failure(&stream, &shared).await;
        shared.connected.set(false);
        let _ = stream.close().await;
        if let Some(e) = error {
            tracing::debug!(%address, "controller peer connection lost: {e}");
            rt::sleep(RECONNECT_BACKOFF).await;
        }
    }
}

/// Sends queued frames until the link closes (`None`) or a send fails.
async fn send_until_failure(stream: &TcpStream, shared: &Shared) -> Option<std::io::Error> {
    loop {
        while shared.queue.borrow().is_empty() {
            if shared.closed.get() {
                return None;
            }
            shared.ready.wait().await;
        }
        // Everything queued goes out in one send.
        let mut batch = BytesMut::new();
        for frame in shared.queue.borrow_mut().drain(..) {
            batch.extend_from_slice(&frame);
        }
        let (result, _) = stream.send_all(batch).await;
        if let Err(e) = result {
            return Some(e);
        }
    }
}
