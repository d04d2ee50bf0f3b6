//! TCP sockets on the shard's backend.

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use super::buf::{IoBuf, IoBufMut};
use super::fd::IoFd;
use super::op::Op;
use super::ops::{self, FdKind};

const LISTEN_BACKLOG: i32 = 1024;

fn resolve(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing"))
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    Ok(socket)
}

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener {
    fd: IoFd,
    local_addr: SocketAddr,
}

impl TcpListener {
    /// Binds and listens on `addr` (with SO_REUSEADDR).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(addr, false)
    }

    /// Binds with SO_REUSEPORT as well, so that every shard can listen on the same port and the
    /// kernel spreads incoming connections across them.
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(addr, true)
    }

    fn bind_with(addr: impl ToSocketAddrs, reuse_port: bool) -> io::Result<Self> {
        let addr = resolve(addr)?;
        let socket = new_socket(&addr)?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let local_addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener bound to a non-IP address"))?;
        Ok(TcpListener {
            fd: IoFd::new(socket.into()),
            local_addr,
        })
    }

    /// Adopts a bound, listening std listener (made non-blocking here). Lets a caller bind on
    /// its own thread, where errors such as "address in use" are easy to report, and hand each
    /// shard its socket.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        Ok(TcpListener {
            fd: IoFd::new(OwnedFd::from(listener)),
            local_addr,
        })
    }

    /// Binds and listens on a std listener with SO_REUSEADDR and SO_REUSEPORT, ready for
    /// [`from_std`](Self::from_std) on a shard.
    pub fn bind_std_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        let socket = new_socket(&addr)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket.into())
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = Op::new(ops::Accept::new(self.fd.shared())).await?;
        let peer = addr
            .as_socket()
            .ok_or_else(|| io::Error::other("accepted a non-IP peer"))?;
        Ok((TcpStream { fd: IoFd::new(fd) }, peer))
    }

    /// Closes the listener through the backend.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// A connected TCP socket.
///
/// Reads append to the buffer's spare capacity; writes send its initialized bytes. Buffers
/// move into each call and come back with the result.
#[derive(Debug)]
pub struct TcpStream {
    fd: IoFd,
}

impl TcpStream {
    /// Connects to `addr`.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let addr = resolve(addr)?;
        let socket = new_socket(&addr)?;
        let fd = IoFd::new(socket.into());
        Op::new(ops::Connect::new(fd.shared(), SockAddr::from(addr))).await?;
        Ok(TcpStream { fd })
    }

    /// Adopts a connected std socket (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            fd: IoFd::new(OwnedFd::from(stream)),
        })
    }

    /// Releases the socket as a std type, for moving it to another thread.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(std::net::TcpStream::from(self.fd.into_owned()?))
    }

    /// Receives into the spare capacity of `buf`; `Ok(0)` means the peer closed its side.
    /// A buffer without spare capacity is refused with `InvalidInput`.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        if buf.bytes_total() == buf.bytes_init() {
            return (Err(no_spare_capacity()), buf);
        }
        Op::new(ops::Recv {
            fd: self.fd.shared(),
            buf,
        })
        .await
    }

    /// Sends some of the initialized bytes of `buf`; returns how many.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        Op::new(ops::Send {
            fd: self.fd.shared(),
            buf,
            offset: 0,
        })
        .await
    }

    /// Sends all of the initialized bytes of `buf`.
    pub async fn send_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let fd = self.fd.shared();
        super::buf::write_all(buf, |buf, offset| {
            Op::new(ops::Send {
                fd: fd.clone(),
                buf,
                offset,
            })
        })
        .await
    }

    /// Shuts down one or both directions (shutdown(2)).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket().shutdown(how)
    }

    /// Disables Nagle's algorithm.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket().set_nodelay(nodelay)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket()
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("non-IP peer"))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket()
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("non-IP socket"))
    }

    /// The socket, for setting options this type does not wrap (buffer sizes, linger, ...).
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(self)
    }

    /// A probe of this connection that any thread may ask, at any time, whether the peer has
    /// closed it (see [`PeerClosedProbe`]).
    pub fn closed_probe(&self) -> io::Result<PeerClosedProbe> {
        Ok(PeerClosedProbe(self.socket().try_clone()?))
    }

    /// Closes the socket through the backend.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// A second descriptor of a connected socket (dup(2)), asked whether the peer closed or
/// reset the connection. It sees a FIN or RST as soon as the kernel has it, before the task
/// reading the connection has run (that task may sit on another shard, or wait for its turn),
/// and whatever data is still unread; it consumes nothing. Holding it keeps the socket open:
/// drop it when the connection ends.
#[derive(Debug)]
pub struct PeerClosedProbe(Socket);

impl PeerClosedProbe {
    /// Whether the connection has left the ESTABLISHED state: the peer closed or reset it
    /// (or this side did). A socket the kernel can't describe counts as closed.
    pub fn peer_has_closed(&self) -> bool {
        !super::sys::tcp_established(&self.0).unwrap_or(false)
    }
}

fn no_spare_capacity() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "buffer has no spare capacity to receive into",
    )
}

impl super::pipe::SpliceEnd for TcpStream {
    fn splice_end(&self) -> (super::fd::SharedFd, FdKind) {
        (self.fd.shared(), FdKind::Socket)
    }
}

super::fd::impl_as_fd!(TcpListener, TcpStream);
