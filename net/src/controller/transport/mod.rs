//! How controllers and brokers talk over the controller listener.
//!
//! Every frame is Kafka's framing (a 4-byte size, then the body), and a body starts with a
//! [`Kind`] byte: a Raft message between voters (one way: Raft resends what is lost), or a
//! broker's request to the active controller and its response (Kafka's own messages:
//! BrokerRegistration, BrokerHeartbeat, CreateTopics...). Voters send to each other over
//! [`PeerLink`]s, one outbound connection per peer; whatever arrives is read by [`serve`].
//! Brokers call the controller with an [`RpcClient`].

mod frame;
mod inbound;
mod outbound;
mod rpc;

pub use frame::{decode_body, encode_frame, Kind, MAX_FRAME_BYTES};
pub use inbound::{serve, Handlers};
pub use outbound::{LinkState, PeerLink, Watcher};
pub use rpc::{RpcClient, RpcError};

#[cfg(test)]
mod tests;
