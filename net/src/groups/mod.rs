//! Consumer groups: Kafka's classic group protocol and committed offsets.
//!
//! - [`group`]: one group's state machine (join, sync, heartbeat, leave, commit validation).
//! - [`coordinator`]: each shard's groups, persisted in and loaded from the shard's
//!   partitions of `__consumer_offsets` ([`records`] holds Kafka's formats for them,
//!   [`offsets_topic`] the topic's settings: compacted, as in Kafka; [`txn_offsets`] the
//!   offsets transactions commit, held until their markers decide them).
//! - This module: which shard coordinates a group, and how a handler gets work there.
//!
//! A group's coordinator is the shard owning `__consumer_offsets` partition
//! abs(hash(group id)) % partitions, Kafka's rule with Java's `String.hashCode`, so the same
//! group maps to the same partition number as on a Kafka cluster.

pub mod coordinator;
pub mod group;
pub mod offsets_topic;
pub(crate) mod oneshot;
pub mod records;
pub mod txn_offsets;

use std::collections::HashSet;
use std::future::Future;
use std::rc::Rc;

use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use crate::kafka::error_code as ec;
use crate::partitions::shard::{self, CreateError};
use coordinator::Coordinator;
use group::Group;
use runnel_engine::rt;

/// The internal topic holding committed offsets and group metadata.
pub use crate::partitions::internal_topics::OFFSETS_TOPIC;

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group_id` (Kafka's `Utils.abs(hash) % count`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

/// A new member's id: the client id and a random UUID, as Kafka makes them.
fn new_member_id(client_id: &str) -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        // Unique enough without a random source: the time in nanoseconds.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    format!("{client_id}-{}", uuid.hyphenated())
}

/// Topics a consumer-protocol group's members subscribe to (their JoinGroup metadata);
/// `None` when that can't be told (no protocol chosen yet, metadata that doesn't decode), in
/// which case every topic counts as subscribed, as Kafka counts it.
fn subscribed_topics(group: &Group) -> Option<HashSet<String>> {
    let protocol = group.protocol.clone()?;
    let mut topics = HashSet::new();
    for member in group.members() {
        let (_, metadata) = member.protocols.iter().find(|(n, _)| *n == protocol)?;
        let mut buf = metadata.clone();
        if buf.len() < 2 {
            return None;
        }
        let version = bytes::Buf::get_i16(&mut buf);
        let subscription =
            ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).ok()?;
        topics.extend(subscription.topics.iter().map(|t| t.to_string()));
    }
    Some(topics)
}

/// Partitions of `__consumer_offsets`: the topic's own count once it exists, else `configured`.
pub fn offsets_partition_count(configured: i32) -> i32 {
    shard::current()
        .topics()
        .get(OFFSETS_TOPIC)
        .map_or(configured, |t| t.shards.len() as i32)
}

/// Makes sure `__consumer_offsets` exists (created on shard 0 on first use, as Kafka does).
pub async fn ensure_offsets_topic(partitions: i32) -> Result<(), i16> {
    if shard::current().topics().get(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let created = rt::run_on(0, move || {
        let segment_bytes = coordinator::current().config.offsets_topic_segment_bytes;
        let configs = offsets_topic::configs(segment_bytes);
        shard::create_topic(OFFSETS_TOPIC.to_owned(), partitions, configs)
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?;
    match created {
        Ok(_) | Err(CreateError::Exists(_)) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
            Err(ec::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Runs `work` with the coordinator of `group_id` on its shard, once the group's offsets
/// partition is loaded there. `Err` is the Kafka error for the whole request.
pub async fn on_coordinator<F, Fut, T>(partitions: i32, group_id: &str, work: F) -> Result<T, i16>
where
    F: FnOnce(Rc<Coordinator>, i32) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    ensure_offsets_topic(partitions).await?;
    let topics = shard::current().topics();
    let offsets = topics
        .get(OFFSETS_TOPIC)
        .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
    // The topic's own count rules (it may predate a change of the setting).
    let partition = partition_for(group_id, offsets.shards.len() as i32);
    // In a cluster, only the partition's leader coordinates its groups.
    let owner = crate::route::coordinator_shard(&topics, OFFSETS_TOPIC, partition)?;
    rt::run_on(owner, move || async move {
        let coordinator = coordinator::current();
        coordinator.ensure_loaded(partition).await?;
        Ok(work(coordinator, partition).await)
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_rule() {
        // Java: "".hashCode() == 0; "a".hashCode() == 97; "group".hashCode() == 98629247.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("group"), 98_629_247);
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Kafka's abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative hashes are made positive: "my-group".hashCode() == -1906497762.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
    }

    #[test]
    fn member_ids_are_client_id_and_uuid() {
        let id = new_member_id("rdkafka");
        assert!(id.starts_with("rdkafka-"));
        assert_eq!(id.len(), "rdkafka-".len() + 36);
        assert_ne!(new_member_id("x"), new_member_id("x"));
    }
}
