//! Pipes and splice, the zero-copy path from files to sockets.

use std::io;
use std::os::fd::AsRawFd;

use super::fd::IoFd;
use super::op::Op;
use super::ops::{self, FdKind};
use super::sys;

/// A descriptor that can be one end of a [`splice`]: the runtime's files, sockets and pipes.
pub trait SpliceFd: SpliceEnd {}

impl<T: SpliceEnd> SpliceFd for T {}

/// Sealed: only the runtime's own descriptor types can be spliced, since the epoll backend must
/// know each end's kind and in-flight operations must share ownership of the descriptor.
pub trait SpliceEnd {
    /// The descriptor and its kind.
    fn splice_end(&self) -> (super::fd::SharedFd, FdKind);
}

/// A pipe, both ends non-blocking, for moving file data to a socket through the kernel.
#[derive(Debug)]
pub struct Pipe {
    reader: PipeReader,
    writer: PipeWriter,
    capacity: usize,
}

/// The read end of a [`Pipe`].
#[derive(Debug)]
pub struct PipeReader {
    fd: IoFd,
}

/// The write end of a [`Pipe`].
#[derive(Debug)]
pub struct PipeWriter {
    fd: IoFd,
}

impl Pipe {
    /// Creates a pipe, asking for a buffer of `capacity` bytes (F_SETPIPE_SZ; the kernel rounds
    /// up to pages and caps unprivileged users at /proc/sys/fs/pipe-max-size). Pass 0 to keep
    /// the default (16 pages: 64 KiB with 4 KiB pages, 1 MiB with 64 KiB pages).
    pub fn new(capacity: usize) -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        let capacity = if capacity == 0 {
            sys::pipe_capacity(write.as_raw_fd())?
        } else {
            sys::set_pipe_size(&write, capacity)?
        };
        Ok(Pipe {
            reader: PipeReader {
                fd: IoFd::new(read),
            },
            writer: PipeWriter {
                fd: IoFd::new(write),
            },
            capacity,
        })
    }

    /// The pipe's buffer size as granted by the kernel.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The read end.
    pub fn reader(&self) -> &PipeReader {
        &self.reader
    }

    /// The write end.
    pub fn writer(&self) -> &PipeWriter {
        &self.writer
    }
}

impl SpliceEnd for PipeReader {
    fn splice_end(&self) -> (super::fd::SharedFd, FdKind) {
        (self.fd.shared(), FdKind::Pipe)
    }
}

impl SpliceEnd for PipeWriter {
    fn splice_end(&self) -> (super::fd::SharedFd, FdKind) {
        (self.fd.shared(), FdKind::Pipe)
    }
}

/// Moves up to `len` bytes from `from` to `to` without copying them through user memory; one
/// side must be a pipe. `from_offset`/`to_offset` give file positions (`None` for pipes and
/// sockets). Returns the bytes moved; `Ok(0)` means end of input.
///
/// On the epoll backend, splices touching a regular file run on the blocking pool with the pipe
/// side non-blocking: a full pipe (when filling) or empty pipe (when draining) reports
/// `WouldBlock` rather than stalling; drain the pipe before filling it again. Other splices wait
/// for the socket side's readiness.
pub async fn splice(
    from: &impl SpliceFd,
    from_offset: Option<u64>,
    to: &impl SpliceFd,
    to_offset: Option<u64>,
    len: usize,
) -> io::Result<usize> {
    let (fd_in, kind_in) = from.splice_end();
    let (fd_out, kind_out) = to.splice_end();
    Op::new(ops::Splice::new(
        (fd_in, kind_in, from_offset),
        (fd_out, kind_out, to_offset),
        len,
    ))
    .await
}

super::fd::impl_as_fd!(PipeReader, PipeWriter);
