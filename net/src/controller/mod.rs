//! The cluster's controller: the Raft quorum that holds the cluster's metadata ([`quorum`],
//! sans I/O), the metadata it holds and the controller's decisions ([`metadata`], sans I/O),
//! how nodes talk ([`transport`]), a node's part at run time ([`node`]), the cluster as every
//! shard's handlers see it ([`view`]), and the `[cluster]` settings ([`settings`]).

pub mod metadata;
pub mod node;
pub mod quorum;
pub mod settings;
pub mod transport;
pub mod view;
