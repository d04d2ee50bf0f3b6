//! The broker's listeners: one socket per shard on the same port (SO_REUSEPORT), bound up front
//! so that "address in use" is reported before any shard starts.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use std::rc::Rc;
use std::sync::Arc;

use runnel_engine::rt::{self, Either, TcpListener};

use crate::conn_limits::log_limit::LogLimit;
use crate::conn_limits::per_ip::CONNECTIONS_PER_IP;
use crate::handlers::APIS;
use crate::kafka::{serve_connection, BrokerInfo};
use crate::warn_limited;

/// Warnings for connections refused over `max.connections.per.ip` and for failed accepts:
/// a reconnect storm or descriptor exhaustion would otherwise log once per attempt.
static REFUSED_PER_IP: LogLimit = LogLimit::new();
static ACCEPT_FAILED: LogLimit = LogLimit::new();

/// One bound listener per shard, waiting to be taken by its shard.
#[derive(Debug)]
pub struct ShardListeners {
    addr: SocketAddr,
    sockets: Vec<Mutex<Option<std::net::TcpListener>>>,
}

impl ShardListeners {
    /// Binds `shards` listeners on `addr`. With port 0 the first bind picks the port and the
    /// others join it.
    pub fn bind(addr: SocketAddr, shards: usize) -> io::Result<ShardListeners> {
        let first = TcpListener::bind_std_reuseport(addr)?;
        let addr = first.local_addr()?;
        let mut sockets = vec![Mutex::new(Some(first))];
        for _ in 1..shards {
            sockets.push(Mutex::new(Some(TcpListener::bind_std_reuseport(addr)?)));
        }
        Ok(ShardListeners { addr, sockets })
    }

    /// The bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes shard `shard`'s listener (once).
    pub fn take(&self, shard: usize) -> Option<std::net::TcpListener> {
        self.sockets
            .get(shard)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Accepts connections on one shard until shutdown is requested; each is served by its own
/// task on this shard. A connection from an address already at `max.connections.per.ip` is
/// closed at once.
pub async fn accept_loop(listener: std::net::TcpListener, broker: Arc<BrokerInfo>) {
    let broker = Rc::new(BrokerInfo::clone(&broker));
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(shard = rt::shard_id(), error = %e, "cannot use listener");
            return;
        }
    };
    loop {
        match rt::select(rt::shutdown_requested(), listener.accept()).await {
            Either::Left(()) => break,
            Either::Right(Ok((stream, peer))) => match CONNECTIONS_PER_IP.admit(peer.ip()) {
                Ok(slot) => {
                    let broker = broker.clone();
                    rt::spawn_local(async move {
                        serve_connection(stream, peer, broker, APIS).await;
                        drop(slot);
                    });
                }
                Err(too_many) => {
                    warn_limited!(
                        REFUSED_PER_IP,
                        %peer,
                        open = too_many.0,
                        "refusing connection: max_connections_per_ip reached"
                    );
                    rt::spawn_local(async move {
                        if let Err(e) = stream.close().await {
                            tracing::debug!(%peer, error = %e, "close failed");
                        }
                    });
                }
            },
            Either::Right(Err(e)) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                warn_limited!(ACCEPT_FAILED, shard = rt::shard_id(), error = %e, "accept failed");
                rt::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    tracing::debug!(shard = rt::shard_id(), "stopped accepting");
}
