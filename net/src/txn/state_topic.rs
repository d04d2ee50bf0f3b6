//! `__transaction_state`: the internal topic holding each transactional id's state, made as
//! Kafka makes it (its `TransactionStateManager.transactionTopicConfigs`: compacted,
//! uncompressed, `transaction.state.log.segment.bytes` segments) when a transactional producer
//! first looks for its coordinator.
//!
//! A transactional id's coordinator is the shard owning partition abs(hash(id)) % partitions,
//! Kafka's rule with Java's `String.hashCode`, as for groups.

use std::collections::BTreeMap;

use runnel_engine::rt;

use crate::kafka::error_code as ec;
use crate::partitions::shard::{self, CreateError};

/// The internal topic of the transaction coordinator.
pub use crate::partitions::internal_topics::TRANSACTION_STATE_TOPIC as STATE_TOPIC;

/// The configs `__transaction_state` is made with.
pub fn configs(segment_bytes: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), segment_bytes.to_string()),
        // Kafka's coordinator writes these records uncompressed and keeps them so.
        ("compression.type".to_owned(), "uncompressed".to_owned()),
    ])
}

/// The `__transaction_state` partition of `transactional_id`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::groups::partition_for(transactional_id, partitions)
}

/// Partitions of `__transaction_state`: the topic's own count once it exists, else
/// `configured`.
pub fn partition_count(configured: i32) -> i32 {
    shard::current()
        .topics()
        .get(STATE_TOPIC)
        .map_or(configured, |t| t.shards.len() as i32)
}

/// Makes sure `__transaction_state` exists (created on shard 0 on first use, as Kafka does).
pub async fn ensure_state_topic(partitions: i32, segment_bytes: i32) -> Result<(), i16> {
    if shard::current().topics().get(STATE_TOPIC).is_some() {
        return Ok(());
    }
    let created = rt::run_on(0, move || {
        shard::create_topic(STATE_TOPIC.to_owned(), partitions, configs(segment_bytes))
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?;
    match created {
        Ok(_) | Err(CreateError::Exists(_)) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "cannot create {STATE_TOPIC}");
            Err(ec::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_as_kafka_makes_it() {
        let configs = configs(104_857_600);
        let log = crate::partitions::topic_config::log_config(&configs).unwrap();
        assert!(log.cleanup_policy.compact && !log.cleanup_policy.delete);
        assert_eq!(configs["segment.bytes"], "104857600");
    }

    #[test]
    fn ids_map_to_kafkas_partitions() {
        // Java: Math.abs("my-txn".hashCode()) % 50.
        let hash = "my-txn"
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        assert_eq!(partition_for("my-txn", 50), hash.abs() % 50);
    }
}
