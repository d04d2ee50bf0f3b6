//! Partitions whose logs could not be opened on their shard (too many open files, a full or
//! failed disk, something in the way of the directory): what clients are told about them, and
//! when opening is tried again.
//!
//! A partition placed on a shard but not open is offline. Clients see KAFKA_STORAGE_ERROR for
//! it (in CreateTopics, Metadata and every partition request), as Kafka reports a partition
//! on an offline log directory, rather than a healthy-looking partition that never accepts a
//! write. The owning shard keeps trying to open it with back-off.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::TopicPartition;

/// Every offline partition of the broker with the reason, shared by the shards (Metadata and
/// CreateTopics run on any shard). Not on a hot path: it changes when a partition fails to
/// open or recovers, and is read by Metadata and by requests for partitions that aren't open.
#[derive(Debug, Default)]
pub struct OfflinePartitions {
    reasons: Mutex<BTreeMap<TopicPartition, String>>,
}

impl OfflinePartitions {
    fn reasons(&self) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, String>> {
        // A panic while holding this lock leaves a consistent map (each call is one insert or
        // remove), so a poisoned lock is still good to use.
        self.reasons.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `tp` failed to open. Returns whether this is news (it was online, or failed
    /// for another reason), so the caller logs each failure once rather than on every retry.
    pub fn mark(&self, tp: &TopicPartition, reason: String) -> bool {
        let previous = self.reasons().insert(tp.clone(), reason.clone());
        previous.as_ref() != Some(&reason)
    }

    /// Records that `tp` is open; returns whether it had been offline.
    pub fn clear(&self, tp: &TopicPartition) -> bool {
        self.reasons().remove(tp).is_some()
    }

    /// Why `tp` is offline, if it is.
    pub fn reason(&self, tp: &TopicPartition) -> Option<String> {
        self.reasons().get(tp).cloned()
    }

    /// The offline partitions of `topic`, with their reasons.
    pub fn of_topic(&self, topic: &str) -> Vec<(i32, String)> {
        self.reasons()
            .iter()
            .filter(|(tp, _)| &*tp.topic == topic)
            .map(|(tp, reason)| (tp.partition, reason.clone()))
            .collect()
    }

    /// Forgets a deleted topic's partitions.
    pub fn forget_topic(&self, topic: &str) {
        self.reasons().retain(|tp, _| &*tp.topic != topic);
    }
}

/// How long a shard waits before its `attempt`-th retry (from 0) to open its offline
/// partitions: 1 s, doubling, at most a minute. Quick enough that a freed disk or file limit
/// brings partitions back soon, slow enough that a lasting failure doesn't spin.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_news_once() {
        let offline = OfflinePartitions::default();
        let tp = TopicPartition::new("t", 1);
        assert!(offline.mark(&tp, "EMFILE".into()));
        assert!(
            !offline.mark(&tp, "EMFILE".into()),
            "the same failure again"
        );
        assert!(offline.mark(&tp, "ENOSPC".into()), "a different failure");
        offline.mark(&TopicPartition::new("u", 0), "ENOSPC".into());
        assert_eq!(offline.of_topic("t"), vec![(1, "ENOSPC".to_string())]);
        assert_eq!(offline.reason(&tp).as_deref(), Some("ENOSPC"));
        assert!(offline.clear(&tp));
        assert!(!offline.clear(&tp));
        offline.forget_topic("u");
        assert!(offline.reason(&TopicPartition::new("u", 0)).is_none());
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
