//! Runnel's engine: the thread-per-core runtime ([`rt`]) and the storage engine ([`log`]).
//!
//! The engine knows nothing of Kafka requests; `runnel-net` builds the broker on top of it.

pub mod flush;
pub mod log;
pub mod rt;
