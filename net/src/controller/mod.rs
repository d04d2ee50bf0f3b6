//! The cluster's controller: the Raft quorum that holds the cluster's metadata, and how a
//! broker takes part in it.

pub mod metadata;
pub mod settings;
pub mod transport;
pub mod view;
pub mod node;
