//! What a partition remembers of each idempotent producer, and the checks an append from a
//! client must pass against it. Pure: no I/O and no clock of its own (the caller passes the
//! time), so the rules are tested here exactly as Kafka clients meet them.
//!
//! The rules are Kafka's (its `ProducerAppendInfo`), with one deliberate difference noted at
//! [`ProducerError::UnknownProducerId`]:
//! - a batch whose producer id, epoch and sequence range match one of the producer's last
//!   [`RETAINED_BATCHES`] batches is a retry: it is answered with the offsets it got the first
//!   time and not written again;
//! - an epoch older than the producer's is refused (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0;
//! - within an epoch, each batch's first sequence must follow the last one (wrapping from
//!   `i32::MAX` to 0), otherwise OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Transactions (KIP-98, Kafka's `ProducerStateEntry.currentTxnFirstOffset`): a producer's
//! first transactional batch opens a transaction at its first offset; the transaction stays
//! open until a marker ([`ProducerStates::check_marker`]) ends it. While it is open the
//! producer may send only transactional batches (INVALID_TXN_STATE otherwise). The open
//! transactions' first offsets are indexed here too, since the last stable offset is the
//! smallest of them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::log::batch::BatchHeader;
use crate::log::txn::{CompletedTxn, EndTxnMarker, MarkerKind};

/// Batches remembered per producer and partition: as many requests as an idempotent producer
/// may have in flight (`max.in.flight.requests.per.connection` <= 5), so any of them can be
/// retried and recognised.
pub const RETAINED_BATCHES: usize = 5;

/// A batch header's producer id when the batch is not from an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// One batch a producer appended: enough to recognise its retry and answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time on LogAppendTime topics).
    pub max_timestamp: i64,
}

/// A producer's state on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`RETAINED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// When the producer last appended here (broker clock, ms): expiry counts from it.
    pub last_append_ms: i64,
    /// The first offset of the producer's open transaction on this partition, if one is open
    /// (Kafka's `currentTxnFirstOffset`).
    pub current_txn_first_offset: Option<i64>,
    /// The coordinator epoch of the last marker written for this producer; -1 before any.
    /// A marker from an older coordinator is fenced.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    pub fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(RETAINED_BATCHES),
            last_append_ms: 0,
            current_txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }

    /// The last sequence appended in the current epoch, if any.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// The last offset this producer wrote here.
    pub fn last_offset(&self) -> Option<i64> {
        self.batches.back().map(|b| b.last_offset)
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Moves to `epoch`, forgetting the old epoch's batches if it is another.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    /// Records an appended batch; a new epoch forgets the old epoch's batches. A
    /// transactional batch opens a transaction unless one is open.
    fn add(&mut self, epoch: i16, batch: BatchMetadata, transactional: bool, now_ms: i64) {
        self.set_epoch(epoch);
        if transactional && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(batch.first_offset);
        }
        if self.batches.len() == RETAINED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_append_ms = self.last_append_ms.max(now_ms);
    }
}

/// Why a client's batch was refused; nothing of the append is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a gap, or a sequence older than the retained batches.
    #[error("out of order sequence for producer {producer_id}: got {got}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// INVALID_PRODUCER_EPOCH: a fenced (older) epoch. Kafka answers produce requests this
    /// way since 2.7; clients abort or bump rather than treat it as fatal.
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// UNKNOWN_PRODUCER_ID: the partition has no state for this producer (never seen, or
    /// expired after `producer.id.expiration.ms`) and the batch does not start a sequence.
    ///
    /// Kafka since 2.5 accepts such a batch silently; answering it instead lets the client
    /// tell "the broker forgot me" from a real gap: Kafka 3.x clients and librdkafka reset
    /// the producer's epoch and resend from sequence 0, so nothing is written twice or
    /// skipped unseen.
    #[error("producer {producer_id} has no state on this partition and sent sequence {got}")]
    UnknownProducerId { producer_id: i64, got: i32 },
    /// INVALID_RECORD: a batch no client may send (a control batch, a producer id with a
    /// negative sequence or epoch).
    #[error("{0}")]
    InvalidRecord(&'static str),
    /// INVALID_TXN_STATE: a non-transactional batch from a producer whose transaction is open
    /// on this partition (Kafka's `InvalidTxnStateException`); also a transactional batch to
    /// a log that doesn't take them ([`LogConfig::transactions`](crate::log::LogConfig)
    /// off). The name is kept from when the log refused every transactional batch, so the
    /// broker's mapping stays as it was.
    #[error("non-transactional batch from producer {producer_id} while its transaction is open")]
    NotInTransaction { producer_id: i64 },
    /// TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator epoch older than the last
    /// one written for the producer (a coordinator that lost its partition of
    /// `__transaction_state`).
    #[error(
        "marker for producer {producer_id} from coordinator epoch {got}, older than {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        current: i32,
        got: i32,
    },
}

/// What checking a client's append decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write it, then [`ProducerStates::commit`] the update.
    Append(ProducerUpdate),
    /// A retry of this batch, already in the log: answer with its offsets, write nothing.
    Duplicate(BatchMetadata),
}

/// The producer entries an append changes, applied once its offsets are assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerUpdate {
    /// Usually one producer per append.
    entries: Vec<(i64, ProducerEntry)>,
}

impl ProducerUpdate {
    fn entry_mut(&mut self, producer_id: i64) -> Option<&mut ProducerEntry> {
        self.entries
            .iter_mut()
            .find(|(id, _)| *id == producer_id)
            .map(|(_, e)| e)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    entries: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id (Kafka's `ongoingTxns`), kept in step
    /// with the entries' `current_txn_first_offset`.
    ongoing: BTreeMap<i64, i64>,
}

/// The last sequence of a batch starting at `first` with `last_offset_delta`, wrapping past
/// `i32::MAX` to 0 as producers number them.
pub fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    let delta = last_offset_delta.max(0);
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}

fn follows(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

impl ProducerStates {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every producer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.entries.iter().map(|(&id, e)| (id, e))
    }

    /// Sets a producer's entry, keeping the index of open transactions in step.
    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        let opened = entry.current_txn_first_offset;
        let old = self.entries.insert(producer_id, entry);
        if let Some(first) = old.and_then(|o| o.current_txn_first_offset) {
            self.ongoing.remove(&first);
        }
        if let Some(first) = opened {
            self.ongoing.insert(first, producer_id);
        }
    }

    /// The first offset of the earliest open transaction.
    pub fn first_open_txn_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions as `(first offset, producer id)`, earliest first.
    pub fn open_txns(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(&first, &pid)| (first, pid))
    }

    /// The last stable offset right after `completed`'s marker, as Kafka records it in the
    /// aborted transaction index: the first offset of the earliest transaction still open of
    /// another producer, or the offset after the marker.
    pub fn last_stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, &pid)| pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(&first, _)| first)
    }

    /// Checks a client's append: `batches` are the record set's batches with the first
    /// offset each will get. A duplicate is reported only as the whole append's verdict (as
    /// Kafka does: a retried request carries the same batches it did the first time).
    pub fn check_client_append<'a>(
        &self,
        batches: impl IntoIterator<Item = (i64, &'a BatchHeader)>,
        now_ms: i64,
    ) -> Result<Verdict, ProducerError> {
        let mut update = ProducerUpdate::default();
        for (first_offset, header) in batches {
            // Markers come from the transaction coordinator, through `check_marker`.
            if header.is_control() {
                return Err(ProducerError::InvalidRecord(
                    "clients may not write control batches",
                ));
            }
            let producer_id = header.producer_id;
            // Kafka reads any negative id as "no producer" (`hasProducerId`).
            if producer_id <= NO_PRODUCER_ID {
                // A transaction can't be ended without its producer: it would never be
                // decided, yet never hold the LSO back either.
                if header.is_transactional() {
                    return Err(ProducerError::InvalidRecord(
                        "a transactional batch needs a producer id",
                    ));
                }
                continue;
            }
            if header.producer_epoch < 0 || header.base_sequence < 0 {
                return Err(ProducerError::InvalidRecord(
                    "a batch with a producer id needs a valid epoch and sequence",
                ));
            }
            let epoch = header.producer_epoch;
            let first_seq = header.base_sequence;
            let last_seq = last_sequence(first_seq, header.last_offset_delta);
            let current = self.entries.get(&producer_id);
            if let Some(dup) = current.and_then(|e| e.find_duplicate(epoch, first_seq, last_seq)) {
                return Ok(Verdict::Duplicate(dup));
            }
            if update.entry_mut(producer_id).is_none() {
                let start = current
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::new(epoch));
                update.entries.push((producer_id, start));
            }
            let entry = update.entry_mut(producer_id).expect("just added");
            let known = current.is_some() || !entry.batches.is_empty();
            check_sequence(producer_id, entry, known, epoch, first_seq)?;
            let transactional = header.is_transactional();
            if !transactional && entry.current_txn_first_offset.is_some() {
                return Err(ProducerError::NotInTransaction { producer_id });
            }
            let batch = BatchMetadata {
                first_seq,
                last_seq,
                first_offset,
                last_offset: first_offset + i64::from(header.last_offset_delta),
                max_timestamp: header.max_timestamp,
            };
            entry.add(epoch, batch, transactional, now_ms);
        }
        Ok(Verdict::Append(update))
    }

    /// Checks transactional batches the broker's group coordinator writes for a producer
    /// (TxnOffsetCommit into `__consumer_offsets`, Kafka's `AppendOrigin.COORDINATOR`): the
    /// epoch rule applies, sequences don't (the coordinator doesn't know the producer's), and
    /// each batch opens the producer's transaction here if none is open.
    pub fn check_coordinator_append<'a>(
        &self,
        batches: impl IntoIterator<Item = (i64, &'a BatchHeader)>,
        now_ms: i64,
    ) -> Result<ProducerUpdate, ProducerError> {
        let mut update = ProducerUpdate::default();
        for (first_offset, header) in batches {
            let producer_id = header.producer_id;
            if header.is_control() || !header.is_transactional() || producer_id <= NO_PRODUCER_ID {
                return Err(ProducerError::InvalidRecord(
                    "a coordinator writes transactional data batches only",
                ));
            }
            let epoch = header.producer_epoch;
            if update.entry_mut(producer_id).is_none() {
                let start = self
                    .entries
                    .get(&producer_id)
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::new(epoch));
                update.entries.push((producer_id, start));
            }
            let entry = update.entry_mut(producer_id).expect("just added");
            if epoch < entry.epoch {
                return Err(ProducerError::InvalidProducerEpoch {
                    producer_id,
                    current: entry.epoch,
                    got: epoch,
                });
            }
            let batch = BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
                first_offset,
                last_offset: first_offset + i64::from(header.last_offset_delta),
                max_timestamp: header.max_timestamp,
            };
            entry.add(epoch, batch, true, now_ms);
        }
        Ok(update)
    }

    /// Applies a checked append's update (its offsets were assigned as checked).
    pub fn commit(&mut self, update: ProducerUpdate) {
        for (producer_id, entry) in update.entries {
            self.insert(producer_id, entry);
        }
    }

    /// Checks a transaction marker for `producer_id` at `epoch`, to be written at `offset`
    /// (Kafka's `ProducerAppendInfo.appendEndTxnMarker`):
    /// - an epoch older than the producer's is refused as INVALID_PRODUCER_EPOCH, the code
    ///   Kafka (2.7+) answers markers with too: its coordinator then drops the marker, the
    ///   transaction having been ended by a newer epoch;
    /// - a coordinator epoch older than the last marker's is TRANSACTION_COORDINATOR_FENCED.
    ///
    /// A marker for a producer without an open transaction here is written all the same
    /// (the coordinator sends markers to every partition it added; some saw no data, or a
    /// retry comes after the first marker was written): it completes nothing. The marker's
    /// epoch becomes the producer's (a bumped epoch fences the old one) and the open
    /// transaction, if any, is returned as completed; apply the update with
    /// [`commit`](Self::commit).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
        now_ms: i64,
    ) -> Result<(ProducerUpdate, Option<CompletedTxn>), ProducerError> {
        let current = self.entries.get(&producer_id);
        if let Some(current) = current {
            if epoch < current.epoch {
                return Err(ProducerError::InvalidProducerEpoch {
                    producer_id,
                    current: current.epoch,
                    got: epoch,
                });
            }
            if current.coordinator_epoch > marker.coordinator_epoch {
                return Err(ProducerError::TransactionCoordinatorFenced {
                    producer_id,
                    current: current.coordinator_epoch,
                    got: marker.coordinator_epoch,
                });
            }
        }
        let mut entry = current
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(epoch));
        let completed = end_txn(producer_id, &mut entry, epoch, marker, offset, now_ms);
        let update = ProducerUpdate {
            entries: vec![(producer_id, entry)],
        };
        Ok((update, completed))
    }

    /// Records a marker already in the log (recovery), without checks; returns the
    /// transaction it completed, if one was open.
    pub fn replay_marker(
        &mut self,
        header: &BatchHeader,
        marker: EndTxnMarker,
        now_ms: i64,
    ) -> Option<CompletedTxn> {
        if header.producer_id < 0 {
            return None;
        }
        let producer_id = header.producer_id;
        let mut entry = self
            .entries
            .get(&producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(header.producer_epoch));
        let completed = end_txn(
            producer_id,
            &mut entry,
            header.producer_epoch,
            marker,
            header.base_offset,
            now_ms,
        );
        self.insert(producer_id, entry);
        completed
    }

    /// Records a batch already in the log (recovery replaying it, later replication), without
    /// checks: the log is the truth. `now_ms` stands for its append time.
    pub fn replay(&mut self, header: &BatchHeader, now_ms: i64) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self
            .entries
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch));
        if header.producer_epoch < entry.epoch {
            return;
        }
        let batch = BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        };
        let opened = entry.current_txn_first_offset.is_none() && header.is_transactional();
        entry.add(
            header.producer_epoch,
            batch,
            header.is_transactional(),
            now_ms,
        );
        if opened {
            self.ongoing.insert(header.base_offset, header.producer_id);
        }
    }

    /// Forgets producers that have not appended for `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`), except those with an open transaction (as Kafka: the
    /// transaction must stay unstable until its marker). Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_append_ms) < expiration_ms
        });
        before - self.entries.len()
    }
}

/// A marker's effect on its producer's entry: its epoch (and coordinator epoch) become the
/// producer's, and the open transaction, if any, completes.
fn end_txn(
    producer_id: i64,
    entry: &mut ProducerEntry,
    epoch: i16,
    marker: EndTxnMarker,
    offset: i64,
    now_ms: i64,
) -> Option<CompletedTxn> {
    entry.set_epoch(epoch);
    entry.coordinator_epoch = marker.coordinator_epoch;
    entry.last_append_ms = entry.last_append_ms.max(now_ms);
    entry
        .current_txn_first_offset
        .take()
        .map(|first_offset| CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            aborted: marker.kind == MarkerKind::Abort,
        })
}

/// The sequence rules for one batch of `producer_id` against its entry so far.
fn check_sequence(
    producer_id: i64,
    entry: &ProducerEntry,
    known: bool,
    epoch: i16,
    first_seq: i32,
) -> Result<(), ProducerError> {
    if known && epoch < entry.epoch {
        return Err(ProducerError::InvalidProducerEpoch {
            producer_id,
            current: entry.epoch,
            got: epoch,
        });
    }
    let last_seq = entry.last_seq().filter(|_| epoch == entry.epoch);
    match last_seq {
        // A known producer in a new epoch, or one that has no batch in this epoch yet.
        None if known && first_seq != 0 => Err(ProducerError::OutOfOrderSequence {
            producer_id,
            expected: 0,
            got: first_seq,
        }),
        None if !known && first_seq != 0 => Err(ProducerError::UnknownProducerId {
            producer_id,
            got: first_seq,
        }),
        None => Ok(()),
        Some(last) if follows(last, first_seq) => Ok(()),
        Some(last) => Err(ProducerError::OutOfOrderSequence {
            producer_id,
            expected: last_sequence(last, 1),
            got: first_seq,
        }),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
