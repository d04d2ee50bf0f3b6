//! Where a partition's work runs, and how a handler gets it there.
//!
//! A handler lists its partitions in request order, each with its input ([`Routed::push`]).
//! Each is resolved to its [`Owner`] once, from the registry; the partitions this broker
//! serves are grouped by owning shard; [`Routed::scatter`] sends every shard one message
//! carrying all its partitions, all shards at once; [`Scattered::gather`] puts the answers
//! back in request order. A partition that can't be served gets its Kafka error code from
//! [`errors`], the one place that decides what a missing partition, a stopped shard or a
//! storage failure looks like to a client ([`record_errors`]: which records of a refused batch
//! were at fault).

pub mod errors;
pub mod record_errors;
mod scatter;

pub use scatter::Scattered;

use std::collections::BTreeMap;

use runnel_engine::rt::ShardId;

use crate::kafka::error_code;
use crate::partitions::topics::{Here, Topics};
use crate::partitions::TopicPartition;

/// A Kafka error code for one partition.
pub type ErrorCode = i16;

/// Who serves a partition, as this broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This broker leads the partition; `shard` holds its log.
    Leader { shard: ShardId },
    /// This broker follows the partition's leader; `shard` holds its copy of the log.
    Follower { shard: ShardId, leader: Option<i32> },
    /// Another broker leads it and this one holds no replica: clients are told
    /// NOT_LEADER_OR_FOLLOWER and find the leader in Metadata.
    OtherBroker { leader: i32 },
}

/// Which replica an API's partition work needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The leader (produce, consumer fetch, offsets, deletion).
    Leader,
    /// Any replica this broker holds (log directories).
    AnyReplica,
}

/// The owner of `topic`'s partition `partition`, if the topic has that partition: a lone
/// broker leads every partition; in a cluster, the controller's metadata says who leads and
/// whether this broker holds a replica (the registry keeps this broker's part).
pub fn owner(topics: &Topics, topic: &str, partition: i32) -> Option<(TopicPartition, Owner)> {
    let meta = topics.get(topic)?;
    let shard = meta.shard_of(partition)?;
    let tp = TopicPartition {
        topic: meta.name.clone(),
        partition,
    };
    let owner = match meta.placement(partition) {
        None => Owner::Leader { shard },
        Some(p) => match p.here {
            Here::Leader => Owner::Leader { shard },
            Here::Follower => Owner::Follower {
                shard,
                leader: (p.leader >= 0).then_some(p.leader),
            },
            Here::Absent => Owner::OtherBroker { leader: p.leader },
        },
    };
    Some((tp, owner))
}

/// The shard of this broker that coordinates what internal `topic`'s partition `partition`
/// holds (groups, transactions): coordinators live with the partition's leader. Otherwise
/// the error for the client: NOT_COORDINATOR when another broker leads it (the client asks
/// FindCoordinator again), COORDINATOR_NOT_AVAILABLE when the partition is unknown here.
pub fn coordinator_shard(
    topics: &Topics,
    topic: &str,
    partition: i32,
) -> Result<ShardId, ErrorCode> {
    match owner(topics, topic, partition) {
        Some((_, Owner::Leader { shard })) => Ok(shard),
        Some(_) => Err(error_code::NOT_COORDINATOR),
        None => Err(error_code::COORDINATOR_NOT_AVAILABLE),
    }
}

/// The shard that serves `owner` for `need`, or the error for the client.
fn serving_shard(owner: Owner, need: Need) -> Result<ShardId, ErrorCode> {
    match (owner, need) {
        (Owner::Leader { shard }, _) | (Owner::Follower { shard, .. }, Need::AnyReplica) => {
            Ok(shard)
        }
        (Owner::Follower { .. }, Need::Leader) | (Owner::OtherBroker { .. }, _) => {
            Err(error_code::NOT_LEADER_OR_FOLLOWER)
        }
    }
}

/// One partition's work on its way to its shard.
#[derive(Debug, Clone)]
pub(crate) struct Item<T> {
    /// Its place in the request (and the answer).
    position: usize,
    tp: TopicPartition,
    input: T,
}

/// A request's partitions resolved to the shards that serve them, in request order.
#[derive(Debug)]
pub struct Routed<T> {
    need: Need,
    /// Partitions so far.
    len: usize,
    /// Partitions answered without reaching a shard: their positions and error codes.
    refused: Vec<(usize, ErrorCode)>,
    by_shard: BTreeMap<ShardId, Vec<Item<T>>>,
}

impl<T> Routed<T> {
    pub fn new(need: Need) -> Self {
        Routed {
            need,
            len: 0,
            refused: Vec::new(),
            by_shard: BTreeMap::new(),
        }
    }

    /// Adds the request's next partition; it is routed now, from `topics`.
    pub fn push(&mut self, topics: &Topics, topic: &str, partition: i32, input: T) {
        let position = self.next_position();
        let routed = owner(topics, topic, partition)
            .ok_or(error_code::UNKNOWN_TOPIC_OR_PARTITION)
            .and_then(|(tp, owner)| Ok((tp, serving_shard(owner, self.need)?)));
        match routed {
            Ok((tp, shard)) => self.by_shard.entry(shard).or_default().push(Item {
                position,
                tp,
                input,
            }),
            Err(code) => self.refused.push((position, code)),
        }
    }

    /// Adds the request's next partition, answered with `code` without reaching a shard (a
    /// handler's own refusal, such as a write to an internal topic).
    pub fn refuse(&mut self, code: ErrorCode) {
        let position = self.next_position();
        self.refused.push((position, code));
    }

    fn next_position(&mut self) -> usize {
        self.len += 1;
        self.len - 1
    }

    /// Partitions pushed or refused.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any partition was refused before reaching a shard.
    pub fn any_refused(&self) -> bool {
        !self.refused.is_empty()
    }

    /// Shards that serve at least one partition.
    pub fn shard_count(&self) -> usize {
        self.by_shard.len()
    }
}

#[cfg(test)]
mod tests;
