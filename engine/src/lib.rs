//! Runnel's engine: the thread-per-core runtime ([`rt`]) and, later, the storage engine.
//!
//! The engine knows nothing of Kafka requests; `runnel-net` builds the broker on top of it.

pub mod rt;
