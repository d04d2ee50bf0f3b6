//! The broker's topics and partitions: the registry ([`topics`]), topic configs
//! ([`topic_config`]), and each shard's share ([`shard`]).

pub mod shard;
pub mod topic_config;
pub mod topics;
