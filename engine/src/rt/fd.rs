//! A descriptor owned by a shard.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::context;
use super::op::Op;
use super::ops;

/// A descriptor shared between its owner and the operations in flight on it.
///
/// Operations hold a clone, so the descriptor is closed only when the owner is gone *and* the
/// last operation has completed: an abandoned operation that the kernel (or the blocking pool)
/// still runs can never find its descriptor number reused by an unrelated file or socket.
pub(crate) type SharedFd = Arc<OwnedFd>;

/// An owned descriptor used with the current shard's driver.
///
/// Not `Send`: the epoll backend keeps per-descriptor registrations on the shard that used the
/// descriptor, and closing it elsewhere would leave a stale registration behind. Move sockets
/// between threads as std types (`into_std` / `from_std`) instead.
#[derive(Debug)]
pub(crate) struct IoFd {
    fd: Option<SharedFd>,
    _not_send: PhantomData<*const ()>,
}

impl IoFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        IoFd {
            fd: Some(Arc::new(fd)),
            _not_send: PhantomData,
        }
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// A handle for an operation on this descriptor.
    pub(crate) fn shared(&self) -> SharedFd {
        self.fd
            .clone()
            .expect("IoFd always holds a descriptor until consumed")
    }

    /// Releases the descriptor from the driver. `Err` carries it back while operations still
    /// hold it.
    fn release(mut self) -> Result<OwnedFd, SharedFd> {
        let fd = self
            .fd
            .take()
            .expect("IoFd always holds a descriptor until consumed");
        forget_registration(fd.as_raw_fd());
        Arc::try_unwrap(fd)
    }

    /// Releases the descriptor from the driver and returns it, duplicating it if abandoned
    /// operations still hold the original.
    pub(crate) fn into_owned(self) -> io::Result<OwnedFd> {
        match self.release() {
            Ok(fd) => Ok(fd),
            Err(shared) => shared.try_clone(),
        }
    }

    /// Closes through the backend, reporting the kernel's verdict. If abandoned operations
    /// still hold the descriptor, it closes when the last of them completes.
    pub(crate) async fn close(self) -> io::Result<()> {
        let fd = match self.release() {
            Ok(fd) => fd,
            Err(_still_in_use) => return Ok(()),
        };
        if context::try_with(|_| ()).is_none() {
            return super::sys::close(fd);
        }
        Op::new(ops::Close { fd: Some(fd) }).await
    }
}

fn forget_registration(fd: RawFd) {
    context::try_with_driver(|driver| driver.forget_fd(fd));
}

impl Drop for IoFd {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            forget_registration(fd.as_raw_fd());
        }
    }
}

/// `AsRawFd` and `AsFd` for types holding their descriptor in a field `fd: IoFd`.
macro_rules! impl_as_fd {
    ($($ty:ty),*) => {$(
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.fd.raw()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                // SAFETY: the descriptor stays open for as long as `self` is borrowed.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd.raw()) }
            }
        }
    )*};
}

pub(crate) use impl_as_fd;
