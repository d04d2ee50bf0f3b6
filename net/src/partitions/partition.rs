//! A partition as this broker holds it: its log and this broker's part in it.
//!
//! The log knows offsets; the replica state knows what the cluster decided (this broker's
//! role and the leader epoch) and what consumers may read (the high watermark). Keeping them
//! apart is what lets a follower hold a log it doesn't lead, and a leader hold records that are
//! written but not yet replicated.

use std::cell::Cell;
use std::rc::Rc;

use runnel_engine::log::Log;

use super::TopicPartition;

/// This broker's part in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests and serves consumers.
    Leader,
    /// Copies the leader's log and serves nobody but itself.
    Follower,
}

/// A partition's log and replica state, on its owning shard. Cheap to clone; clones share
/// the state.
#[derive(Debug, Clone)]
pub struct Partition {
    pub tp: TopicPartition,
    /// The topic's id when the log was opened: a topic deleted and created again under the
    /// same name must not inherit this partition.
    pub topic_id: Rc<str>,
    log: Log,
    replica: Rc<ReplicaState>,
}

#[derive(Debug)]
struct ReplicaState {
    role: Cell<Role>,
    leader_epoch: Cell<i32>,
}

impl Partition {
    /// A partition this broker leads, at leader epoch 0: the single-broker case.
    pub fn leader(tp: TopicPartition, topic_id: &str, log: Log) -> Partition {
        Partition {
            tp,
            topic_id: topic_id.into(),
            log,
            replica: Rc::new(ReplicaState {
                role: Cell::new(Role::Leader),
                leader_epoch: Cell::new(0),
            }),
        }
    }

    /// Takes the part the cluster's metadata gives this broker. A lone broker's partitions
    /// stay leaders at epoch 0.
    pub fn set_replica(&self, role: Role, leader_epoch: i32) {
        self.replica.role.set(role);
        self.replica.leader_epoch.set(leader_epoch);
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn role(&self) -> Role {
        self.replica.role.get()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.replica.leader_epoch.get()
    }

    /// Consumers read below this (Kafka's high watermark). This broker is its partitions'
    /// only replica, so everything written and readable in the log counts; with followers
    /// it becomes the offset every in-sync replica has reached.
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    /// The offset the next record appended here gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }
}

impl AsRef<Log> for Partition {
    fn as_ref(&self) -> &Log {
        &self.log
    }
}
