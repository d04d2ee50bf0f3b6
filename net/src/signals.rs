//! SIGTERM and SIGINT: the first asks for a clean shutdown, a second exits at once.
//!
//! The signals are blocked in every thread (the mask is inherited, so this must run before any
//! thread starts) and taken synchronously with sigwait on the main thread, so no handler code
//! runs in signal context.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

fn shutdown_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts afterwards.
pub fn block_shutdown_signals() -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&shutdown_signals()), None)
}

/// Waits for SIGTERM or SIGINT (blocked beforehand) and returns which arrived.
pub fn wait_for_shutdown_signal() -> nix::Result<Signal> {
    shutdown_signals().wait()
}
