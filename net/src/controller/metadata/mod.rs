//! The cluster metadata log's state machine (Kafka's KRaft metadata), sans-IO.

mod codec;
pub mod records;

#[cfg(test)]
mod test_support;

pub use codec::DecodeError;
pub use records::*;
