//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::future::Future;

use std::path::Path;

use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::{Log, LogConfig, OpenOptions, RecoveryReport};
use runnel_engine::rt::{BackendChoice, Runtime, RuntimeConfig};

/// Log settings for tests: no syncs, nothing retained by time.
pub fn quiet_log_config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Opens (recovering) the log in `dir`.
pub async fn open_log(dir: &Path, config: LogConfig) -> (Log, RecoveryReport) {
    Log::open(dir, config, OpenOptions::default())
        .await
        .expect("log opens")
}

/// Simulates a crash: the log is dropped without `close` (its background tasks are let finish
/// first, as they would be killed with a real process).
pub async fn crash_log(log: Log) {
    log.quiesce().await;
    drop(log);
}

/// Backends under test: `RUNNEL_TEST_BACKENDS` (comma-separated `uring`, `epoll`), default both.
/// Under qemu-user, which has no io_uring, the test script sets it to `epoll`.
pub fn backend_enabled(name: &str) -> bool {
    match std::env::var("RUNNEL_TEST_BACKENDS") {
        Ok(list) => list.split(',').any(|b| b.trim() == name),
        Err(_) => true,
    }
}

pub fn config(backend: BackendChoice, cores: usize) -> RuntimeConfig {
    RuntimeConfig {
        cores,
        backend,
        pin_threads: false,
        ..RuntimeConfig::default()
    }
}

/// Starts a runtime with idle shards.
pub fn runtime(backend: BackendChoice, cores: usize) -> Runtime {
    Runtime::start(config(backend, cores), |_| async {}).expect("runtime starts")
}

/// Runs `work` on shard 0 of a fresh one-shard runtime and returns its output.
pub fn run<F, Fut>(backend: BackendChoice, work: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let rt = runtime(backend, 1);
    let output = rt.handle().run_on(0, work).expect("shard runs the work");
    rt.join().expect("runtime stops cleanly");
    output
}

/// Defines each test twice, once per backend, in modules `uring` and `epoll`.
#[macro_export]
macro_rules! on_both_backends {
    ($(fn $name:ident($backend:ident) $body:block)*) => {
        mod uring {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    if !$crate::common::backend_enabled("uring") {
                        eprintln!("io_uring backend not under test here (RUNNEL_TEST_BACKENDS)");
                        return;
                    }
                    let $backend = runnel_engine::rt::BackendChoice::Uring;
                    $body
                }
            )*
        }
        mod epoll {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    if !$crate::common::backend_enabled("epoll") {
                        eprintln!("epoll backend not under test here (RUNNEL_TEST_BACKENDS)");
                        return;
                    }
                    let $backend = runnel_engine::rt::BackendChoice::Epoll;
                    $body
                }
            )*
        }
    };
}

/// Waits (up to 20 s, for slow emulated runs) until the shard has no operation in flight, and
/// returns its stats then. Cancellations and abandoned pool jobs finish asynchronously.
pub async fn settle() -> runnel_engine::rt::ShardStats {
    use runnel_engine::rt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stats = rt::stats();
        if stats.driver.ops_in_flight == 0 || std::time::Instant::now() > deadline {
            return stats;
        }
        rt::sleep(std::time::Duration::from_millis(5)).await;
    }
}
