//! A partition as this broker holds it: its log and this broker's part in it.
//!
//! The log knows offsets; the replica state knows what the cluster decided (this broker's
//! role and the leader epoch) and, for a leader, how far each follower has got. Keeping them
//! apart is what lets a follower hold a log it doesn't lead, and a leader hold records that
//! are written but not yet replicated (above the high watermark the log is told).
//!
//! What a partition does as a replica (following the metadata, serving followers, waiting
//! for acks=all) is in [`crate::replication`], as more methods of [`Partition`].

use std::rc::Rc;

use runnel_engine::log::Log;

use crate::replication::Replica;
pub use crate::replication::Role;
use crate::route::ErrorCode;

use super::TopicPartition;

/// A partition's log and replica state, on its owning shard. Cheap to clone; clones share
/// the state.
#[derive(Debug, Clone)]
pub struct Partition {
    pub tp: TopicPartition,
    /// The topic's id when the log was opened: a topic deleted and created again under the
    /// same name must not inherit this partition.
    pub topic_id: Rc<str>,
    log: Log,
    pub(crate) replica: Rc<Replica>,
}

impl Partition {
    /// A partition this broker leads, at leader epoch 0: the single-broker case, and how
    /// every partition starts until the cluster's metadata gives it its part.
    pub fn leader(tp: TopicPartition, topic_id: &str, log: Log) -> Partition {
        Partition {
            tp,
            topic_id: topic_id.into(),
            log,
            replica: Rc::new(Replica::lone()),
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn role(&self) -> Role {
        self.replica.role()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.replica.leader_epoch()
    }

    /// Consumers read below this (Kafka's high watermark): what every in-sync replica has,
    /// and on a lone broker everything written.
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

    /// See [`Replica::check_leader_epoch`].
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        self.replica.check_leader_epoch(current_leader_epoch)
    }

    /// See [`Replica::check_min_insync`].
    pub fn check_min_insync(&self) -> Result<(), ErrorCode> {
        self.replica.check_min_insync()
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.replica.min_insync_replicas()
    }
}

impl AsRef<Log> for Partition {
    fn as_ref(&self) -> &Log {
        &self.log
    }
}
