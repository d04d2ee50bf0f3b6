//! Kafka's wire protocol on a shard: framing, error codes, the dispatch table's shape, the
//! hand-written Fetch response, connections with responses in request order.
//!
//! Nothing here knows a handler: the broker's table (`crate::handlers::APIS`) is handed to each
//! connection by the listener, so this layer sits below the handlers and everything they use.

pub mod authorized_operations;
pub mod connection;
pub mod decode_budget;
pub mod dispatch;
pub mod error_code;
pub mod fetch_response;
pub mod frame;
pub mod outbox;
pub mod send;

pub use connection::{serve_connection, BrokerInfo};
