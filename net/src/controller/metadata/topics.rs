//! Topic operations of the controller: CreateTopics, CreatePartitions, DeleteTopics and the
//! record plumbing of config changes (whether a config name or value is valid is the broker's
//! call, before it asks).

use super::controller::{Decision, MetadataController, Outcome};
use super::placement;
use super::records::*;
use super::validate::valid_topic_name;
use crate::kafka::error_code as ec;

/// Kafka's internal topics, which get [`MetadataController::internal_replication_factor`]
/// replicas when created with the default.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Partitions a topic may have. Kafka sets no limit, but all of a topic's new partitions go
/// into one raft entry, which must stay a sane size (about 30 bytes a partition).
pub const MAX_PARTITIONS: usize = 100_000;

/// How a new topic's (or new partitions') replicas are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Round robin over the live brokers; -1 asks for the configured default of either.
    Auto {
        partitions: i32,
        replication_factor: i16,
    },
    /// The replicas of each partition, in order; the first is the preferred leader.
    Manual(Vec<Vec<BrokerId>>),
}

/// A CreateTopics entry.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub assignment: Assignment,
    pub configs: Vec<(String, String)>,
}

/// The randomness a topic creation takes, passed in so that decisions are repeatable.
#[derive(Debug, Clone, Copy)]
pub struct Entropy {
    /// A fresh UUID (v4) for the topic.
    pub topic_id: TopicId,
    /// Picks the round robin's start and shift (Kafka draws them at random).
    pub placement_seed: u64,
}

impl MetadataController {
    /// Replicas for an internal topic created with the default: min(3, live brokers), as
    /// Kafka's `offsets.topic.replication.factor` and `transaction.state.log.replication.factor`
    /// defaults applied to a small cluster.
    pub fn internal_replication_factor(&self) -> i16 {
        self.image.live_brokers().len().clamp(1, 3) as i16
    }

    /// CreateTopics for one topic: a Topic record, one Partition record per partition and the
    /// topic's configs; answers the topic id.
    pub fn create_topic(&self, topic: &NewTopic, entropy: Entropy) -> Outcome<TopicId> {
        if !valid_topic_name(&topic.name) {
            return Err(ec::INVALID_TOPIC_EXCEPTION);
        }
        if self.image.topic(&topic.name).is_some() {
            return Err(ec::TOPIC_ALREADY_EXISTS);
        }
        if entropy.topic_id == [0; 16] || self.image.topic_by_id(&entropy.topic_id).is_some() {
            // The driver draws a new id and asks again.
            return Err(ec::INVALID_REQUEST);
        }
        let assignment = match &topic.assignment {
            Assignment::Auto {
                partitions,
                replication_factor,
            } => {
                let partitions = match *partitions {
                    -1 => self.settings.default_partitions,
                    n => n,
                };
                let rf = match *replication_factor {
                    -1 if INTERNAL_TOPICS.contains(&topic.name.as_str()) => {
                        self.internal_replication_factor()
                    }
                    -1 => self.settings.default_replication_factor,
                    rf => rf,
                };
                let live = self.image.live_brokers();
                let (start, shift) = placement::from_seed(entropy.placement_seed, live.len());
                self.auto_assignment(&live, 0, partitions, rf, start, shift)?
            }
            Assignment::Manual(assignment) => {
                if assignment.len() > MAX_PARTITIONS {
                    return Err(ec::INVALID_PARTITIONS);
                }
                placement::check_manual(&self.image, assignment, None)?;
                assignment.clone()
            }
        };
        let mut records = vec![MetadataRecord::Topic {
            name: topic.name.clone(),
            id: entropy.topic_id,
        }];
        self.push_partitions(&mut records, entropy.topic_id, 0, assignment)?;
        for (name, value) in &topic.configs {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(topic.name.clone()),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
        Ok(Decision {
            records,
            reply: entropy.topic_id,
        })
    }

    /// CreatePartitions: grows `topic` to `new_total` partitions, with the topic's replication
    /// factor. Placed automatically unless `assignment` names the new partitions' replicas.
    /// Automatic placement continues the pattern from the broker of partition 0's first replica,
    /// as Kafka's does.
    pub fn create_partitions(
        &self,
        topic: &str,
        new_total: i32,
        assignment: Option<&[Vec<BrokerId>]>,
    ) -> Outcome<()> {
        let existing = self
            .image
            .topic(topic)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        let count = existing.partitions.len();
        let added = usize::try_from(new_total)
            .ok()
            .filter(|&total| total <= MAX_PARTITIONS)
            .and_then(|total| total.checked_sub(count))
            .filter(|&added| added > 0)
            .ok_or(ec::INVALID_PARTITIONS)?;
        let rf = existing.partitions.first().map_or(0, |p| p.replicas.len());
        let assignment = match assignment {
            Some(assignment) => {
                if assignment.len() != added {
                    return Err(ec::INVALID_REPLICA_ASSIGNMENT);
                }
                placement::check_manual(&self.image, assignment, Some(rf))?;
                assignment.to_vec()
            }
            None => {
                let live = self.image.live_brokers();
                let start = existing
                    .partitions
                    .first()
                    .and_then(|p| p.replicas.first())
                    .and_then(|first| live.iter().position(|b| b == first))
                    .unwrap_or(0);
                let rf = i16::try_from(rf).map_err(|_| ec::INVALID_REPLICATION_FACTOR)?;
                self.auto_assignment(&live, count, added as i32, rf, start, start)?
            }
        };
        let mut records = Vec::new();
        self.push_partitions(&mut records, existing.id, count, assignment)?;
        Ok(Decision { records, reply: () })
    }

    /// DeleteTopics for one topic; answers its id. Its configs go with it.
    pub fn delete_topic(&self, name: &str) -> Outcome<TopicId> {
        let topic = self
            .image
            .topic(name)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        Ok(Decision {
            records: vec![MetadataRecord::RemoveTopic { id: topic.id }],
            reply: topic.id,
        })
    }

    /// IncrementalAlterConfigs for one resource: `None` deletes an entry.
    pub fn alter_configs(
        &self,
        resource: &ConfigResource,
        changes: &[(String, Option<String>)],
    ) -> Outcome<()> {
        match resource {
            ConfigResource::Topic(name) if self.image.topic(name).is_none() => {
                return Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
            }
            ConfigResource::Broker(id) if *id < 0 => return Err(ec::INVALID_REQUEST),
            _ => {}
        }
        if changes.iter().any(|(name, _)| name.is_empty()) {
            return Err(ec::INVALID_CONFIG);
        }
        let records = changes
            .iter()
            .map(|(name, value)| MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(Decision { records, reply: () })
    }

    fn auto_assignment(
        &self,
        live: &[BrokerId],
        first_partition: usize,
        partitions: i32,
        rf: i16,
        start: usize,
        shift: usize,
    ) -> Result<Vec<Vec<BrokerId>>, i16> {
        let partitions = usize::try_from(partitions)
            .ok()
            .filter(|&n| n > 0 && first_partition + n <= MAX_PARTITIONS)
            .ok_or(ec::INVALID_PARTITIONS)?;
        let rf = usize::try_from(rf)
            .ok()
            .filter(|&rf| rf > 0 && rf <= live.len())
            .ok_or(ec::INVALID_REPLICATION_FACTOR)?;
        Ok(placement::round_robin(
            live,
            first_partition,
            partitions,
            rf,
            start,
            shift,
        ))
    }

    /// Partition records for `assignment`, numbered from `first`: the ISR is the live replicas
    /// and the leader the first of them.
    fn push_partitions(
        &self,
        records: &mut Vec<MetadataRecord>,
        topic_id: TopicId,
        first: usize,
        assignment: Vec<Vec<BrokerId>>,
    ) -> Result<(), i16> {
        for (index, replicas) in (first..).zip(assignment) {
            let partition = i32::try_from(index).map_err(|_| ec::INVALID_PARTITIONS)?;
            let isr = placement::initial_isr(&self.image, &replicas)?;
            let leader = isr.first().copied().ok_or(ec::INVALID_REPLICA_ASSIGNMENT)?;
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition,
                leader,
                replicas,
                isr,
                leader_epoch: 0,
                partition_epoch: 0,
                reassigning: Reassigning::default(),
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
