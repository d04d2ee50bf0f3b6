//! A fault-injecting TCP proxy between clients and a broker: it forwards bytes both ways and,
//! on command, swallows the broker's responses or cuts every connection. With the broker
//! advertising the proxy's address, a real client's every connection passes through it, so a
//! test can make requests reach the broker while their answers never reach the client: the
//! case a producer's retries must survive.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug, Default)]
struct Shared {
    target: Mutex<Option<SocketAddr>>,
    /// Both ends of every open connection, to cut them.
    streams: Mutex<Vec<TcpStream>>,
    swallow_responses: AtomicBool,
    /// While set, connections are refused: the link is down.
    blocked: AtomicBool,
    stopping: AtomicBool,
}

/// The proxy; it stops (and cuts its connections) when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1; connections are refused until [`set_target`]
    /// names the broker.
    ///
    /// [`set_target`]: Self::set_target
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().expect("bound");
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::spawn(move || accept_loop(listener, accepting));
        Proxy { addr, shared }
    }

    /// Where new connections go (a restarted broker may listen elsewhere).
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = Some(target);
    }

    /// While on, bytes from the broker are read and dropped: requests are served, their
    /// answers lost.
    pub fn swallow_responses(&self, on: bool) {
        self.shared.swallow_responses.store(on, Ordering::SeqCst);
    }

    /// While on, the link is down: open connections are cut and new ones refused (a network
    /// partition between the two ends).
    pub fn set_blocked(&self, on: bool) {
        self.shared.blocked.store(on, Ordering::SeqCst);
        if on {
            self.cut_all();
        }
    }

    /// Closes every open connection (clients see them drop and reconnect).
    pub fn cut_all(&self) {
        for stream in self.shared.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.cut_all();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.blocked.load(Ordering::SeqCst) {
            continue; // dropping `client` refuses it
        }
        let target = *shared.target.lock().unwrap();
        let Some(broker) = target.and_then(|t| TcpStream::connect(t).ok()) else {
            continue; // dropping `client` refuses it
        };
        let _ = client.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        if let Err(e) = start_pumps(client, broker, &shared) {
            eprintln!("proxy: {e}");
        }
    }
}

fn start_pumps(client: TcpStream, broker: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    {
        let mut streams = shared.streams.lock().unwrap();
        streams.push(client.try_clone()?);
        streams.push(broker.try_clone()?);
    }
    let (client_in, broker_out) = (client.try_clone()?, broker.try_clone()?);
    let requests = shared.clone();
    thread::spawn(move || pump(client_in, broker_out, &requests, false));
    let responses = shared.clone();
    thread::spawn(move || pump(broker, client, &responses, true));
    Ok(())
}

/// Copies `from` to `to` until either closes or the proxy is blocked (a connection that slipped
/// in while it was being blocked ends at its next bytes); for `responses`, drops what it reads
/// while the proxy swallows responses.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, responses: bool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.blocked.load(Ordering::SeqCst) {
            break;
        }
        let dropped = responses && shared.swallow_responses.load(Ordering::SeqCst);
        if !dropped && to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
