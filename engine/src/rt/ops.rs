//! The operations: plain data that owns whatever the kernel touches, and how each backend runs
//! them. Public wrappers live in `net`, `fs`, `pipe` and `time`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, squeue, types};

use super::buf::{self, IoBuf, IoBufMut};
use super::fd::SharedFd;
use super::op::{EpollPlan, Interest, OpSpec};
use super::sys;

/// io_uring lengths are 32-bit; longer requests are clamped (callers loop on short counts).
fn uring_len(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

/// Hands a read's buffer back with the bytes the kernel wrote counted in.
fn finish_read<B: IoBufMut>(result: io::Result<u32>, mut buf: B) -> (io::Result<usize>, B) {
    let result = result.map(|n| {
        buf::advance_init(&mut buf, n as usize);
        n as usize
    });
    (result, buf)
}

pub(crate) struct Accept {
    pub(crate) fd: SharedFd,
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl Accept {
    pub(crate) fn new(fd: SharedFd) -> Self {
        Accept {
            fd,
            // SAFETY: all-zero bytes are a valid (unspecified-family) sockaddr_storage.
            storage: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }
}

impl OpSpec for Accept {
    type Output = io::Result<(OwnedFd, socket2::SockAddr)>;

    fn uring_entry(&mut self) -> squeue::Entry {
        let storage = (&mut self.storage as *mut libc::sockaddr_storage).cast();
        opcode::Accept::new(types::Fd(self.fd.as_raw_fd()), storage, &mut self.len)
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Readiness {
            fd: self.fd.as_raw_fd(),
            interest: Interest::Read,
        }
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        // SAFETY: storage and len are fields of self, alive for the call.
        let fd = unsafe { sys::accept(self.fd.as_raw_fd(), &mut self.storage, &mut self.len) }?;
        Ok(std::os::fd::IntoRawFd::into_raw_fd(fd) as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        // SAFETY: a successful accept returned a new descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result? as RawFd) };
        // SAFETY: the kernel filled `storage` and set `len` for this connection.
        let addr = unsafe { socket2::SockAddr::new(self.storage, self.len) };
        Ok((fd, addr))
    }

    fn orphaned(self: Box<Self>, result: io::Result<u32>) {
        if let Ok(fd) = result {
            // SAFETY: nobody took ownership of the accepted descriptor; close it here.
            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
    }
}

pub(crate) struct Connect {
    pub(crate) fd: SharedFd,
    pub(crate) addr: socket2::SockAddr,
    /// epoll: connect(2) was issued and returned EINPROGRESS.
    started: bool,
}

impl Connect {
    pub(crate) fn new(fd: SharedFd, addr: socket2::SockAddr) -> Self {
        Connect {
            fd,
            addr,
            started: false,
        }
    }
}

impl OpSpec for Connect {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> squeue::Entry {
        opcode::Connect::new(
            types::Fd(self.fd.as_raw_fd()),
            self.addr.as_ptr().cast(),
            self.addr.len(),
        )
        .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Readiness {
            fd: self.fd.as_raw_fd(),
            interest: Interest::Write,
        }
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let socket = socket2::SockRef::from(&*self.fd);
        if !self.started {
            self.started = true;
            return match socket.connect(&self.addr) {
                Ok(()) => Ok(0),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    Err(io::Error::from_raw_os_error(libc::EAGAIN))
                }
                Err(e) => Err(e),
            };
        }
        // Writable after EINPROGRESS: SO_ERROR tells success from failure.
        match socket.take_error()? {
            Some(e) => Err(e),
            None => match socket.peer_addr() {
                Ok(_) => Ok(0),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    Err(io::Error::from_raw_os_error(libc::EAGAIN))
                }
                Err(e) => Err(e),
            },
        }
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

pub(crate) struct Recv<B> {
    pub(crate) fd: SharedFd,
    pub(crate) buf: B,
}

impl<B: IoBufMut> OpSpec for Recv<B> {
    type Output = (io::Result<usize>, B);

    fn uring_entry(&mut self) -> squeue::Entry {
        let (ptr, len) = buf::spare_parts(&mut self.buf);
        opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, uring_len(len)).build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Readiness {
            fd: self.fd.as_raw_fd(),
            interest: Interest::Read,
        }
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let (ptr, len) = buf::spare_parts(&mut self.buf);
        // SAFETY: ptr/len describe the buffer's spare capacity, owned by self.
        unsafe { sys::recv(self.fd.as_raw_fd(), ptr, uring_len(len) as usize) }.map(|n| n as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        finish_read(result, self.buf)
    }
}

pub(crate) struct Send<B> {
    pub(crate) fd: SharedFd,
    pub(crate) buf: B,
    pub(crate) offset: usize,
}

impl<B: IoBuf> OpSpec for Send<B> {
    type Output = (io::Result<usize>, B);

    fn uring_entry(&mut self) -> squeue::Entry {
        let (ptr, len) = buf::init_parts_from(&self.buf, self.offset);
        opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, uring_len(len))
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Readiness {
            fd: self.fd.as_raw_fd(),
            interest: Interest::Write,
        }
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let (ptr, len) = buf::init_parts_from(&self.buf, self.offset);
        // SAFETY: ptr/len describe initialized bytes of the buffer owned by self.
        unsafe { sys::send(self.fd.as_raw_fd(), ptr, uring_len(len) as usize) }.map(|n| n as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

pub(crate) struct ReadAt<B> {
    pub(crate) fd: SharedFd,
    pub(crate) buf: B,
    pub(crate) offset: u64,
}

impl<B: IoBufMut> OpSpec for ReadAt<B> {
    type Output = (io::Result<usize>, B);

    fn uring_entry(&mut self) -> squeue::Entry {
        let (ptr, len) = buf::spare_parts(&mut self.buf);
        opcode::Read::new(types::Fd(self.fd.as_raw_fd()), ptr, uring_len(len))
            .offset(self.offset)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let (ptr, len) = buf::spare_parts(&mut self.buf);
        // SAFETY: ptr/len describe the buffer's spare capacity, owned by self.
        unsafe {
            sys::pread(
                self.fd.as_raw_fd(),
                ptr,
                uring_len(len) as usize,
                self.offset,
            )
        }
        .map(|n| n as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        finish_read(result, self.buf)
    }
}

pub(crate) struct WriteAt<B> {
    pub(crate) fd: SharedFd,
    pub(crate) buf: B,
    /// Start within the buffer (for continuing a short write).
    pub(crate) buf_offset: usize,
    pub(crate) offset: u64,
}

impl<B: IoBuf> OpSpec for WriteAt<B> {
    type Output = (io::Result<usize>, B);

    fn uring_entry(&mut self) -> squeue::Entry {
        let (ptr, len) = buf::init_parts_from(&self.buf, self.buf_offset);
        opcode::Write::new(types::Fd(self.fd.as_raw_fd()), ptr, uring_len(len))
            .offset(self.offset)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let (ptr, len) = buf::init_parts_from(&self.buf, self.buf_offset);
        // SAFETY: ptr/len describe initialized bytes of the buffer owned by self.
        unsafe {
            sys::pwrite(
                self.fd.as_raw_fd(),
                ptr,
                uring_len(len) as usize,
                self.offset,
            )
        }
        .map(|n| n as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

/// Most buffers one `pwritev` takes (Linux's UIO_MAXIOV); longer lists are written in rounds.
const MAX_IOVECS: usize = 1024;

/// The iovec array of a vectored write.
struct IoVecs(Vec<libc::iovec>);

// SAFETY: the iovecs point into the `Bytes` of the same `WritevAt`, which owns them, never
// mutates them and moves with them (to the blocking pool, under epoll).
unsafe impl std::marker::Send for IoVecs {}

/// pwritev(2) of the concatenation of `parts`, from `skip` bytes into it: one system call
/// (one io-wq hand-off on io_uring) for a write gathered from several buffers.
pub(crate) struct WritevAt {
    fd: SharedFd,
    parts: Vec<bytes::Bytes>,
    iovecs: IoVecs,
    offset: u64,
}

impl WritevAt {
    pub(crate) fn new(fd: SharedFd, parts: Vec<bytes::Bytes>, skip: usize, offset: u64) -> Self {
        let mut iovecs = Vec::with_capacity(parts.len().min(MAX_IOVECS));
        let mut skip = skip;
        for part in &parts {
            if iovecs.len() == MAX_IOVECS {
                break;
            }
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let rest = &part[skip..];
            skip = 0;
            iovecs.push(libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            });
        }
        WritevAt {
            fd,
            parts,
            iovecs: IoVecs(iovecs),
            offset,
        }
    }
}

impl OpSpec for WritevAt {
    type Output = (io::Result<usize>, Vec<bytes::Bytes>);

    fn uring_entry(&mut self) -> squeue::Entry {
        let iovecs = &self.iovecs.0;
        opcode::Writev::new(
            types::Fd(self.fd.as_raw_fd()),
            iovecs.as_ptr(),
            iovecs.len() as u32,
        )
        .offset(self.offset)
        .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        let iovecs = &self.iovecs.0;
        // SAFETY: the iovecs describe bytes of `self.parts`, owned by self.
        unsafe { sys::pwritev(self.fd.as_raw_fd(), iovecs, self.offset) }
            .map(|n| n.min(u32::MAX as usize) as u32)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.parts)
    }
}

/// fsync(2), or fdatasync(2) when `data_only`.
pub(crate) struct Fsync {
    pub(crate) fd: SharedFd,
    pub(crate) data_only: bool,
}

impl OpSpec for Fsync {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> squeue::Entry {
        let flags = if self.data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd.as_raw_fd()))
            .flags(flags)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        sys::fsync(self.fd.as_raw_fd(), self.data_only).map(|()| 0)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

pub(crate) struct Fallocate {
    pub(crate) fd: SharedFd,
    pub(crate) mode: i32,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl OpSpec for Fallocate {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> squeue::Entry {
        opcode::Fallocate::new(types::Fd(self.fd.as_raw_fd()), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        sys::fallocate(self.fd.as_raw_fd(), self.mode, self.offset, self.len).map(|()| 0)
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

pub(crate) struct Splice {
    pub(crate) fd_in: SharedFd,
    pub(crate) off_in: Option<u64>,
    pub(crate) fd_out: SharedFd,
    pub(crate) off_out: Option<u64>,
    pub(crate) len: usize,
    plan: EpollPlan,
    /// The pipe end and whether this splice drains it (pipe -> x) rather than fills it.
    pipe: Option<(RawFd, PipeRole)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PipeRole {
    Drained,
    Filled,
}

impl Splice {
    /// Works out how the splice waits. The runtime only ever waits for the *socket* end: an
    /// empty input pipe or a full output pipe is the caller's to resolve (it owns the pipe), so
    /// that case completes with `WouldBlock` instead of waiting for an edge that may never come.
    /// Regular-file splices run on the epoll backend's pool.
    pub(crate) fn new(
        (fd_in, kind_in, off_in): (SharedFd, FdKind, Option<u64>),
        (fd_out, kind_out, off_out): (SharedFd, FdKind, Option<u64>),
        len: usize,
    ) -> Self {
        let (raw_in, raw_out) = (fd_in.as_raw_fd(), fd_out.as_raw_fd());
        let (plan, pipe) = match (kind_in, kind_out) {
            (FdKind::File, FdKind::Pipe) => {
                (EpollPlan::Blocking, Some((raw_out, PipeRole::Filled)))
            }
            (FdKind::Pipe, FdKind::File) => {
                (EpollPlan::Blocking, Some((raw_in, PipeRole::Drained)))
            }
            (FdKind::Socket, FdKind::Pipe) => (
                EpollPlan::Readiness {
                    fd: raw_in,
                    interest: Interest::Read,
                },
                Some((raw_out, PipeRole::Filled)),
            ),
            (FdKind::Pipe, FdKind::Socket) => (
                EpollPlan::Readiness {
                    fd: raw_out,
                    interest: Interest::Write,
                },
                Some((raw_in, PipeRole::Drained)),
            ),
            // Pipe to pipe (either may be the cause of EAGAIN, and both are the caller's), or a
            // pair splice(2) rejects with EINVAL: nothing to wait for.
            _ => (EpollPlan::Blocking, None),
        };
        Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            plan,
            pipe,
        }
    }

    /// Whether an EAGAIN came from the pipe end (empty when draining, full when filling).
    fn pipe_not_ready(&self) -> bool {
        match self.pipe {
            None => matches!(self.plan, EpollPlan::Blocking),
            Some((fd, role)) => {
                let queued = sys::pipe_bytes_queued(fd).unwrap_or(0);
                match role {
                    PipeRole::Drained => queued == 0,
                    PipeRole::Filled => {
                        let capacity = sys::pipe_capacity(fd).unwrap_or(usize::MAX);
                        // Free space below a page counts as full: splice moves whole pages
                        // (4 KiB on x86_64, up to 64 KiB on aarch64 kernels).
                        capacity.saturating_sub(queued) < sys::page_size()
                    }
                }
            }
        }
    }
}

fn pipe_not_ready_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "splice: the pipe is empty (draining) or full (filling)",
    )
}

/// What kind of descriptor a splice end is; decides how the epoll backend waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// A regular file (blocking I/O, run on the pool).
    File,
    /// A socket (readiness-driven).
    Socket,
    /// A pipe (never waited for: the caller fills and drains it).
    Pipe,
}

impl OpSpec for Splice {
    type Output = io::Result<usize>;

    fn uring_entry(&mut self) -> squeue::Entry {
        let off_in = self.off_in.map_or(-1, |o| o as i64);
        let off_out = self.off_out.map_or(-1, |o| o as i64);
        opcode::Splice::new(
            types::Fd(self.fd_in.as_raw_fd()),
            off_in,
            types::Fd(self.fd_out.as_raw_fd()),
            off_out,
            uring_len(self.len),
        )
        .build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        self.plan
    }

    fn retry_on_readiness(&self) -> bool {
        !self.pipe_not_ready()
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        // Non-blocking on the pipe side everywhere: a full (or empty) pipe must come back as
        // EAGAIN, never park a pool thread forever.
        let flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
        let (fd_in, fd_out) = (self.fd_in.as_raw_fd(), self.fd_out.as_raw_fd());
        match sys::splice(
            fd_in,
            self.off_in,
            fd_out,
            self.off_out,
            uring_len(self.len) as usize,
            flags,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && self.pipe_not_ready() => {
                Err(pipe_not_ready_error())
            }
            result => result.map(|n| n as u32),
        }
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> io::Result<usize> {
        match result {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(pipe_not_ready_error()),
            result => result.map(|n| n as usize),
        }
    }
}

pub(crate) struct Close {
    pub(crate) fd: Option<OwnedFd>,
}

impl OpSpec for Close {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> squeue::Entry {
        // The kernel closes the descriptor: give up ownership without closing it ourselves.
        let fd = self
            .fd
            .take()
            .map_or(-1, std::os::fd::IntoRawFd::into_raw_fd);
        opcode::Close::new(types::Fd(fd)).build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Blocking
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        match self.fd.take() {
            Some(fd) => sys::close(fd).map(|()| 0),
            None => Ok(0),
        }
    }

    fn complete(self: Box<Self>, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}

pub(crate) struct Timeout {
    pub(crate) timespec: types::Timespec,
    pub(crate) duration: Duration,
}

/// Longest sleep: a timespec of `Duration::MAX` overflows the kernel's signed seconds, and
/// `Instant + Duration::MAX` overflows on the epoll backend.
const MAX_SLEEP: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Timeout {
    pub(crate) fn new(duration: Duration) -> Self {
        let duration = duration.min(MAX_SLEEP);
        Timeout {
            timespec: types::Timespec::from(duration),
            duration,
        }
    }
}

impl OpSpec for Timeout {
    type Output = ();

    fn uring_entry(&mut self) -> squeue::Entry {
        opcode::Timeout::new(&self.timespec).build()
    }

    fn epoll_plan(&self) -> EpollPlan {
        EpollPlan::Timer(self.duration)
    }

    fn run_sync(&mut self) -> io::Result<u32> {
        unreachable!("timers are handled by the epoll driver")
    }

    /// io_uring reports expiry as -ETIME; a cancelled timer never reaches `complete`.
    fn complete(self: Box<Self>, _result: io::Result<u32>) {}
}
