//! AlterPartition: a partition leader's ISR changes (Kafka's `ReplicationControlManager
//! .alterPartition`, without reassignment or eligible-leader-replica handling).
//!
//! The leader proposes a new ISR based on the state it knows (leader epoch, partition epoch).
//! A request from an older leader or about older state is fenced; an ISR may only hold live
//! replicas, so a fenced or shutting-down broker cannot be added back by a stale leader view.

use super::codes;
use super::controller::{Decision, MetadataController, Outcome};
use super::records::*;
use super::validate::check_partition;
use crate::kafka::error_code as ec;

#[derive(Debug, Clone)]
pub struct AlterPartition {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<BrokerId>,
    /// The partition epoch the leader's view is based on.
    pub partition_epoch: i32,
}

/// The partition as it will be once the change commits (the AlterPartition response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionReply {
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub isr: Vec<BrokerId>,
    pub partition_epoch: i32,
}

impl MetadataController {
    pub fn alter_partition(&self, request: &AlterPartition) -> Outcome<AlterPartitionReply> {
        // Kafka answers an unknown broker with STALE_BROKER_EPOCH here too.
        let registration = self
            .image
            .broker(request.broker_id)
            .filter(|b| b.epoch == request.broker_epoch);
        if registration.is_none() {
            return Err(codes::STALE_BROKER_EPOCH);
        }
        if self.image.topic_by_id(&request.topic_id).is_none() {
            return Err(ec::UNKNOWN_TOPIC_ID);
        }
        let p = self
            .image
            .partition(&request.topic_id, request.partition)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        // A newer epoch than the image's means this controller is behind: it is no longer the
        // active one, or will not be for long (Kafka answers the same).
        if request.leader_epoch > p.leader_epoch || request.partition_epoch > p.partition_epoch {
            return Err(ec::NOT_CONTROLLER);
        }
        if request.leader_epoch < p.leader_epoch {
            return Err(codes::FENCED_LEADER_EPOCH);
        }
        // Same leader epoch, other broker: not a leader that ever held this epoch. Kafka's
        // INVALID_REQUEST.
        if request.broker_id != p.leader {
            return Err(ec::INVALID_REQUEST);
        }
        if request.partition_epoch < p.partition_epoch {
            return Err(codes::INVALID_UPDATE_VERSION);
        }
        if check_partition(&p.replicas, &request.new_isr, p.leader).is_err() {
            return Err(ec::INVALID_REQUEST);
        }
        if request.new_isr.iter().any(|&b| !self.image.is_live(b)) {
            return Err(codes::INELIGIBLE_REPLICA);
        }
        let mut reply = AlterPartitionReply {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: request.new_isr.clone(),
            partition_epoch: p.partition_epoch,
        };
        if request.new_isr == p.isr {
            return Ok(Decision {
                records: Vec::new(),
                reply,
            });
        }
        reply.partition_epoch = p
            .partition_epoch
            .checked_add(1)
            .ok_or(ec::UNKNOWN_SERVER_ERROR)?;
        let change = PartitionChange {
            topic_id: request.topic_id,
            partition: request.partition,
            base_partition_epoch: p.partition_epoch,
            leader: None,
            isr: Some(request.new_isr.clone()),
            replicas: None,
            reassigning: None,
        };
        Ok(Decision {
            records: vec![MetadataRecord::PartitionChange(change)],
            reply,
        })
    }
}
