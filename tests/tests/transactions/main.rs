//! Transactions (KIP-98) against the real broker: with librdkafka ([`clients`]: isolation
//! levels, fencing, timeouts, consume-transform-produce through SIGKILLs) and request by
//! request ([`apis`]: every transaction API's answers and Kafka's error codes, markers,
//! the last stable offset and pending offsets across a restart).

mod apis;
mod clients;
