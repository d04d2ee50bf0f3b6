//! The topics the broker keeps for its coordinators. Clients may read them (Kafka's tools do)
//! but not write, delete, trim or repartition them: their records are the coordinators'
//! state, and their partition counts decide which partition an id maps to.

/// Committed offsets and group metadata (the group coordinators').
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Transactional ids' state (the transaction coordinators').
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The controller quorum's metadata log (Kafka's name). Its files are not a partition here,
/// but no client may make a topic of that name either, as in Kafka.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Whether `name` is one of the broker's internal topics.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC || name == CLUSTER_METADATA_TOPIC
}
