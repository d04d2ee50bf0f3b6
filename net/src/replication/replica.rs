//! A partition's replication at run time, on its owning shard: this broker's role in the
//! partition and, while it leads, the [`LeaderState`] with the acks=all produces waiting on
//! it. [`Partition`](crate::partitions::Partition) holds one; the methods that need the log as
//! well live on `Partition` (in [`super::leading`] and [`super::transitions`]).
//!
//! A lone broker's partitions lead at epoch 0 with no leader state: nothing to track, every
//! write is committed once written, and acks=all answers like acks=1.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use runnel_engine::log::Exclusive;
use runnel_engine::rt::LocalEvent;

use super::leader::{LeaderState, LeaderSummary};
use super::waiters::Waiters;
use crate::groups::oneshot;
use crate::kafka::error_code;
use crate::route::ErrorCode;

/// This broker's part in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests and serves consumers.
    Leader,
    /// Copies the leader's log and serves nobody but itself.
    Follower,
}

/// The answer an acks=all produce waits for.
pub(super) type AckSender = oneshot::Sender<Result<(), ErrorCode>>;

#[derive(Debug)]
pub struct Replica {
    role: Cell<Role>,
    leader_epoch: Cell<i32>,
    /// The leader this broker follows (-1: none, or this broker leads).
    leader: Cell<i32>,
    /// The (leader epoch, partition epoch) of the placement last applied: a placement seen
    /// again changes nothing.
    pub(super) applied: Cell<Option<(i32, i32)>>,
    /// The topic's `min.insync.replicas`.
    min_insync: Cell<i32>,
    /// Present while this broker leads the partition in a cluster.
    pub(super) leading: RefCell<Option<Leading>>,
    /// Held while the fetcher truncates the log and while the partition takes up leadership,
    /// so a new leader never reads the log's end from before a truncation still under way
    /// (Kafka's partition lock around `truncateTo` and `makeLeader`).
    pub(super) log_surgery: Exclusive,
}

/// A leader's state and what hangs on it.
#[derive(Debug)]
pub(super) struct Leading {
    pub(super) state: LeaderState,
    pub(super) acks: Waiters<AckSender>,
    /// Wakes the leader's task (a proposal to send, the ISR to check).
    pub(super) wake: Rc<LocalEvent>,
}

impl Replica {
    /// A lone broker's partition: leader at epoch 0, nothing to replicate.
    pub fn lone() -> Replica {
        Replica {
            role: Cell::new(Role::Leader),
            leader_epoch: Cell::new(0),
            leader: Cell::new(-1),
            applied: Cell::new(None),
            min_insync: Cell::new(1),
            leading: RefCell::new(None),
            log_surgery: Exclusive::default(),
        }
    }

    pub fn role(&self) -> Role {
        self.role.get()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// The broker this one follows, when it follows one.
    pub fn leader(&self) -> Option<i32> {
        let leader = self.leader.get();
        (self.role() == Role::Follower && leader >= 0).then_some(leader)
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync.get()
    }

    pub fn set_min_insync_replicas(&self, min: i32) {
        self.min_insync.set(min.max(1));
    }

    /// The ISR and follower figures of this partition while this broker leads it in a
    /// cluster (`None` when it follows, or on a lone broker: nothing to replicate).
    pub fn leader_summary(&self) -> Option<LeaderSummary> {
        self.leading
            .borrow()
            .as_ref()
            .map(|l| l.state.summary(self.min_insync_replicas()))
    }

    pub(super) fn set_role(&self, role: Role, leader: i32, leader_epoch: i32) {
        self.role.set(role);
        self.leader.set(leader);
        self.leader_epoch.set(leader_epoch);
    }

    /// Checks the leader epoch a request carries against this replica's (KIP-320): an older
    /// one is FENCED_LEADER_EPOCH (the asker's metadata is stale), a newer one
    /// UNKNOWN_LEADER_EPOCH (ours is). -1 is not checked.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        let ours = self.leader_epoch();
        match current_leader_epoch {
            -1 => Ok(()),
            e if e < ours => Err(error_code::FENCED_LEADER_EPOCH),
            e if e > ours => Err(error_code::UNKNOWN_LEADER_EPOCH),
            _ => Ok(()),
        }
    }

    /// Whether an acks=all produce may append: the ISR has at least `min.insync.replicas`
    /// members (NOT_ENOUGH_REPLICAS otherwise).
    pub fn check_min_insync(&self) -> Result<(), ErrorCode> {
        match &*self.leading.borrow() {
            Some(leading) if !leading.state.can_append(self.min_insync_replicas()) => {
                Err(error_code::NOT_ENOUGH_REPLICAS)
            }
            _ => Ok(()),
        }
    }

    /// Ends this broker's leadership: every waiting produce is told NOT_LEADER_OR_FOLLOWER
    /// (its client finds the new leader and retries, idempotently). Returns whether it led.
    pub(super) fn stop_leading(&self) -> bool {
        let leading = self.leading.borrow_mut().take();
        let Some(mut leading) = leading else {
            return false;
        };
        for ack in leading.acks.take_all() {
            ack.send(Err(error_code::NOT_LEADER_OR_FOLLOWER));
        }
        leading.wake.notify_all();
        true
    }
}
