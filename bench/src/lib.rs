//! Runnel's benchmark tooling: the `runnel-bench` binary's building blocks.
//!
//! - [`client`]: a blocking Kafka connection on the kafka-protocol codec, and the connection
//!   helpers the load generator's modules share.
//! - [`workload`]: workload files; [`runner`]: the load generator that runs them on Runnel's
//!   runtime; [`latency`]: HdrHistograms and the coordinated-omission correction.
//! - [`rebalance`]: group members on the raw protocol, timing rebalances.
//! - [`limits`]: this machine's loopback, page-cache and fdatasync limits, the yardsticks every
//!   reported figure is divided by.

pub mod client;
pub mod compression;
pub mod fetcher;
pub mod group;
pub mod latency;
pub mod limits;
pub mod plot;
pub mod rate_search;
pub mod rebalance;
pub mod round_trip;
pub mod runner;
pub mod workload;
