//! What brokers ask the image: registrations, who is live, where partitions and leaders are,
//! configs. Scans are linear in the partitions; an index can come when a cluster needs one.

use std::collections::BTreeMap;

use super::image::{BrokerRegistration, MetadataImage, PartitionState, TopicImage};
use super::records::*;

impl MetadataImage {
    pub fn last_offset(&self) -> Option<u64> {
        self.last_offset
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn is_live(&self, id: BrokerId) -> bool {
        self.broker(id).is_some_and(BrokerRegistration::is_live)
    }

    /// Registered, unfenced and not in controlled shutdown, in id order.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| b.is_live())
            .map(|b| b.id)
            .collect()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicImage> {
        self.topics.get(id)
    }

    /// Topics in id order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn partition(&self, topic_id: &TopicId, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic_id)?.partitions.get(index)
    }

    /// The partition's leader; `None` if the partition is unknown or has no leader.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<BrokerId> {
        let id = self.topic_ids.get(topic)?;
        let leader = self.partition(id, partition)?.leader;
        (leader != NO_LEADER).then_some(leader)
    }

    /// Every partition matching `pick`, in topic id then partition order.
    pub fn partitions_where(
        &self,
        mut pick: impl FnMut(&PartitionState) -> bool,
    ) -> Vec<(TopicId, i32)> {
        let mut found = Vec::new();
        for topic in self.topics.values() {
            for (index, p) in (0i32..).zip(&topic.partitions) {
                if pick(p) {
                    found.push((topic.id, index));
                }
            }
        }
        found
    }

    pub fn partitions_led_by(&self, broker: BrokerId) -> Vec<(TopicId, i32)> {
        self.partitions_where(|p| p.leader == broker)
    }

    pub fn replicas_on(&self, broker: BrokerId) -> Vec<(TopicId, i32)> {
        self.partitions_where(|p| p.replicas.contains(&broker))
    }

    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.configs.get(resource)
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
}
