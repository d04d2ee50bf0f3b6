//! One transactional id's metadata and Kafka's legal transitions between its states (Kafka's
//! `TransactionMetadata`).
//!
//! A change is made in two steps, as in Kafka: a `prepare_*` method checks the change is legal
//! and returns the target as a [`TxnTransit`], which is also kept as the pending transition
//! (at most one at a time); once its record is stored, [`TxnMetadata::complete_transition`]
//! applies it, or [`TxnMetadata::abandon_pending`] drops it when the store failed. Only the
//! coordinator ([`super::state_machine`]) decides when; nothing here does I/O or reads a clock.
//!
//! This is the transactions v1 protocol (Kafka's `transaction.version` 0, every 3.x client):
//! the epoch is bumped by InitProducerId and by fencing, not at every commit.

use std::collections::BTreeSet;

use super::records::{RecordError, TopicPartitions, TxnLogValue};
use crate::kafka::error_code as ec;
use crate::partitions::TopicPartition;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Whether a producer id has used up its epochs: clients never get an epoch at or above
/// `i16::MAX - 1`, so that the coordinator can always fence a producer by bumping once more.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Kafka's `TransactionState`, with its ids (the status byte of the log value) and names
/// (DescribeTransactions, ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// The id is being expired (its tombstone is being written).
    Dead,
    /// The producer is being fenced (Kafka never writes this state: the fence continues
    /// straight into PrepareAbort).
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Kafka's transition table: the states this one may be entered from.
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether `from -> self` is legal.
    pub fn can_follow(self, from: TxnState) -> bool {
        self.valid_previous().contains(&from)
    }

    /// An id idle in this state may be expired (`transactional.id.expiration.ms`).
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A transition being made: the metadata as it will be once its record is stored (Kafka's
/// `TxnTransitMetadata`). It is also what the record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnTransit {
    pub producer_id: i64,
    /// The producer id before this transition (Kafka's `prevProducerId`).
    pub previous_producer_id: i64,
    /// Transactions v2 only; always -1 here.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
    pub client_transaction_version: i16,
}

impl TxnTransit {
    /// The log value that records this transition.
    pub fn to_log_value(&self) -> TxnLogValue {
        // Kafka writes a null partition list for Empty, the partitions otherwise.
        let partitions = (self.state != TxnState::Empty).then(|| group_by_topic(&self.partitions));
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.state.id(),
            partitions,
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: self.client_transaction_version,
        }
    }
}

fn group_by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for tp in partitions {
        match topics.last_mut() {
            Some(last) if *last.topic == *tp.topic => last.partitions.push(tp.partition),
            _ => topics.push(TopicPartitions {
                topic: tp.topic.to_string(),
                partitions: vec![tp.partition],
            }),
        }
    }
    topics
}

/// Why a transition can't be prepared or completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// KIP-360: the epoch the producer expects is neither the current nor the last one.
    #[error("producer fenced")]
    ProducerFenced,
    #[error("a transition to {0:?} is already pending")]
    Pending(TxnState),
    #[error("illegal transition from {from:?} to {to:?}")]
    Illegal { from: TxnState, to: TxnState },
    #[error("producer epoch {0} can't be bumped")]
    EpochExhausted(i16),
    #[error("illegal producer id {0} or epoch {1}")]
    IllegalIdOrEpoch(i64, i16),
    #[error("the transition does not match the pending one or the current metadata")]
    Mismatch,
}

impl TransitionError {
    /// What a client is told (Kafka's IllegalStateExceptions become UNKNOWN_SERVER_ERROR).
    pub fn code(&self) -> i16 {
        match self {
            TransitionError::ProducerFenced => ec::PRODUCER_FENCED,
            TransitionError::Pending(_) => ec::CONCURRENT_TRANSACTIONS,
            _ => ec::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last transition, so that a retried InitProducerId that
    /// rotated the id is recognised (KIP-360). Not in v0 records: -1 after a load.
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump (KIP-360 retries); -1 after a load.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the transaction started (its first partition was added); -1 when none.
    pub start_timestamp_ms: i64,
    /// When the metadata last changed: what expiration goes by.
    pub last_update_timestamp_ms: i64,
    pub client_transaction_version: i16,
    /// The transition whose record is being stored (Kafka's `pendingState`).
    pub pending: Option<TxnTransit>,
    /// A fence's bumped epoch may not have been stored: the next fence must not bump again
    /// (Kafka's `hasFailedEpochFence`).
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A new id with its first producer id, not yet given an epoch (the first
    /// InitProducerId bumps -1 to 0).
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now_ms,
            client_transaction_version: 0,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The metadata a log value describes (Kafka's `readTxnRecordValue`).
    pub fn from_log_value(
        transactional_id: String,
        value: &TxnLogValue,
    ) -> Result<TxnMetadata, RecordError> {
        let state =
            TxnState::from_id(value.status).ok_or(RecordError::UnknownStatus(value.status))?;
        let mut partitions = BTreeSet::new();
        if state != TxnState::Empty {
            for topic in value.partitions.iter().flatten() {
                for &p in &topic.partitions {
                    partitions.insert(TopicPartition::new(topic.topic.as_str(), p));
                }
            }
        }
        Ok(TxnMetadata {
            transactional_id,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.timeout_ms,
            state,
            partitions,
            start_timestamp_ms: value.start_timestamp_ms,
            last_update_timestamp_ms: value.last_update_timestamp_ms,
            client_transaction_version: value.client_transaction_version,
            pending: None,
            has_failed_epoch_fence: false,
        })
    }

    pub fn pending_state(&self) -> Option<TxnState> {
        self.pending.as_ref().map(|t| t.state)
    }

    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    /// A transaction is open or being completed: the producer id can't be rotated.
    pub fn has_pending_transaction(&self) -> bool {
        matches!(
            self.state,
            TxnState::Ongoing | TxnState::PrepareAbort | TxnState::PrepareCommit
        )
    }

    /// Fences the current producer and aborts its open transaction (Kafka's
    /// `prepareFenceProducerEpoch` followed by the abort `endTransaction` makes of it): the
    /// epoch is bumped in memory at once, so the fenced producer's requests fail from now on,
    /// and the transition to PrepareAbort at the bumped epoch is prepared.
    pub fn prepare_epoch_fence_abort(
        &mut self,
        now_ms: i64,
    ) -> Result<TxnTransit, TransitionError> {
        if let Some(pending) = self.pending_state() {
            return Err(TransitionError::Pending(pending));
        }
        if !TxnState::PrepareEpochFence.can_follow(self.state) {
            return Err(TransitionError::Illegal {
                from: self.state,
                to: TxnState::PrepareEpochFence,
            });
        }
        if self.producer_epoch == i16::MAX {
            return Err(TransitionError::EpochExhausted(self.producer_epoch));
        }
        // A fence whose record failed to be stored bumped the epoch already.
        if !self.has_failed_epoch_fence {
            self.producer_epoch += 1;
        }
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
        self.prepare(
            TxnState::PrepareAbort,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_timestamp_ms,
            now_ms,
        )
    }

    /// InitProducerId on an existing id: the next epoch (Kafka's
    /// `prepareIncrementProducerEpoch`), with KIP-360's handling of an expected epoch: the
    /// current one (or none yet) bumps; the last one is a retry of a bump that succeeded and
    /// gets the same epoch again; anything else is fenced.
    pub fn prepare_increment_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<TxnTransit, TransitionError> {
        let bump = || {
            if epoch_exhausted(self.producer_epoch) {
                Err(TransitionError::EpochExhausted(self.producer_epoch))
            } else {
                Ok(self.producer_epoch + 1)
            }
        };
        let (epoch, last_epoch) = match expected_epoch {
            None => (bump()?, NO_PRODUCER_EPOCH),
            Some(expected)
                if self.producer_epoch == NO_PRODUCER_EPOCH || expected == self.producer_epoch =>
            {
                (bump()?, self.producer_epoch)
            }
            Some(expected) if expected == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(TransitionError::ProducerFenced),
        };
        self.prepare(
            TxnState::Empty,
            self.producer_id,
            epoch,
            last_epoch,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
        )
    }

    /// InitProducerId when the epochs are used up: a new producer id at epoch 0 (Kafka's
    /// `prepareProducerIdRotation`). `record_last_epoch` when the producer said which epoch
    /// it had (KIP-360), so its retry is recognised.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Result<TxnTransit, TransitionError> {
        if self.has_pending_transaction() {
            return Err(TransitionError::Illegal {
                from: self.state,
                to: TxnState::Empty,
            });
        }
        let last_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.prepare(
            TxnState::Empty,
            new_producer_id,
            0,
            last_epoch,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
        )
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: Ongoing with these partitions too; a transaction
    /// starting now gets its start time.
    pub fn prepare_add_partitions(
        &mut self,
        added: impl IntoIterator<Item = TopicPartition>,
        now_ms: i64,
    ) -> Result<TxnTransit, TransitionError> {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now_ms,
            _ => self.start_timestamp_ms,
        };
        let mut partitions = self.partitions.clone();
        partitions.extend(added);
        self.prepare(
            TxnState::Ongoing,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            partitions,
            start,
            now_ms,
        )
    }

    /// EndTxn: PrepareCommit or PrepareAbort (`target`), same epoch (transactions v1).
    pub fn prepare_abort_or_commit(
        &mut self,
        target: TxnState,
        now_ms: i64,
    ) -> Result<TxnTransit, TransitionError> {
        if !matches!(target, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(TransitionError::Illegal {
                from: self.state,
                to: target,
            });
        }
        self.prepare(
            target,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_timestamp_ms,
            now_ms,
        )
    }

    /// The markers are written: CompleteCommit or CompleteAbort, no partitions.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<TxnTransit, TransitionError> {
        let target = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            from => {
                return Err(TransitionError::Illegal {
                    from,
                    to: TxnState::CompleteCommit,
                })
            }
        };
        // The transition is stored: a fence before it is settled.
        self.has_failed_epoch_fence = false;
        self.prepare(
            target,
            self.producer_id,
            self.producer_epoch,
            self.producer_epoch,
            self.timeout_ms,
            BTreeSet::new(),
            self.start_timestamp_ms,
            now_ms,
        )
    }

    /// Expiration: the id's tombstone is about to be written.
    pub fn prepare_dead(&mut self) -> Result<TxnTransit, TransitionError> {
        self.prepare(
            TxnState::Dead,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            BTreeSet::new(),
            self.start_timestamp_ms,
            self.last_update_timestamp_ms,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        state: TxnState,
        producer_id: i64,
        producer_epoch: i16,
        last_producer_epoch: i16,
        timeout_ms: i32,
        partitions: BTreeSet<TopicPartition>,
        start_timestamp_ms: i64,
        now_ms: i64,
    ) -> Result<TxnTransit, TransitionError> {
        if let Some(pending) = self.pending_state() {
            return Err(TransitionError::Pending(pending));
        }
        if producer_id < 0 || (state != TxnState::Dead && producer_epoch < 0) {
            return Err(TransitionError::IllegalIdOrEpoch(
                producer_id,
                producer_epoch,
            ));
        }
        if !state.can_follow(self.state) {
            return Err(TransitionError::Illegal {
                from: self.state,
                to: state,
            });
        }
        let transit = TxnTransit {
            producer_id,
            previous_producer_id: self.producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch,
            last_producer_epoch,
            timeout_ms,
            state,
            partitions,
            start_timestamp_ms,
            last_update_timestamp_ms: now_ms,
            client_transaction_version: self.client_transaction_version,
        };
        self.pending = Some(transit.clone());
        Ok(transit)
    }

    /// The pending transition's record was not stored: nothing changes.
    pub fn abandon_pending(&mut self) {
        self.pending = None;
    }

    /// The pending transition's record is stored: apply it (Kafka's `completeTransitionTo`,
    /// with its consistency checks). A transition to Dead is never completed: the coordinator
    /// forgets the id instead.
    pub fn complete_transition(&mut self, transit: &TxnTransit) -> Result<(), TransitionError> {
        let pending = self.pending.as_ref().ok_or(TransitionError::Mismatch)?;
        if pending != transit {
            return Err(TransitionError::Mismatch);
        }
        let same_producer = transit.producer_epoch == self.producer_epoch
            && transit.producer_id == self.producer_id;
        let valid = match transit.state {
            TxnState::Empty => {
                let bump = transit.producer_epoch == self.producer_epoch.wrapping_add(1)
                    || (transit.producer_epoch == 0 && transit.producer_id != self.producer_id);
                (transit.producer_epoch == self.producer_epoch || bump)
                    && transit.partitions.is_empty()
                    && transit.start_timestamp_ms == -1
            }
            TxnState::Ongoing => {
                same_producer
                    && self.partitions.is_subset(&transit.partitions)
                    && self.timeout_ms == transit.timeout_ms
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                same_producer
                    && self.partitions == transit.partitions
                    && self.timeout_ms == transit.timeout_ms
                    && self.start_timestamp_ms == transit.start_timestamp_ms
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                same_producer
                    && self.timeout_ms == transit.timeout_ms
                    && transit.start_timestamp_ms != -1
            }
            TxnState::PrepareEpochFence | TxnState::Dead => false,
        };
        if !valid {
            return Err(TransitionError::Mismatch);
        }
        match transit.state {
            TxnState::Empty => {
                self.timeout_ms = transit.timeout_ms;
                self.producer_epoch = transit.producer_epoch;
                self.last_producer_epoch = transit.last_producer_epoch;
                self.producer_id = transit.producer_id;
                self.previous_producer_id = transit.previous_producer_id;
                self.start_timestamp_ms = -1;
            }
            TxnState::Ongoing => {
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.extend(transit.partitions.iter().cloned());
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.clear();
            }
            _ => {}
        }
        self.client_transaction_version = transit.client_transaction_version;
        self.last_update_timestamp_ms = transit.last_update_timestamp_ms;
        self.state = transit.state;
        self.pending = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TxnState::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    #[test]
    fn states_have_kafkas_ids_and_names() {
        let ids: Vec<i8> = TxnState::ALL.iter().map(|s| s.id()).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(PrepareEpochFence.name(), "PrepareEpochFence");
    }

    #[test]
    fn the_transition_table_is_kafkas() {
        let legal: Vec<(TxnState, TxnState)> = TxnState::ALL
            .iter()
            .flat_map(|&to| TxnState::ALL.iter().map(move |&from| (from, to)))
            .filter(|(from, to)| to.can_follow(*from))
            .collect();
        let expected = [
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Empty, Ongoing),
            (Ongoing, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteCommit, Dead),
            (CompleteAbort, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        assert_eq!(legal.len(), expected.len());
        for pair in expected {
            assert!(legal.contains(&pair), "{pair:?}");
        }
    }

    #[test]
    fn one_transaction_through_its_transitions() {
        let mut m = TxnMetadata::new("t".into(), 10, 1000, 0);
        let t = m.prepare_increment_epoch(1000, None, 1).unwrap();
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (0, -1));
        // One pending transition at a time.
        assert_eq!(
            m.prepare_add_partitions([tp("a", 0)], 1),
            Err(TransitionError::Pending(Empty))
        );
        m.complete_transition(&t).unwrap();
        let t = m.prepare_add_partitions([tp("a", 0)], 5).unwrap();
        m.complete_transition(&t).unwrap();
        assert_eq!((m.state, m.start_timestamp_ms), (Ongoing, 5));
        let t = m.prepare_add_partitions([tp("a", 1)], 6).unwrap();
        m.complete_transition(&t).unwrap();
        assert_eq!(m.start_timestamp_ms, 5, "the start stays");
        assert_eq!(m.partitions.len(), 2);
        let t = m.prepare_abort_or_commit(PrepareCommit, 7).unwrap();
        assert_eq!(t.to_log_value().partitions.unwrap().len(), 1);
        m.complete_transition(&t).unwrap();
        let t = m.prepare_complete(8).unwrap();
        m.complete_transition(&t).unwrap();
        assert_eq!(
            (m.state, m.partitions.len(), m.last_update_timestamp_ms),
            (CompleteCommit, 0, 8)
        );
        // Illegal: Complete -> PrepareAbort; a transit that isn't the pending one.
        assert!(matches!(
            m.prepare_abort_or_commit(PrepareAbort, 9),
            Err(TransitionError::Illegal {
                from: CompleteCommit,
                to: PrepareAbort
            })
        ));
        let t = m.prepare_increment_epoch(1000, None, 9).unwrap();
        let mut other = t.clone();
        other.producer_epoch = 5;
        assert_eq!(
            m.complete_transition(&other),
            Err(TransitionError::Mismatch)
        );
        m.abandon_pending();
        assert_eq!(m.producer_epoch, 0);
    }

    #[test]
    fn a_fence_bumps_once_even_if_its_record_failed() {
        let mut m = TxnMetadata::new("t".into(), 10, 1000, 0);
        let t = m.prepare_increment_epoch(1000, None, 0).unwrap();
        m.complete_transition(&t).unwrap();
        let t = m.prepare_add_partitions([tp("a", 0)], 1).unwrap();
        m.complete_transition(&t).unwrap();
        let t = m.prepare_epoch_fence_abort(2).unwrap();
        assert_eq!(
            (t.state, t.producer_epoch, m.producer_epoch),
            (PrepareAbort, 1, 1)
        );
        m.abandon_pending();
        m.has_failed_epoch_fence = true;
        let t = m.prepare_epoch_fence_abort(3).unwrap();
        assert_eq!(t.producer_epoch, 1);
        m.complete_transition(&t).unwrap();
        let t = m.prepare_complete(4).unwrap();
        assert!(!m.has_failed_epoch_fence);
        m.complete_transition(&t).unwrap();
        assert_eq!((m.state, m.producer_epoch), (CompleteAbort, 1));
    }

    #[test]
    fn log_values_carry_the_metadata() {
        let mut m = TxnMetadata::new("t".into(), 10, 1000, 0);
        let t = m.prepare_increment_epoch(1000, None, 0).unwrap();
        assert_eq!(t.to_log_value().partitions, None, "Empty writes null");
        m.complete_transition(&t).unwrap();
        let t = m
            .prepare_add_partitions([tp("b", 1), tp("a", 2), tp("a", 0)], 3)
            .unwrap();
        let value = t.to_log_value();
        assert_eq!(
            value.partitions.as_deref().unwrap(),
            [
                TopicPartitions {
                    topic: "a".into(),
                    partitions: vec![0, 2]
                },
                TopicPartitions {
                    topic: "b".into(),
                    partitions: vec![1]
                },
            ]
        );
        m.complete_transition(&t).unwrap();
        let loaded = TxnMetadata::from_log_value("t".into(), &value).unwrap();
        assert_eq!(loaded.partitions, m.partitions);
        assert_eq!(
            (
                loaded.state,
                loaded.producer_epoch,
                loaded.start_timestamp_ms
            ),
            (Ongoing, 0, 3)
        );
        assert_eq!(loaded.last_producer_epoch, NO_PRODUCER_EPOCH);
    }
}
