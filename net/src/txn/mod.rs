//! Transactions (KIP-98): the transaction coordinator and the markers it writes.
//!
//! - [`records`]: the records of `__transaction_state`, in Kafka's formats.
//! - [`metadata`]: one transactional id's metadata and Kafka's legal transitions.
//! - [`coordinator`]: each shard's driver of the state machine (loading, storing, markers,
//!   ticks); [`markers`]: writing a transaction's markers to its partitions.
//! - [`state_topic`]: `__transaction_state`'s settings and which partition an id maps to.
//! - [`state_machine`]: a shard's coordinator ([`state_machine::Transactions`]): the rules of
//!   InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions and
//!   ListTransactions, timeouts, expiration, loading; it asks its driver to store records and
//!   to write markers, and answers requests once their records are stored.
//!
//! A transactional id's coordinator is the shard leading `__transaction_state` partition
//! abs(hash(id)) % partitions, Kafka's rule (the one groups use).

pub mod coordinator;
pub mod markers;
pub mod metadata;
pub mod records;
pub mod state_machine;
pub mod state_topic;
