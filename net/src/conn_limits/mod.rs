//! Broker-wide limits on connections and the requests they hold, shared by every shard:
//! Kafka's `queued.max.request.bytes` ([`queued`]) and `max.connections.per.ip`
//! ([`per_ip`]), and rate-limited warnings for refused or misbehaving connections
//! ([`log_limit`]), so that a flood of bad connections can't flood the log too.
//!
//! They are process-wide statics, configured once at start-up: the broker is one process,
//! and the shards and the metrics page all read them without plumbing.

pub mod log_limit;
pub mod per_ip;
pub mod queued;
