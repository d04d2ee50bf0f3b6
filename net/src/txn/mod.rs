//! Transactions (KIP-98).

pub mod state_topic;
