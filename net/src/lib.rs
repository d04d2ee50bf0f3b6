//! Runnel's network side: configuration, listeners and (coming with the broker issue) the Kafka
//! wire protocol and its handlers. The `runnel` binary is built from this crate.

pub mod config;
pub mod data_dir;
pub mod listener;
pub mod signals;
