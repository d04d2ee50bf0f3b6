//! Kafka's wire protocol on a shard: framing, request headers, dispatch to the handlers in
//! [`crate::handlers`], responses in request order.

pub mod connection;
pub mod fetch_response;
pub mod frame;
pub mod outbox;
pub mod send;
pub mod versions;

pub use connection::{serve_connection, BrokerInfo};
