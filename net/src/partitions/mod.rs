//! The broker's topics and partitions: the registry ([`topics`]), config schemas and
//! broker-level configs ([`configs`]), a topic's log settings ([`topic_config`]), the partition
//! key ([`TopicPartition`]), the coordinators' internal topics ([`internal_topics`]), a partition's log and replica state ([`partition`]), the
//! partitions that failed to open ([`offline`]), reading a log from its start for a coordinator
//! ([`replay`]), each shard's share ([`shard`]), who decides topic changes ([`authority`]: this broker, or
//! the cluster's controller) and its log
//! cleaner's settings ([`cleaner_config`]), the brokers
//! replicas may live on ([`brokers`]) and the checks of replica assignments and replication
//! factors against them ([`assignment`]).

pub mod assignment;
pub mod authority;
pub mod broker_configs;
pub mod brokers;
pub mod cleaner_config;
pub mod configs;
pub mod internal_topics;
pub mod offline;
pub mod partition;
pub mod replay;
pub mod shard;
#[cfg(test)]
pub mod test_shard;
pub mod topic_config;
mod topic_partition;
pub mod topics;

pub use partition::{Partition, Role};
pub use topic_partition::TopicPartition;
