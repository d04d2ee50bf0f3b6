//! Runnel's benchmark tooling: the `runnel-bench` binary's building blocks.
//!
//! - [`client`]: a blocking Kafka connection on the kafka-protocol codec.
//! - [`rebalance`]: group members on the raw protocol, timing rebalances.
//! - [`limits`]: this machine's loopback, page-cache and fdatasync limits, the yardsticks every
//!   reported figure is divided by.

pub mod client;
pub mod limits;
pub mod rebalance;
