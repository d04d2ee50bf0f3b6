//! The broker's listeners: one socket per shard on the same port (SO_REUSEPORT), bound up front
//! so that "address in use" is reported before any shard starts.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use std::rc::Rc;
use std::sync::Arc;

use runnel_engine::rt::{self, Either, TcpListener};

use crate::handlers::APIS;
use crate::kafka::{serve_connection, BrokerInfo};

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
/// task on this shard.
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
            Either::Right(Ok((stream, peer))) => {
                rt::spawn_local(serve_connection(stream, peer, broker.clone(), APIS));
            }
            Either::Right(Err(e)) => {
                // EMFILE/ENFILE and friends: back off instead of spinning on the error.
                tracing::warn!(shard = rt::shard_id(), error = %e, "accept failed");
                rt::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    tracing::debug!(shard = rt::shard_id(), "stopped accepting");
}
