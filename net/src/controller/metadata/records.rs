//! The metadata log's records (Kafka's KRaft metadata records, trimmed to what Runnel uses) and
//! their versioned binary encoding.
//!
//! A record is `[type u8][version u8][fields]`; integers are varints (zigzag when signed),
//! strings and lists are length-prefixed. Version 1 of the two partition records adds a
//! reassignment's replica sets at the end; it is written only while one is under way, so
//! every other record reads as it always did. A raft entry carries a batch:
//! `[BATCH_VERSION u8][count][length-prefixed records]`, applied all or nothing. Decoding never
//! panics and never allocates more than the input could hold.

use super::codec::{DecodeError, Reader, Writer};

pub type BrokerId = i32;
/// A topic id: the 16 bytes of a UUID (all zeroes is Kafka's "no id" and never assigned).
pub type TopicId = [u8; 16];

/// "No leader" in a partition's leader field, as in Kafka.
pub const NO_LEADER: BrokerId = -1;

/// Asks the image to set a new registration's epoch to the offset of the entry that carries it.
pub const EPOCH_FROM_OFFSET: i64 = -1;

const BATCH_VERSION: u8 = 0;
const RECORD_VERSION: u8 = 0;
/// The version of `Partition` and `PartitionChange` that carries [`Reassigning`].
const REASSIGNING_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a configuration entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    Cluster,
    Broker(BrokerId),
    /// Kafka keys topic configs by name; they go away with the topic.
    Topic(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub broker_id: BrokerId,
    pub incarnation_id: [u8; 16],
    /// [`EPOCH_FROM_OFFSET`] when the controller proposes it: the broker epoch becomes the raft
    /// offset the record commits at (unique and increasing, as Kafka's). Snapshots carry the
    /// epoch itself.
    pub epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// A partition's full state, written at creation and in snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub reassigning: Reassigning,
}

/// The replicas an ongoing reassignment adds and removes (Kafka's `addingReplicas` and
/// `removingReplicas`): both within the partition's replicas, neither sharing an id. Both
/// empty when no reassignment is under way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reassigning {
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

impl Reassigning {
    pub fn in_progress(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A change to one partition. Applies only to the state it was derived from
/// (`base_partition_epoch`), so a proposal made twice, or from an image that was since
/// overtaken, is refused rather than applied on top of newer state. The image bumps the
/// partition epoch on every change and the leader epoch when the leader changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    pub topic_id: TopicId,
    pub partition: i32,
    pub base_partition_epoch: i32,
    /// `Some(NO_LEADER)` leaves the partition leaderless.
    pub leader: Option<BrokerId>,
    pub isr: Option<Vec<BrokerId>>,
    pub replicas: Option<Vec<BrokerId>>,
    /// `Some` replaces the reassignment under way; `Some` of empty sets ends it.
    pub reassigning: Option<Reassigning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBroker),
    UnregisterBroker {
        broker_id: BrokerId,
        epoch: i64,
    },
    FenceBroker {
        broker_id: BrokerId,
        epoch: i64,
    },
    UnfenceBroker {
        broker_id: BrokerId,
        epoch: i64,
    },
    /// The broker asked for a controlled shutdown; leadership is moving off it.
    BrokerShutdown {
        broker_id: BrokerId,
        epoch: i64,
    },
    Topic {
        name: String,
        id: TopicId,
    },
    Partition(PartitionRecord),
    PartitionChange(PartitionChange),
    RemoveTopic {
        id: TopicId,
    },
    /// `value: None` deletes the entry.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next_block_start` are handed out; the block given to `broker_id` is
    /// the [`super::PRODUCER_ID_BLOCK_SIZE`] ids just below it.
    ProducerIds {
        broker_id: BrokerId,
        broker_epoch: i64,
        next_block_start: i64,
    },
    /// The cluster's id, chosen once by the first active controller (Kafka formats every
    /// node's storage with it; here the quorum agrees on it instead).
    ClusterId {
        id: [u8; 16],
    },
}

mod kind {
    pub const REGISTER_BROKER: u8 = 1;
    pub const UNREGISTER_BROKER: u8 = 2;
    pub const FENCE_BROKER: u8 = 3;
    pub const UNFENCE_BROKER: u8 = 4;
    pub const BROKER_SHUTDOWN: u8 = 5;
    pub const TOPIC: u8 = 6;
    pub const PARTITION: u8 = 7;
    pub const PARTITION_CHANGE: u8 = 8;
    pub const REMOVE_TOPIC: u8 = 9;
    pub const CONFIG: u8 = 10;
    pub const PRODUCER_IDS: u8 = 11;
    pub const CLUSTER_ID: u8 = 12;
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = Self::read(&mut r)?;
        r.finish()?;
        Ok(record)
    }

    fn kind(&self) -> u8 {
        match self {
            MetadataRecord::RegisterBroker(_) => kind::REGISTER_BROKER,
            MetadataRecord::UnregisterBroker { .. } => kind::UNREGISTER_BROKER,
            MetadataRecord::FenceBroker { .. } => kind::FENCE_BROKER,
            MetadataRecord::UnfenceBroker { .. } => kind::UNFENCE_BROKER,
            MetadataRecord::BrokerShutdown { .. } => kind::BROKER_SHUTDOWN,
            MetadataRecord::Topic { .. } => kind::TOPIC,
            MetadataRecord::Partition(_) => kind::PARTITION,
            MetadataRecord::PartitionChange(_) => kind::PARTITION_CHANGE,
            MetadataRecord::RemoveTopic { .. } => kind::REMOVE_TOPIC,
            MetadataRecord::Config { .. } => kind::CONFIG,
            MetadataRecord::ProducerIds { .. } => kind::PRODUCER_IDS,
            MetadataRecord::ClusterId { .. } => kind::CLUSTER_ID,
        }
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.kind());
        w.u8(self.version());
        match self {
            MetadataRecord::RegisterBroker(r) => {
                w.varint(i64::from(r.broker_id));
                w.uuid(&r.incarnation_id);
                w.varint(r.epoch);
                w.len(r.listeners.len());
                for l in &r.listeners {
                    w.str(&l.name);
                    w.str(&l.host);
                    w.uvarint(u64::from(l.port));
                }
                w.opt_str(r.rack.as_deref());
                w.bool(r.fenced);
            }
            MetadataRecord::UnregisterBroker { broker_id, epoch }
            | MetadataRecord::FenceBroker { broker_id, epoch }
            | MetadataRecord::UnfenceBroker { broker_id, epoch }
            | MetadataRecord::BrokerShutdown { broker_id, epoch } => {
                w.varint(i64::from(*broker_id));
                w.varint(*epoch);
            }
            MetadataRecord::Topic { name, id } => {
                w.str(name);
                w.uuid(id);
            }
            MetadataRecord::Partition(p) => {
                w.uuid(&p.topic_id);
                w.varint(i64::from(p.partition));
                w.ids(&p.replicas);
                w.ids(&p.isr);
                w.varint(i64::from(p.leader));
                w.varint(i64::from(p.leader_epoch));
                w.varint(i64::from(p.partition_epoch));
                if p.reassigning.in_progress() {
                    write_reassigning(w, &p.reassigning);
                }
            }
            MetadataRecord::PartitionChange(c) => {
                w.uuid(&c.topic_id);
                w.varint(i64::from(c.partition));
                w.varint(i64::from(c.base_partition_epoch));
                w.bool(c.leader.is_some());
                if let Some(leader) = c.leader {
                    w.varint(i64::from(leader));
                }
                for list in [&c.isr, &c.replicas] {
                    w.bool(list.is_some());
                    if let Some(ids) = list {
                        w.ids(ids);
                    }
                }
                if let Some(reassigning) = &c.reassigning {
                    write_reassigning(w, reassigning);
                }
            }
            MetadataRecord::RemoveTopic { id } => w.uuid(id),
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                match resource {
                    ConfigResource::Cluster => w.u8(0),
                    ConfigResource::Broker(id) => {
                        w.u8(1);
                        w.varint(i64::from(*id));
                    }
                    ConfigResource::Topic(topic) => {
                        w.u8(2);
                        w.str(topic);
                    }
                }
                w.str(name);
                w.opt_str(value.as_deref());
            }
            MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next_block_start,
            } => {
                w.varint(i64::from(*broker_id));
                w.varint(*broker_epoch);
                w.varint(*next_block_start);
            }
            MetadataRecord::ClusterId { id } => w.uuid(id),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
        let kind = r.u8()?;
        let version = r.u8()?;
        if !(kind::REGISTER_BROKER..=kind::CLUSTER_ID).contains(&kind) {
            return Err(DecodeError::UnknownType(kind));
        }
        let partition_kind = matches!(kind, kind::PARTITION | kind::PARTITION_CHANGE);
        if version != RECORD_VERSION && !(partition_kind && version == REASSIGNING_VERSION) {
            return Err(DecodeError::UnsupportedVersion { kind, version });
        }
        let reassigning = version == REASSIGNING_VERSION;
        let record = match kind {
            kind::REGISTER_BROKER => {
                let broker_id = r.i32()?;
                let incarnation_id = r.uuid()?;
                let epoch = r.varint()?;
                // A listener is at least three bytes (two empty strings and a port).
                let n = r.len(3)?;
                let mut listeners = Vec::with_capacity(n);
                for _ in 0..n {
                    listeners.push(Listener {
                        name: r.str()?,
                        host: r.str()?,
                        port: r.u16()?,
                    });
                }
                MetadataRecord::RegisterBroker(RegisterBroker {
                    broker_id,
                    incarnation_id,
                    epoch,
                    listeners,
                    rack: r.opt_str()?,
                    fenced: r.bool()?,
                })
            }
            kind::UNREGISTER_BROKER..=kind::BROKER_SHUTDOWN => {
                let broker_id = r.i32()?;
                let epoch = r.varint()?;
                match kind {
                    kind::UNREGISTER_BROKER => {
                        MetadataRecord::UnregisterBroker { broker_id, epoch }
                    }
                    kind::FENCE_BROKER => MetadataRecord::FenceBroker { broker_id, epoch },
                    kind::UNFENCE_BROKER => MetadataRecord::UnfenceBroker { broker_id, epoch },
                    _ => MetadataRecord::BrokerShutdown { broker_id, epoch },
                }
            }
            kind::TOPIC => MetadataRecord::Topic {
                name: r.str()?,
                id: r.uuid()?,
            },
            kind::PARTITION => MetadataRecord::Partition(PartitionRecord {
                topic_id: r.uuid()?,
                partition: r.i32()?,
                replicas: r.ids()?,
                isr: r.ids()?,
                leader: r.i32()?,
                leader_epoch: r.i32()?,
                partition_epoch: r.i32()?,
                reassigning: if reassigning {
                    read_reassigning(r)?
                } else {
                    Reassigning::default()
                },
            }),
            kind::PARTITION_CHANGE => {
                let topic_id = r.uuid()?;
                let partition = r.i32()?;
                let base_partition_epoch = r.i32()?;
                let leader = if r.bool()? { Some(r.i32()?) } else { None };
                let isr = if r.bool()? { Some(r.ids()?) } else { None };
                let replicas = if r.bool()? { Some(r.ids()?) } else { None };
                let reassigning = if reassigning {
                    Some(read_reassigning(r)?)
                } else {
                    None
                };
                MetadataRecord::PartitionChange(PartitionChange {
                    topic_id,
                    partition,
                    base_partition_epoch,
                    leader,
                    isr,
                    replicas,
                    reassigning,
                })
            }
            kind::REMOVE_TOPIC => MetadataRecord::RemoveTopic { id: r.uuid()? },
            kind::CONFIG => {
                let resource = match r.u8()? {
                    0 => ConfigResource::Cluster,
                    1 => ConfigResource::Broker(r.i32()?),
                    2 => ConfigResource::Topic(r.str()?),
                    _ => return Err(DecodeError::OutOfRange),
                };
                MetadataRecord::Config {
                    resource,
                    name: r.str()?,
                    value: r.opt_str()?,
                }
            }
            kind::CLUSTER_ID => MetadataRecord::ClusterId { id: r.uuid()? },
            _ => MetadataRecord::ProducerIds {
                broker_id: r.i32()?,
                broker_epoch: r.varint()?,
                next_block_start: r.varint()?,
            },
        };
        Ok(record)
    }
}

impl MetadataRecord {
    /// The oldest version that holds everything this record says.
    fn version(&self) -> u8 {
        match self {
            MetadataRecord::Partition(p) if p.reassigning.in_progress() => REASSIGNING_VERSION,
            MetadataRecord::PartitionChange(c) if c.reassigning.is_some() => REASSIGNING_VERSION,
            _ => RECORD_VERSION,
        }
    }
}

fn write_reassigning(w: &mut Writer, reassigning: &Reassigning) {
    w.ids(&reassigning.adding);
    w.ids(&reassigning.removing);
}

fn read_reassigning(r: &mut Reader<'_>) -> Result<Reassigning, DecodeError> {
    Ok(Reassigning {
        adding: r.ids()?,
        removing: r.ids()?,
    })
}

/// Encodes records that must be applied together, as one raft entry.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(BATCH_VERSION);
    w.len(records.len());
    for record in records {
        w.bytes(&record.encode());
    }
    w.buf
}

pub fn decode_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != BATCH_VERSION {
        return Err(DecodeError::UnsupportedVersion { kind: 0, version });
    }
    // A record is at least three bytes: its length, type and version.
    let n = r.len(3)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        records.push(MetadataRecord::decode(r.bytes()?)?);
    }
    r.finish()?;
    Ok(records)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
