//! Runnel's benchmark tooling: the `runnel-bench` binary's building blocks.
//!
//! - [`client`]: a blocking Kafka connection on the kafka-protocol codec, and the connection
//!   helpers the load generator's modules share.
//! - [`workload`]: workload files; [`runner`]: the load generator that runs them on Runnel's
//!   runtime; [`latency`]: HdrHistograms and the coordinated-omission correction.
//! - [`rebalance`]: group members on the raw protocol, timing rebalances; [`transactional`]: a
//!   transactional producer's requests on the blocking client.
//! - [`pinned`]: Apache Iggy's pinned producer and consumer benchmarks on Kafka's protocol, for
//!   side-by-side runs; [`cpu`]: the CPU time a process used.
//! - [`limits`]: this machine's loopback, page-cache and fdatasync limits, the yardsticks every
//!   reported figure is divided by.
//! - [`engine_runtime`]: the one-shard runtime the storage benchmarks run the engine on.

pub mod client;
pub mod compression;
pub mod cpu;
pub mod fetcher;
pub mod group;
pub mod latency;
pub mod limits;
pub mod pinned;
pub mod plot;
pub mod rate_search;
pub mod rebalance;
pub mod round_trip;
pub mod runner;
pub mod transactional;
pub mod workload;

/// A one-shard runtime on io_uring when the kernel has it (epoll otherwise), for the
/// criterion benchmarks of the storage engine.
pub fn engine_runtime() -> runnel_engine::rt::Runtime {
    use runnel_engine::rt::{self, BackendChoice, Runtime, RuntimeConfig};
    let backend = if rt::probe_uring().is_ok() {
        BackendChoice::Uring
    } else {
        BackendChoice::Epoll
    };
    let config = RuntimeConfig {
        cores: 1,
        backend,
        ..RuntimeConfig::default()
    };
    Runtime::start(config, |_| async {}).unwrap()
}
