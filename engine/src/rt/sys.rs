//! Thin wrappers over the system calls the epoll backend, the blocking pool and the shard
//! plumbing make directly. Every call maps its failure to `io::Error` from `errno`; callers map
//! the errors they treat specially (EAGAIN, EINPROGRESS, EINTR) explicitly.
//!
//! The functions that take raw pointers are `unsafe`: their callers own the memory (an
//! operation's buffer) and guarantee it stays valid for the call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// The kernel's page size (sysconf(_SC_PAGESIZE)), read once: 4 KiB on x86_64, 4, 16 or 64 KiB
/// on aarch64 depending on the kernel's configuration. Pipe buffers and splice work in pages.
pub fn page_size() -> usize {
    static PAGE_SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf takes no pointers.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Whether a TCP socket is still in the ESTABLISHED state (TCP_INFO's `tcpi_state`): a FIN or
/// RST from the peer moves it on (to CLOSE_WAIT or CLOSE) the moment the kernel has it,
/// whatever data is still waiting to be read, and asking consumes nothing.
pub(crate) fn tcp_established(fd: &impl AsRawFd) -> io::Result<bool> {
    const TCP_ESTABLISHED: u8 = 1;
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, a live local of that size,
    // and stores the length it wrote in `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    if len < 1 {
        return Err(io::Error::other("TCP_INFO returned nothing"));
    }
    // SAFETY: zero-initialised above, and `tcpi_state` (the first byte) was written.
    let state = unsafe { info.assume_init() }.tcpi_state;
    Ok(state == TCP_ESTABLISHED)
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel to us and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A close-on-exec eventfd used to wake a parked shard. Non-blocking for epoll, which drains it
/// with read(2); blocking for io_uring, whose standing read would otherwise complete at once
/// with EAGAIN on kernels that can't do a non-blocking eventfd read asynchronously (< 5.12).
pub(crate) fn eventfd(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: plain system call without pointers.
    let fd = cvt(unsafe { libc::eventfd(0, flags) })?;
    Ok(owned(fd))
}

/// Adds one to an eventfd's counter. EAGAIN (counter saturated) still means "a wake is pending".
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local.
    let ret = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    debug_assert!(ret == 8 || io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock);
}

/// Resets an eventfd's counter; returns whether it was signalled.
pub(crate) fn eventfd_drain(fd: RawFd) -> bool {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live local.
    let ret = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
    ret == 8
}

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain system call without pointers.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    Ok(owned(fd))
}

pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: `event` is a live local the kernel only reads.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) })?;
    Ok(())
}

/// Waits for events; EINTR is reported as zero events.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut Vec<libc::epoll_event>,
    timeout_ms: i32,
) -> io::Result<()> {
    events.clear();
    let cap = events.capacity().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `cap` events into the vector's spare capacity.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), cap, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::EINTR) {
            Ok(())
        } else {
            Err(err)
        };
    }
    // SAFETY: the kernel initialized the first `n` entries.
    unsafe { events.set_len(n as usize) };
    Ok(())
}

/// # Safety
/// `ptr` must be valid for writes of `len` bytes for the duration of the call.
pub(crate) unsafe fn recv(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: guaranteed by the caller.
    cvt_size(unsafe { libc::recv(fd, ptr.cast(), len, libc::MSG_DONTWAIT) })
}

/// Sends without raising SIGPIPE on a closed peer (EPIPE is returned instead).
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for the duration of the call.
pub(crate) unsafe fn send(fd: RawFd, ptr: *const u8, len: usize) -> io::Result<usize> {
    // SAFETY: guaranteed by the caller.
    cvt_size(unsafe { libc::send(fd, ptr.cast(), len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// # Safety
/// `storage` and `len` must be valid for writes for the duration of the call.
pub(crate) unsafe fn accept(
    fd: RawFd,
    storage: *mut libc::sockaddr_storage,
    len: *mut libc::socklen_t,
) -> io::Result<OwnedFd> {
    // SAFETY: guaranteed by the caller.
    let ret = unsafe {
        libc::accept4(
            fd,
            storage.cast(),
            len,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    Ok(owned(cvt(ret)?))
}

/// # Safety
/// `ptr` must be valid for writes of `len` bytes for the duration of the call.
pub(crate) unsafe fn pread(fd: RawFd, ptr: *mut u8, len: usize, offset: u64) -> io::Result<usize> {
    // SAFETY: guaranteed by the caller.
    cvt_size(unsafe { libc::pread(fd, ptr.cast(), len, offset as libc::off_t) })
}

/// # Safety
/// `ptr` must be valid for reads of `len` bytes for the duration of the call.
pub(crate) unsafe fn pwrite(
    fd: RawFd,
    ptr: *const u8,
    len: usize,
    offset: u64,
) -> io::Result<usize> {
    // SAFETY: guaranteed by the caller.
    cvt_size(unsafe { libc::pwrite(fd, ptr.cast(), len, offset as libc::off_t) })
}

/// # Safety
/// Every iovec must be valid for reads of its length for the duration of the call.
pub(crate) unsafe fn pwritev(fd: RawFd, iovecs: &[libc::iovec], offset: u64) -> io::Result<usize> {
    let count = iovecs.len().min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: guaranteed by the caller; `count` never exceeds the slice.
    cvt_size(unsafe { libc::pwritev(fd, iovecs.as_ptr(), count, offset as libc::off_t) })
}

pub(crate) fn fsync(fd: RawFd, data_only: bool) -> io::Result<()> {
    if data_only {
        // SAFETY: plain system call without pointers.
        cvt(unsafe { libc::fdatasync(fd) })?;
    } else {
        // SAFETY: plain system call without pointers.
        cvt(unsafe { libc::fsync(fd) })?;
    }
    Ok(())
}

/// Puts thread `tid` (0: the calling thread) under `SCHED_FIFO` at `priority`, or back under
/// normal scheduling when `None`. On Linux this changes that one thread, not its process.
pub(crate) fn set_thread_scheduling(tid: libc::pid_t, priority: Option<i32>) -> io::Result<()> {
    let (policy, priority) = match priority {
        Some(p) => (libc::SCHED_FIFO, p),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call.
    cvt(unsafe { libc::sched_setscheduler(tid, policy, &param) })?;
    Ok(())
}

/// The calling thread's id.
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// CPU time thread `tid` of this process has used (other processes' threads: EINVAL). The
/// clock id is the kernel's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), as glibc's
/// pthread_getcpuclockid builds it.
pub(crate) fn thread_cpu_time(tid: libc::pid_t) -> io::Result<std::time::Duration> {
    const CPUCLOCK_SCHED: libc::clockid_t = 2;
    const CPUCLOCK_PERTHREAD_MASK: libc::clockid_t = 4;
    let clock = (!tid << 3) | CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD_MASK;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call.
    cvt(unsafe { libc::clock_gettime(clock, &mut ts) })?;
    Ok(std::time::Duration::new(
        ts.tv_sec as u64,
        ts.tv_nsec as u32,
    ))
}

/// The calling thread's `SCHED_FIFO` priority; `None` under any other policy.
pub fn thread_fifo_priority() -> io::Result<Option<i32>> {
    // SAFETY: plain system call without pointers.
    let policy = cvt(unsafe { libc::sched_getscheduler(0) })?;
    if policy != libc::SCHED_FIFO {
        return Ok(None);
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, writable sched_param that outlives the call.
    cvt(unsafe { libc::sched_getparam(0, &mut param) })?;
    Ok(Some(param.sched_priority))
}

pub(crate) fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain system call without pointers.
    cvt(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) })?;
    Ok(())
}

/// `off_in`/`off_out` of `None` use (and for pipes require) no offset.
pub(crate) fn splice(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    let mut off_in = off_in.map(|o| o as libc::loff_t);
    let mut off_out = off_out.map(|o| o as libc::loff_t);
    let p_in = off_in
        .as_mut()
        .map_or(std::ptr::null_mut(), |o| o as *mut _);
    let p_out = off_out
        .as_mut()
        .map_or(std::ptr::null_mut(), |o| o as *mut _);
    // SAFETY: the offset pointers are null or point to live locals.
    cvt_size(unsafe { libc::splice(fd_in, p_in, fd_out, p_out, len, flags) } as libc::ssize_t)
}

/// Closes a descriptor we own, reporting the kernel's verdict (close(2) can fail on NFS etc.).
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: we own `raw` (it came out of an OwnedFd) and never use it again.
    cvt(unsafe { libc::close(raw) })?;
    Ok(())
}

/// A close-on-exec pipe, both ends non-blocking, as (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: the kernel writes two descriptors into the local array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Resizes a pipe's buffer (F_SETPIPE_SZ); returns the size the kernel granted.
pub(crate) fn set_pipe_size(fd: &impl AsRawFd, size: usize) -> io::Result<usize> {
    let size = size.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: plain fcntl without pointers.
    Ok(cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) })? as usize)
}

/// Bytes waiting in a pipe (FIONREAD).
pub(crate) fn pipe_bytes_queued(fd: RawFd) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the live local.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) })?;
    Ok(queued.max(0) as usize)
}

/// A pipe's buffer size (F_GETPIPE_SZ).
pub(crate) fn pipe_capacity(fd: RawFd) -> io::Result<usize> {
    // SAFETY: plain fcntl without pointers.
    Ok(cvt(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) })? as usize)
}

/// Keeps freed heap memory in the process for reuse. Each request's frame (up to a MiB for a
/// produce of large batches) is allocated and freed once it is answered; by default glibc then
/// shrinks the shard's heap (`madvise(MADV_DONTNEED)`) and the next request faults every page
/// in again, zeroed (bench/RESULTS.md: up to 7% of a pinned shard's core), and on a VM that
/// hands freed memory back to its host those are host faults. Setting either value stops
/// glibc's own adjustment of both, so both are set.
pub(crate) fn keep_freed_heap_memory() {
    #[cfg(target_env = "gnu")]
    {
        /// Largest block served from the heaps rather than by its own mmap, so a frame up to
        /// this size reuses heap memory: the most glibc takes (half a thread arena's heap).
        const HEAP_BLOCK_MAX: libc::c_int = 32 << 20;
        /// Free memory a heap may keep at its top: a thread arena's whole heap, so shard
        /// heaps are never shrunk.
        const HEAP_KEEP_FREE: libc::c_int = 64 << 20;
        // SAFETY: mallopt only changes allocator parameters; it has no pointer arguments.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BLOCK_MAX)
                & libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_KEEP_FREE)
        };
        debug_assert_eq!(set, 1, "glibc refused a heap threshold");
    }
}

/// Ignores SIGPIPE process-wide: a splice or write into a socket whose peer went away must fail
/// with EPIPE rather than kill the broker.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
