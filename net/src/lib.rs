//! Runnel's network side: configuration, listeners, the Kafka wire protocol ([`kafka`]) and its
//! handlers ([`handlers`], one file per API). The `runnel` binary is built from this crate.

pub mod cluster;
pub mod config;
pub mod data_dir;
pub mod groups;
pub mod handlers;
pub mod kafka;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod signals;
pub mod start_gate;
