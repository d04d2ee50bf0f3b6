//! The brokers replicas may be placed on: what CreateTopics and CreatePartitions check replica
//! assignments and replication factors against.
//!
//! One broker today. The cluster's metadata image (registered, unfenced brokers) will fill
//! [`registered`] instead; nothing else needs to change.

use std::collections::BTreeSet;

/// A set of broker ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers(BTreeSet<i32>);

impl Brokers {
    pub fn of(ids: impl IntoIterator<Item = i32>) -> Brokers {
        Brokers(ids.into_iter().collect())
    }

    pub fn contains(&self, id: i32) -> bool {
        self.0.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The brokers registered in the cluster, as seen by broker `this_broker`: itself alone while
/// Runnel runs single-broker.
pub fn registered(this_broker: i32) -> Brokers {
    Brokers::of([this_broker])
}
