//! The current shard, as thread-local state of each shard thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use super::backend::IoBackend;
use super::blocking::BlockingPool;
use super::driver::Driver;
use super::executor::Executor;
use super::runtime::RuntimeShared;
use super::shard::ShardShared;

/// Everything a shard thread owns.
pub(crate) struct ShardContext {
    pub(crate) shared: Arc<ShardShared>,
    pub(crate) runtime: Arc<RuntimeShared>,
    pub(crate) executor: Executor,
    pub(crate) driver: RefCell<Driver>,
    pub(crate) backend: IoBackend,
    /// Runs what must not block the shard (see [`unblock`](super::blocking::unblock)).
    pub(crate) pool: Arc<BlockingPool>,
    /// Tasks waiting for room in a full mailbox to another shard.
    pub(crate) blocked_senders: RefCell<Vec<Waker>>,
    /// Tasks awaiting [`shutdown_requested`](super::shutdown_requested); each future takes
    /// its slot back when dropped, so tasks that wait and end don't pile up here.
    pub(crate) shutdown_waiters: RefCell<slab::Slab<Waker>>,
    pub(crate) shutdown_seen: Cell<bool>,
    /// [`RuntimeConfig::inline_file_writes`](super::RuntimeConfig::inline_file_writes).
    pub(crate) inline_file_writes: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ShardContext>>> = const { RefCell::new(None) };
}

pub(crate) fn enter(ctx: Rc<ShardContext>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(ctx));
}

pub(crate) fn exit() -> Option<Rc<ShardContext>> {
    CURRENT.with(|c| c.borrow_mut().take())
}

/// Runs `f` on the current shard's context, or returns `None` off a shard thread.
pub(crate) fn try_with<R>(f: impl FnOnce(&ShardContext) -> R) -> Option<R> {
    let ctx = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()?;
    Some(f(&ctx))
}

/// Runs `f` on the current shard's context.
///
/// # Panics
/// Off a shard thread: runtime operations only make sense on a shard.
pub(crate) fn with<R>(f: impl FnOnce(&ShardContext) -> R) -> R {
    try_with(f).expect("this Runnel runtime call must be made on a shard thread")
}

/// Runs `f` on the current shard's I/O driver.
pub(crate) fn with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    with(|ctx| f(&mut ctx.driver.borrow_mut()))
}

/// Like [`with_driver`], but `None` off a shard thread.
pub(crate) fn try_with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    try_with(|ctx| f(&mut ctx.driver.borrow_mut()))
}
