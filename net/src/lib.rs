//! Runnel's network side: configuration, listeners, the Kafka wire protocol ([`kafka`]) and its
//! handlers ([`handlers`], one file per API). The `runnel` binary is built from this crate.
//!
//! Modules depend only on those listed before them here (the engine below them all), never on
//! one after:
//! [`replication`] (ISR, high watermark and follower fetch state machines; pure, using nothing
//! of the crate, so the partition registry can hold them) <
//! [`partitions`] (topics, partitions and their logs on each shard) < [`config`] <
//! [`conn_limits`] < [`metrics`]
//! < [`kafka`] (the protocol) < [`route`] (a partition's owner, scatter and gather) <
//! [`groups`] < [`txn`] < [`controller`] (the metadata quorum) < [`handlers`] < [`listener`].

pub mod replication;

pub mod partitions;

pub mod config;
pub mod conn_limits;
pub mod data_dir;
pub mod limits;
pub mod producer_ids;
pub mod signals;
pub mod start_gate;

pub mod metrics;

pub mod kafka;

pub mod route;

pub mod groups;

pub mod txn;

pub mod controller;

pub mod handlers;

pub mod listener;
