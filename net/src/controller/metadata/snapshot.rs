//! Snapshots of the image: the records that rebuild it, and their bytes with the last applied
//! offset (what a raft snapshot carries so that the log before it can be dropped).
//!
//! Bytes: `"RNMD"`, a format version, the last applied offset (a flag and a varint), then one
//! record batch ([`encode_batch`]). Integrity is the transport's and the raft storage's job.

use super::codec::{DecodeError, Reader, Writer};
use super::image::{ApplyError, MetadataImage};
use super::records::*;

const MAGIC: &[u8; 4] = b"RNMD";
const SNAPSHOT_VERSION: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("snapshot records do not apply: {0}")]
    Apply(#[from] ApplyError),
}

impl MetadataImage {
    /// Records that, applied in order to an empty image, rebuild this one (all but the last
    /// applied offset, which the snapshot carries beside them).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for b in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker(RegisterBroker {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                epoch: b.epoch,
                listeners: b.listeners.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            }));
            if b.in_controlled_shutdown {
                records.push(MetadataRecord::BrokerShutdown {
                    broker_id: b.id,
                    epoch: b.epoch,
                });
            }
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                id: topic.id,
            });
            for (partition, p) in (0i32..).zip(&topic.partitions) {
                records.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: topic.id,
                    partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    reassigning: p.reassigning.clone(),
                }));
            }
        }
        for (resource, entries) in &self.configs {
            for (name, value) in entries {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if let Some(id) = self.cluster_id {
            records.push(MetadataRecord::ClusterId { id });
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                broker_epoch: -1,
                next_block_start: self.next_producer_id,
            });
        }
        records
    }

    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.u8(SNAPSHOT_VERSION);
        w.bool(self.last_offset.is_some());
        if let Some(offset) = self.last_offset {
            w.uvarint(offset);
        }
        w.buf.extend_from_slice(&encode_batch(&self.to_records()));
        w.buf
    }

    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<MetadataImage, SnapshotError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::UnsupportedVersion { kind: 0, version }.into());
        }
        let last_offset = if r.bool()? { Some(r.uvarint()?) } else { None };
        let records = decode_batch(r.take(r.remaining())?)?;
        let mut image = MetadataImage::new();
        // Registrations carry their epochs, so the offset used here is immaterial.
        image.apply_batch(last_offset.unwrap_or(0), &records)?;
        image.last_offset = last_offset;
        Ok(image)
    }
}
