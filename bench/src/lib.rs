//! Runnel's benchmark tooling: the `runnel-bench` binary's building blocks.
//!
//! - [`limits`]: this machine's loopback, page-cache and fdatasync limits, the yardsticks every
//!   reported figure is divided by.

pub mod limits;
