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
use runnel_engine::rt::{self, Either, LocalEvent, TcpStream};

/// Frames waiting for the connection; beyond this the oldest are dropped.
const MAX_QUEUED_FRAMES: usize = 4096;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause between failed connection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections that end at once are retried this often, this many times in a row, before
/// the backoff applies.
const QUICK_RETRY: Duration = Duration::from_millis(5);
const QUICK_RETRIES: u32 = 3;

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
    /// The state last reported (none yet: the link has neither connected nor failed).
    reported: Cell<Option<LinkState>>,
    /// Told of every change of state.
    watcher: Watcher,
}

/// How a link stands, as it reports each change to whoever started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Connected to the peer.
    Up,
    /// A connection that was up ended: the peer closed it (most often because its process
    /// died) or a send failed. Reconnecting is under way.
    Lost,
    /// Connecting was refused: nothing listens at the peer's address, its process is gone.
    Refused,
}

/// Called on the link's shard, in the link's task: it must not block. With the connection
/// when the link is up.
pub type Watcher = Rc<dyn Fn(LinkState, Option<&TcpStream>)>;

impl Shared {
    fn report(&self, state: LinkState, connection: Option<&TcpStream>) {
        match state {
            LinkState::Refused => self.last_refused.set(Some(Instant::now())),
            LinkState::Up | LinkState::Lost => self.last_refused.set(None),
        }
        if self.reported.replace(Some(state)) != Some(state) {
            (self.watcher)(state, connection);
        }
    }
}

/// The outbound link to one peer; dropping it stops its task.
pub struct PeerLink {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink")
            .field("connected", &self.shared.connected.get())
            .field("last_refused", &self.shared.last_refused.get())
            .field("reported", &self.shared.reported.get())
            .finish_non_exhaustive()
    }
}

impl PeerLink {
    /// Starts the link to `address` (`host:port`) on this shard; `watcher` hears of every
    /// change of its [`LinkState`].
    pub fn start(address: String, watcher: Watcher) -> PeerLink {
        let shared = Rc::new(Shared {
            queue: RefCell::default(),
            ready: LocalEvent::new(),
            closed: Cell::new(false),
            connected: Cell::new(false),
            last_refused: Cell::new(None),
            reported: Cell::new(None),
            watcher,
        });
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
    let mut quick_retries = 0;
    while !shared.closed.get() {
        let stream = match rt::timeout(CONNECT_TIMEOUT, TcpStream::connect(address.as_str())).await
        {
            Ok(Ok(stream)) => stream,
            failed => {
                match failed {
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        shared.report(LinkState::Refused, None);
                    }
                    Ok(Err(e)) => {
                        tracing::trace!(%address, "controller peer unreachable: {e}");
                        shared.last_refused.set(None);
                    }
                    // Timed out: the peer (or the network to it) is slow, not gone.
                    _ => shared.last_refused.set(None),
                }
                // What was queued for a peer that is down is stale by the time it is back.
                shared.queue.borrow_mut().clear();
                rt::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.connected.set(true);
        shared.report(LinkState::Up, Some(&stream));
        let connected_at = Instant::now();
        let error = match rt::select(
            send_until_failure(&stream, &shared),
            closed_by_peer(&stream),
        )
        .await
        {
            Either::Left(error) => error,
            Either::Right(error) => Some(error),
        };
        shared.connected.set(false);
        shared.report(LinkState::Lost, None);
        let _ = stream.close().await;
        if let Some(e) = error {
            tracing::debug!(%address, "controller peer connection lost: {e}");
            // A peer whose process died closes every connection at once: asking again at
            // once turns that into a refusal within a round trip, and failover starts then
            // rather than a backoff later. A dying process can still accept a connection
            // (its listener is closed after the connections), which then ends at once: a few
            // quick retries see the refusal that follows. Beyond those, a peer that keeps
            // closing connections at once is asked only every backoff.
            if connected_at.elapsed() >= RECONNECT_BACKOFF {
                quick_retries = 0;
            } else if quick_retries < QUICK_RETRIES {
                quick_retries += 1;
                rt::sleep(QUICK_RETRY).await;
            } else {
                rt::sleep(RECONNECT_BACKOFF).await;
            }
        }
    }
}

/// Completes when the peer closes the connection (or it fails): a raft link carries frames
/// one way only, so anything arriving is the connection's end, not data.
async fn closed_by_peer(stream: &TcpStream) -> std::io::Error {
    let mut buf = Vec::with_capacity(64);
    loop {
        let (result, returned) = stream.recv(buf).await;
        buf = returned;
        buf.clear();
        match result {
            Ok(0) => {
                return std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "closed by the peer",
                )
            }
            Ok(_) => continue,
            Err(e) => return e,
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
