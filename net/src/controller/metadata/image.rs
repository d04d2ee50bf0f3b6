//! The metadata image: the cluster state every broker follows, built by applying the metadata
//! log in order. Applying is deterministic (ordered maps, no clocks, no randomness), so every
//! node that applies the same entries holds an equal image.
//!
//! A record that contradicts the image (an unknown topic, a partition already present, a stale
//! broker or partition epoch) is refused with an [`ApplyError`] and changes nothing; a batch is
//! applied whole or not at all ([`MetadataImage::apply_batch`]). Refusing is how proposals made
//! from an image that was overtaken before they committed (or made twice) become harmless.

use std::collections::BTreeMap;

use super::records::*;
use super::validate::{check_partition, check_reassigning};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    pub incarnation_id: [u8; 16],
    /// The raft offset the registration committed at: a broker's requests carry it, and a
    /// request with an older one comes from a previous incarnation.
    pub epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// May lead, be in an ISR, and receive new replicas: unfenced and not shutting down.
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// [`NO_LEADER`] when no ISR member is live.
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The reassignment under way, if any: `replicas` holds both the replicas it adds and
    /// those it removes until it completes.
    pub reassigning: Reassigning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    /// Indexed by partition number: partitions are only ever added at the end.
    pub partitions: Vec<PartitionState>,
}

/// Why a record was refused; the image is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("offset {offset} is below the last applied offset {last}")]
    OffsetRegressed { offset: u64, last: u64 },
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {broker_id}: epoch {epoch} does not match the registration's {current}")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        epoch: i64,
        current: i64,
    },
    #[error("broker {0} is already registered with this incarnation")]
    SameIncarnation(BrokerId),
    #[error("broker {0}: the record changes nothing ({1})")]
    Redundant(BrokerId, &'static str),
    #[error("unknown topic id")]
    UnknownTopicId(TopicId),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("a topic with this name or id already exists")]
    TopicExists,
    #[error("partition {0} is already present")]
    PartitionPresent(i32),
    #[error("partition {partition} would leave a gap after {count} partitions")]
    PartitionGap { partition: i32, count: usize },
    #[error("unknown partition {0}")]
    UnknownPartition(i32),
    #[error("partition change based on epoch {base}, but the partition is at {current}")]
    StalePartitionEpoch { base: i32, current: i32 },
    #[error("producer id block start {next} does not advance past {current}")]
    ProducerIdsNotIncreasing { next: i64, current: i64 },
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

/// How to undo one applied record when a later record of its batch is refused.
#[derive(Debug)]
enum Undo {
    Broker(BrokerId, Option<BrokerRegistration>),
    TopicAdded(TopicId),
    TopicRemoved(TopicImage, Option<BTreeMap<String, String>>),
    PartitionAdded(TopicId),
    Partition(TopicId, usize, PartitionState),
    Config(ConfigResource, String, Option<String>),
    ProducerIds(i64),
    ClusterId(Option<[u8; 16]>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub(super) brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub(super) topics: BTreeMap<TopicId, TopicImage>,
    pub(super) topic_ids: BTreeMap<String, TopicId>,
    /// Never holds an empty map, so equal contents compare equal.
    pub(super) configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    pub(super) next_producer_id: i64,
    pub(super) last_offset: Option<u64>,
    /// Set once, by the first active controller.
    pub(super) cluster_id: Option<[u8; 16]>,
}

impl MetadataImage {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cluster's id, once the first controller has chosen it.
    pub fn cluster_id(&self) -> Option<[u8; 16]> {
        self.cluster_id
    }

    /// Applies one record committed at `offset` (records of one raft entry share its offset).
    /// The offset counts as applied even when the record is refused.
    pub fn apply(&mut self, offset: u64, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.apply_batch(offset, std::slice::from_ref(record))
    }

    /// Applies the records of one raft entry together: if one is refused, none is applied.
    pub fn apply_batch(
        &mut self,
        offset: u64,
        records: &[MetadataRecord],
    ) -> Result<(), ApplyError> {
        if let Some(last) = self.last_offset.filter(|&last| offset < last) {
            return Err(ApplyError::OffsetRegressed { offset, last });
        }
        self.last_offset = Some(offset);
        let mut undo = Vec::new();
        for record in records {
            if let Err(e) = self.apply_one(offset, record, &mut undo) {
                while let Some(step) = undo.pop() {
                    self.undo(step);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn registration(&self, id: BrokerId, epoch: i64) -> Result<&BrokerRegistration, ApplyError> {
        let reg = self.brokers.get(&id).ok_or(ApplyError::UnknownBroker(id))?;
        if reg.epoch != epoch {
            return Err(ApplyError::StaleBrokerEpoch {
                broker_id: id,
                epoch,
                current: reg.epoch,
            });
        }
        Ok(reg)
    }

    /// Validates `record` against the image, then applies it; on error nothing has changed.
    fn apply_one(
        &mut self,
        offset: u64,
        record: &MetadataRecord,
        undo: &mut Vec<Undo>,
    ) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                let epoch = match r.epoch {
                    EPOCH_FROM_OFFSET => i64::try_from(offset)
                        .map_err(|_| ApplyError::Invalid("offset beyond i64"))?,
                    e if e >= 0 => e,
                    _ => return Err(ApplyError::Invalid("negative broker epoch")),
                };
                if r.broker_id < 0 {
                    return Err(ApplyError::Invalid("negative broker id"));
                }
                let old = self.brokers.get(&r.broker_id);
                if let Some(old) = old {
                    if old.incarnation_id == r.incarnation_id {
                        return Err(ApplyError::SameIncarnation(r.broker_id));
                    }
                    if epoch <= old.epoch {
                        return Err(ApplyError::StaleBrokerEpoch {
                            broker_id: r.broker_id,
                            epoch,
                            current: old.epoch,
                        });
                    }
                }
                let reg = BrokerRegistration {
                    id: r.broker_id,
                    incarnation_id: r.incarnation_id,
                    epoch,
                    listeners: r.listeners.clone(),
                    rack: r.rack.clone(),
                    fenced: r.fenced,
                    in_controlled_shutdown: false,
                };
                let old = self.brokers.insert(r.broker_id, reg);
                undo.push(Undo::Broker(r.broker_id, old));
            }
            &MetadataRecord::UnregisterBroker { broker_id, epoch } => {
                self.registration(broker_id, epoch)?;
                let old = self.brokers.remove(&broker_id);
                undo.push(Undo::Broker(broker_id, old));
            }
            &MetadataRecord::FenceBroker { broker_id, epoch }
            | &MetadataRecord::UnfenceBroker { broker_id, epoch }
            | &MetadataRecord::BrokerShutdown { broker_id, epoch } => {
                let mut reg = self.registration(broker_id, epoch)?.clone();
                let old = reg.clone();
                match record {
                    MetadataRecord::FenceBroker { .. } if reg.fenced => {
                        return Err(ApplyError::Redundant(broker_id, "already fenced"))
                    }
                    MetadataRecord::FenceBroker { .. } => reg.fenced = true,
                    MetadataRecord::UnfenceBroker { .. } if !reg.fenced => {
                        return Err(ApplyError::Redundant(broker_id, "not fenced"))
                    }
                    // Controlled shutdown is one way: the next incarnation registers anew.
                    MetadataRecord::UnfenceBroker { .. } if reg.in_controlled_shutdown => {
                        return Err(ApplyError::Invalid("unfencing a broker shutting down"))
                    }
                    MetadataRecord::UnfenceBroker { .. } => reg.fenced = false,
                    _ if reg.in_controlled_shutdown => {
                        return Err(ApplyError::Redundant(broker_id, "already shutting down"))
                    }
                    _ => reg.in_controlled_shutdown = true,
                }
                self.brokers.insert(broker_id, reg);
                undo.push(Undo::Broker(broker_id, Some(old)));
            }
            MetadataRecord::Topic { name, id } => {
                if name.is_empty() || *id == [0; 16] {
                    return Err(ApplyError::Invalid("empty topic name or zero topic id"));
                }
                if self.topic_ids.contains_key(name) || self.topics.contains_key(id) {
                    return Err(ApplyError::TopicExists);
                }
                self.topic_ids.insert(name.clone(), *id);
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    partitions: Vec::new(),
                };
                self.topics.insert(*id, topic);
                undo.push(Undo::TopicAdded(*id));
            }
            MetadataRecord::Partition(p) => {
                let topic = self
                    .topics
                    .get_mut(&p.topic_id)
                    .ok_or(ApplyError::UnknownTopicId(p.topic_id))?;
                let count = topic.partitions.len();
                match usize::try_from(p.partition) {
                    Ok(index) if index < count => {
                        return Err(ApplyError::PartitionPresent(p.partition))
                    }
                    Ok(index) if index == count => {}
                    _ => {
                        return Err(ApplyError::PartitionGap {
                            partition: p.partition,
                            count,
                        })
                    }
                }
                check_partition(&p.replicas, &p.isr, p.leader).map_err(ApplyError::Invalid)?;
                check_reassigning(&p.replicas, &p.reassigning).map_err(ApplyError::Invalid)?;
                if p.leader_epoch < 0 || p.partition_epoch < 0 {
                    return Err(ApplyError::Invalid("negative partition epochs"));
                }
                topic.partitions.push(PartitionState {
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    reassigning: p.reassigning.clone(),
                });
                undo.push(Undo::PartitionAdded(p.topic_id));
            }
            MetadataRecord::PartitionChange(c) => {
                let topic = self
                    .topics
                    .get_mut(&c.topic_id)
                    .ok_or(ApplyError::UnknownTopicId(c.topic_id))?;
                let index = usize::try_from(c.partition)
                    .ok()
                    .filter(|&i| i < topic.partitions.len())
                    .ok_or(ApplyError::UnknownPartition(c.partition))?;
                let old = &topic.partitions[index];
                if c.base_partition_epoch != old.partition_epoch {
                    return Err(ApplyError::StalePartitionEpoch {
                        base: c.base_partition_epoch,
                        current: old.partition_epoch,
                    });
                }
                let new = changed(old, c)?;
                let old = std::mem::replace(&mut topic.partitions[index], new);
                undo.push(Undo::Partition(c.topic_id, index, old));
            }
            MetadataRecord::RemoveTopic { id } => {
                let topic = self
                    .topics
                    .remove(id)
                    .ok_or(ApplyError::UnknownTopicId(*id))?;
                self.topic_ids.remove(&topic.name);
                let configs = self
                    .configs
                    .remove(&ConfigResource::Topic(topic.name.clone()));
                undo.push(Undo::TopicRemoved(topic, configs));
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                if let ConfigResource::Topic(topic) = resource {
                    if !self.topic_ids.contains_key(topic) {
                        return Err(ApplyError::UnknownTopic(topic.clone()));
                    }
                }
                if name.is_empty() {
                    return Err(ApplyError::Invalid("empty config name"));
                }
                let old = self.set_config(resource, name, value.clone());
                undo.push(Undo::Config(resource.clone(), name.clone(), old));
            }
            &MetadataRecord::ProducerIds {
                next_block_start, ..
            } => {
                // Strictly increasing: of two blocks derived from the same image only the first
                // to commit is handed out, so no id is ever given twice.
                if next_block_start <= self.next_producer_id {
                    return Err(ApplyError::ProducerIdsNotIncreasing {
                        next: next_block_start,
                        current: self.next_producer_id,
                    });
                }
                undo.push(Undo::ProducerIds(self.next_producer_id));
                self.next_producer_id = next_block_start;
            }
            MetadataRecord::ClusterId { id } => {
                // Chosen once: a second choice (two controllers' proposals racing) is refused.
                if self.cluster_id.is_some_and(|current| current != *id) {
                    return Err(ApplyError::Invalid("the cluster id is already chosen"));
                }
                undo.push(Undo::ClusterId(self.cluster_id));
                self.cluster_id = Some(*id);
            }
        }
        Ok(())
    }

    /// Sets or deletes one entry; returns the previous value.
    fn set_config(
        &mut self,
        resource: &ConfigResource,
        name: &str,
        value: Option<String>,
    ) -> Option<String> {
        match value {
            Some(value) => self
                .configs
                .entry(resource.clone())
                .or_default()
                .insert(name.to_owned(), value),
            None => {
                let entries = self.configs.get_mut(resource)?;
                let old = entries.remove(name);
                if entries.is_empty() {
                    self.configs.remove(resource);
                }
                old
            }
        }
    }

    fn undo(&mut self, step: Undo) {
        match step {
            Undo::Broker(id, Some(reg)) => {
                self.brokers.insert(id, reg);
            }
            Undo::Broker(id, None) => {
                self.brokers.remove(&id);
            }
            Undo::TopicAdded(id) => {
                if let Some(topic) = self.topics.remove(&id) {
                    self.topic_ids.remove(&topic.name);
                }
            }
            Undo::TopicRemoved(topic, configs) => {
                if let Some(configs) = configs {
                    self.configs
                        .insert(ConfigResource::Topic(topic.name.clone()), configs);
                }
                self.topic_ids.insert(topic.name.clone(), topic.id);
                self.topics.insert(topic.id, topic);
            }
            Undo::PartitionAdded(id) => {
                if let Some(topic) = self.topics.get_mut(&id) {
                    topic.partitions.pop();
                }
            }
            Undo::Partition(id, index, state) => {
                if let Some(p) = self
                    .topics
                    .get_mut(&id)
                    .and_then(|t| t.partitions.get_mut(index))
                {
                    *p = state;
                }
            }
            Undo::Config(resource, name, old) => {
                self.set_config(&resource, &name, old);
            }
            Undo::ProducerIds(next) => self.next_producer_id = next,
            Undo::ClusterId(id) => self.cluster_id = id,
        }
    }
}

/// The partition after `change`: epochs bumped as Kafka does (the partition epoch on every
/// change, the leader epoch when the leader changes), invariants checked.
fn changed(old: &PartitionState, change: &PartitionChange) -> Result<PartitionState, ApplyError> {
    let replicas = change.replicas.as_ref().unwrap_or(&old.replicas);
    let isr = change.isr.as_ref().unwrap_or(&old.isr);
    let leader = change.leader.unwrap_or(old.leader);
    let reassigning = change.reassigning.as_ref().unwrap_or(&old.reassigning);
    check_partition(replicas, isr, leader).map_err(ApplyError::Invalid)?;
    check_reassigning(replicas, reassigning).map_err(ApplyError::Invalid)?;
    let overflow = ApplyError::Invalid("partition epoch overflow");
    let leader_epoch = if leader == old.leader {
        old.leader_epoch
    } else {
        old.leader_epoch.checked_add(1).ok_or(overflow.clone())?
    };
    Ok(PartitionState {
        replicas: replicas.clone(),
        isr: isr.clone(),
        leader,
        leader_epoch,
        partition_epoch: old.partition_epoch.checked_add(1).ok_or(overflow)?,
        reassigning: reassigning.clone(),
    })
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
