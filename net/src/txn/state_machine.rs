//! The transaction coordinator of one shard as a sans-IO state machine (Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`, KIP-98, with KIP-360's producer
//! recovery): the metadata of every transactional id whose `__transaction_state` partition this
//! shard has loaded, and the rules of InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//! EndTxn, DescribeTransactions and ListTransactions.
//!
//! Nothing here does I/O or reads a clock: every call takes the time (`now_ms`, wall-clock
//! milliseconds, which is what the records hold). What must be done outside is queued as
//! [`Effect`]s, which the driver takes with [`Transactions::take_effects`] after each call:
//!
//! - [`Effect::Store`]: append this key and value (a `None` value is a tombstone) to that
//!   partition of `__transaction_state`, then report with [`Transactions::stored`]. Every state
//!   change is stored before anyone is told of it; a failed store drops the change.
//! - [`Effect::WriteMarkers`]: write these commit or abort markers (WriteTxnMarkers) to every
//!   partition listed, retrying each until it is written or its partition is gone, then report
//!   with [`Transactions::markers_written`]. The completion record follows as a store.
//!
//! Requests that must wait for a store get their answer through a one-shot
//! ([`Deferred::Later`], the group coordinator's, reused), the rest get it at once
//! ([`Deferred::Now`]). One-shots rather than answers returned as effects, because then the
//! driver correlates nothing: a handler calls the operation, lets the driver run the effects,
//! and awaits its own answer; the driver's effect loop stays the same for every API and for the
//! coordinator's own work (timeouts, expiration, completing transactions after a load), which
//! has nobody waiting. A one-shot dropped without an answer (never, short of a bug) reads as
//! `None`: answer COORDINATOR_NOT_AVAILABLE.
//!
//! The driver also calls [`Transactions::tick`] periodically (Kafka checks timeouts every 10 s
//! and expiration every hour: each tick does both, so tick every few seconds) and
//! [`Transactions::load`] / [`Transactions::unload`] when the shard gains or loses a partition
//! of `__transaction_state`.
//!
//! # Driving it
//!
//! One `Transactions` per shard, in a `RefCell`, beside the shard's `__transaction_state`
//! partitions; every call below runs on that shard and never across an `.await`.
//!
//! - On leading a `__transaction_state` partition: [`Transactions::begin_load`] with the
//!   partition's leader epoch as the coordinator epoch (requests then get
//!   COORDINATOR_LOAD_IN_PROGRESS), read the partition from its log start, pass every
//!   record's key and value in log order to [`Transactions::load`], then run the effects.
//! - A handler (InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
//!   EndTxn) calls the operation, asks the driver to run the effects, then
//!   `answer.get().await` (`None` only if the machine was dropped: COORDINATOR_NOT_AVAILABLE),
//!   and maps PRODUCER_FENCED for old request versions with [`error_for_version`].
//!   InitProducerId without a transactional id never comes here: it just takes a producer id.
//! - Running the effects: for each [`Effect::Store`], append `key`/`value` as one record
//!   (uncompressed, acks=all) to `token.partition` of `__transaction_state`, then call
//!   [`Transactions::stored`] with the append's error code if it failed; for each
//!   [`Effect::WriteMarkers`], send WriteTxnMarkers (producer id, epoch, result, coordinator
//!   epoch, partitions) to the partitions' leaders, retrying retriable errors; a partition whose
//!   topic is gone counts as written; a TRANSACTION_COORDINATOR_FENCED answer means a newer
//!   coordinator owns the transaction: stop and don't report. When all are written, call
//!   [`Transactions::markers_written`]. Each report may queue more effects: run them too.
//! - A ticker calls [`Transactions::tick`] and runs the effects.
//! - On losing the partition: [`Transactions::unload`]; reports arriving later are ignored.

use std::collections::{BTreeSet, HashMap};

use super::metadata::{epoch_exhausted, TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use super::records;
use crate::groups::group::Deferred;
use crate::groups::oneshot::{self, Sender};
use crate::kafka::error_code as ec;
use crate::partitions::TopicPartition;

/// The group coordinator's topic, whose partitions AddOffsetsToTxn adds.
pub const OFFSETS_TOPIC: &str = crate::groups::OFFSETS_TOPIC;

/// The first request versions that know PRODUCER_FENCED; older clients are answered
/// INVALID_PRODUCER_EPOCH instead (Kafka's `KafkaApis`). See [`error_for_version`].
pub const INIT_PRODUCER_ID_FENCED_SINCE: i16 = 4;
pub const ADD_PARTITIONS_FENCED_SINCE: i16 = 2;
pub const ADD_OFFSETS_FENCED_SINCE: i16 = 2;
pub const END_TXN_FENCED_SINCE: i16 = 2;

/// PRODUCER_FENCED as a client of `version` understands it (`fenced_since`: one of the
/// `*_FENCED_SINCE` constants).
pub fn error_for_version(error: i16, version: i16, fenced_since: i16) -> i16 {
    if error == ec::PRODUCER_FENCED && version < fenced_since {
        ec::INVALID_PRODUCER_EPOCH
    } else {
        error
    }
}

/// The broker's transaction settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest timeout a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an id may stay idle before it is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// The version of the values written ([`records::VALUE_VERSION`] as Kafka 3.x does).
    pub value_version: i16,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            value_version: records::VALUE_VERSION,
        }
    }
}

/// Commit or abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnResult {
    /// EndTxn's `committed` flag; WriteTxnMarkers' `transaction_result`.
    pub fn from_committed(committed: bool) -> Self {
        if committed {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        }
    }

    pub fn is_commit(self) -> bool {
        self == TxnResult::Commit
    }
}

/// InitProducerId's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitResult {
    pub error: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl InitResult {
    fn error(error: i16) -> Self {
        InitResult {
            error,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
        }
    }
}

/// EndTxn's answer (the producer id and epoch are for EndTxn v5's response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnResult {
    pub error: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl EndTxnResult {
    fn error(error: i16) -> Self {
        EndTxnResult {
            error,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
        }
    }
}

/// Which store a [`Transactions::stored`] report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreToken {
    pub partition: i32,
    pub coordinator_epoch: i32,
    pub transactional_id: String,
    seq: u64,
}

/// A record to append to `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRequest {
    /// Give it back to [`Transactions::stored`]; `token.partition` is the partition to append
    /// to.
    pub token: StoreToken,
    pub key: Vec<u8>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Markers to write: one WriteTxnMarkers entry per partition leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    /// The `__transaction_state` partition of the transaction.
    pub partition: i32,
    pub coordinator_epoch: i32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    pub partitions: Vec<TopicPartition>,
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Store(StoreRequest),
    WriteMarkers(MarkerRequest),
}

impl Effect {
    fn partition(&self) -> i32 {
        match self {
            Effect::Store(s) => s.token.partition,
            Effect::WriteMarkers(m) => m.partition,
        }
    }
}

/// What [`Transactions::load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Transactional ids now held.
    pub transactional_ids: usize,
    /// Records that could not be read (unknown key version, damaged key or value): skipped.
    pub skipped_records: usize,
    /// Ids found in PrepareCommit or PrepareAbort: their markers are queued again
    /// ([`Effect::WriteMarkers`]), as Kafka completes them on load.
    pub completing: Vec<String>,
}

/// One id in DescribeTransactions' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTxn {
    pub transactional_id: String,
    pub error: i16,
    pub state: &'static str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_timestamp_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

impl DescribedTxn {
    fn error(transactional_id: &str, error: i16) -> Self {
        DescribedTxn {
            transactional_id: transactional_id.to_owned(),
            error,
            state: "",
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: 0,
            start_timestamp_ms: -1,
            partitions: Vec::new(),
        }
    }
}

/// ListTransactions' filters (empty: no filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// State names, as Kafka names them.
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// v1: only transactions running longer than this; -1 for all.
    pub min_duration_ms: i64,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            states: Vec::new(),
            producer_ids: Vec::new(),
            min_duration_ms: -1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: &'static str,
}

/// ListTransactions' answer for this shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    pub error: i16,
    pub unknown_state_filters: Vec<String>,
    /// By transactional id.
    pub transactions: Vec<ListedTxn>,
}

/// Who waits for the pending transition.
#[derive(Debug)]
enum Waiter {
    /// The coordinator itself (a timed-out abort, a completion, an expiration).
    Nobody,
    Init(Sender<InitResult>),
    /// An InitProducerId that found a transaction open: it is answered
    /// CONCURRENT_TRANSACTIONS once the fencing abort is stored, and retries.
    FenceForInit(Sender<InitResult>),
    Add(Sender<i16>),
    End(Sender<EndTxnResult>),
}

impl Waiter {
    /// The transition failed with `error`.
    fn fail(self, error: i16) {
        match self {
            Waiter::Nobody => {}
            Waiter::Init(tx) | Waiter::FenceForInit(tx) => tx.send(InitResult::error(error)),
            Waiter::Add(tx) => tx.send(error),
            Waiter::End(tx) => tx.send(EndTxnResult::error(error)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The pending transition's record is being stored.
    Storing,
    /// The pending completion waits for its markers.
    AwaitingMarkers,
    /// Storing the pending completion failed: stored again at the next tick.
    RetryStore,
}

/// The bookkeeping of a pending transition.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    waiter: Waiter,
    phase: Phase,
    /// The transition is a fence: if it can't be stored, the epoch it bumped (in memory) must
    /// not be bumped again.
    epoch_fence: bool,
}

#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    /// `Some` exactly while `meta.pending` is.
    flight: Option<InFlight>,
}

#[derive(Debug)]
enum Partition {
    Loading {
        coordinator_epoch: i32,
    },
    Loaded {
        coordinator_epoch: i32,
        txns: HashMap<String, Entry>,
    },
}

/// The queue of effects, apart from the partitions so both can be borrowed at once.
#[derive(Debug, Default)]
struct Outbox {
    effects: Vec<Effect>,
    next_seq: u64,
    value_version: i16,
}

impl Outbox {
    /// Queues the store of `entry`'s pending transition.
    fn store(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        entry: &mut Entry,
        waiter: Waiter,
        epoch_fence: bool,
    ) {
        self.next_seq += 1;
        entry.flight = Some(InFlight {
            seq: self.next_seq,
            waiter,
            phase: Phase::Storing,
            epoch_fence,
        });
        self.push_store(partition, coordinator_epoch, entry);
    }

    fn push_store(&mut self, partition: i32, coordinator_epoch: i32, entry: &Entry) {
        let (Some(transit), Some(flight)) = (&entry.meta.pending, &entry.flight) else {
            return;
        };
        let id = &entry.meta.transactional_id;
        let value = (transit.state != TxnState::Dead)
            .then(|| records::encode_value(&transit.to_log_value(), self.value_version));
        self.effects.push(Effect::Store(StoreRequest {
            token: StoreToken {
                partition,
                coordinator_epoch,
                transactional_id: id.clone(),
                seq: flight.seq,
            },
            key: records::encode_key(id),
            value,
        }));
    }

    /// The Prepare* record is stored: prepare the completion and queue the markers.
    fn markers(&mut self, partition: i32, coordinator_epoch: i32, entry: &mut Entry, now_ms: i64) {
        let meta = &mut entry.meta;
        let result = match meta.state {
            TxnState::PrepareCommit => TxnResult::Commit,
            _ => TxnResult::Abort,
        };
        let partitions = meta.partitions.iter().cloned().collect();
        if meta.prepare_complete(now_ms).is_err() {
            return;
        }
        self.next_seq += 1;
        entry.flight = Some(InFlight {
            seq: self.next_seq,
            waiter: Waiter::Nobody,
            phase: Phase::AwaitingMarkers,
            epoch_fence: false,
        });
        self.effects.push(Effect::WriteMarkers(MarkerRequest {
            partition,
            coordinator_epoch,
            transactional_id: meta.transactional_id.clone(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            result,
            partitions,
        }));
    }
}

/// Kafka's mapping of an append's error to what the coordinator answers
/// (`TransactionStateManager.appendTransactionToLog`).
pub fn store_error(append_error: i16) -> i16 {
    match append_error {
        ec::UNKNOWN_TOPIC_OR_PARTITION
        | ec::NOT_ENOUGH_REPLICAS
        | ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ec::REQUEST_TIMED_OUT => ec::COORDINATOR_NOT_AVAILABLE,
        ec::NOT_LEADER_OR_FOLLOWER | ec::KAFKA_STORAGE_ERROR => ec::NOT_COORDINATOR,
        ec::MESSAGE_TOO_LARGE | ec::RECORD_LIST_TOO_LARGE => ec::UNKNOWN_SERVER_ERROR,
        ec::NONE => ec::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// The transaction coordinator's state on one shard.
#[derive(Debug)]
pub struct Transactions {
    config: TxnConfig,
    /// Partitions of `__transaction_state` (what a transactional id hashes over).
    partition_count: i32,
    partitions: HashMap<i32, Partition>,
    out: Outbox,
}

impl Transactions {
    pub fn new(config: TxnConfig, partition_count: i32) -> Self {
        Transactions {
            config,
            partition_count: partition_count.max(1),
            partitions: HashMap::new(),
            out: Outbox {
                value_version: config.value_version,
                ..Outbox::default()
            },
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The `__transaction_state` partition of `transactional_id` (Kafka's
    /// `abs(hashCode) % partitions`, the rule groups use too).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        crate::groups::partition_for(transactional_id, self.partition_count)
    }

    /// The coordinator epoch of a loaded partition.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        match self.partitions.get(&partition)? {
            Partition::Loaded {
                coordinator_epoch, ..
            } => Some(*coordinator_epoch),
            Partition::Loading { .. } => None,
        }
    }

    /// An id's metadata (None if unknown or its partition isn't loaded here).
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        match self.partitions.get(&self.partition_for(transactional_id))? {
            Partition::Loaded { txns, .. } => txns.get(transactional_id).map(|e| &e.meta),
            Partition::Loading { .. } => None,
        }
    }

    /// The effects queued since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out.effects)
    }

    /// Whether [`take_effects`](Self::take_effects) has something.
    pub fn has_effects(&self) -> bool {
        !self.out.effects.is_empty()
    }

    /// The partitions of `__transaction_state` loaded here, in order.
    pub fn loaded_partitions(&self) -> Vec<i32> {
        let mut loaded: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| matches!(p, Partition::Loaded { .. }))
            .map(|(&partition, _)| partition)
            .collect();
        loaded.sort_unstable();
        loaded
    }

    /// The partition's coordinator epoch and its ids, or the error for a request about it.
    fn owned(
        partitions: &mut HashMap<i32, Partition>,
        partition: i32,
    ) -> Result<(i32, &mut HashMap<String, Entry>), i16> {
        match partitions.get_mut(&partition) {
            None => Err(ec::NOT_COORDINATOR),
            Some(Partition::Loading { .. }) => Err(ec::COORDINATOR_LOAD_IN_PROGRESS),
            Some(Partition::Loaded {
                coordinator_epoch,
                txns,
            }) => Ok((*coordinator_epoch, txns)),
        }
    }

    /// InitProducerId with a transactional id. `allocate` hands out a new producer id (or the
    /// error to answer). `expected` is KIP-360's producer id and epoch the producer had.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Deferred<InitResult> {
        let now = |error| Deferred::Now(InitResult::error(error));
        if transactional_id.is_empty() {
            return now(ec::INVALID_REQUEST);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return now(ec::INVALID_TRANSACTION_TIMEOUT);
        }
        let partition = self.partition_for(transactional_id);
        let (coordinator_epoch, txns) = match Self::owned(&mut self.partitions, partition) {
            Ok(owned) => owned,
            Err(error) => return now(error),
        };
        if !txns.contains_key(transactional_id) {
            let producer_id = match allocate() {
                Ok(id) => id,
                Err(error) => return now(error),
            };
            let meta =
                TxnMetadata::new(transactional_id.to_owned(), producer_id, timeout_ms, now_ms);
            txns.insert(transactional_id.to_owned(), Entry { meta, flight: None });
        }
        let entry = txns.get_mut(transactional_id).expect("inserted above");
        let meta = &mut entry.meta;
        if meta.pending.is_some() {
            return now(ec::CONCURRENT_TRANSACTIONS);
        }
        // KIP-360: the producer's id must be this one, a rotated one retried with its exhausted
        // epoch, or anything while the id has never been handed out.
        let valid_id = |(id, epoch): (i64, i16)| {
            meta.producer_epoch == NO_PRODUCER_EPOCH
                || id == meta.producer_id
                || (id == meta.previous_producer_id && epoch_exhausted(epoch))
        };
        if !expected.is_none_or(valid_id) {
            return now(ec::PRODUCER_FENCED);
        }
        let (transit, waiter, rx, is_fence) = match meta.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                return now(ec::CONCURRENT_TRANSACTIONS)
            }
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => {
                let rotate = meta.epoch_exhausted()
                    && expected.is_none_or(|(_, epoch)| epoch == meta.producer_epoch);
                let transit = if rotate {
                    let producer_id = match allocate() {
                        Ok(id) => id,
                        Err(error) => return now(error),
                    };
                    meta.prepare_producer_id_rotation(
                        producer_id,
                        timeout_ms,
                        now_ms,
                        expected.is_some(),
                    )
                } else {
                    meta.prepare_increment_epoch(timeout_ms, expected.map(|e| e.1), now_ms)
                };
                let (tx, rx) = oneshot::channel();
                (transit, Waiter::Init(tx), rx, false)
            }
            TxnState::Ongoing => {
                // Fence the producer and abort its transaction; the InitProducerId is answered
                // CONCURRENT_TRANSACTIONS and retried, which bumps the epoch again (or rotates
                // the id if the fence used up the epochs). The fence's epoch is never handed
                // out.
                let transit = meta.prepare_epoch_fence_abort(now_ms);
                let (tx, rx) = oneshot::channel();
                (transit, Waiter::FenceForInit(tx), rx, true)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                tracing::error!(
                    transactional_id,
                    state = meta.state.name(),
                    "a transactional id in a state it should never be in"
                );
                return now(ec::UNKNOWN_SERVER_ERROR);
            }
        };
        match transit {
            Ok(_) => {
                self.out
                    .store(partition, coordinator_epoch, entry, waiter, is_fence);
                Deferred::Later(rx)
            }
            Err(e) => now(e.code()),
        }
    }

    /// AddPartitionsToTxn (v0-v3, and v4+ without verify_only): the error for every
    /// partition. Partitions already in the transaction need no store.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: impl IntoIterator<Item = TopicPartition>,
        now_ms: i64,
    ) -> Deferred<i16> {
        if transactional_id.is_empty() {
            return Deferred::Now(ec::INVALID_REQUEST);
        }
        let partition = self.partition_for(transactional_id);
        let (coordinator_epoch, txns) = match Self::owned(&mut self.partitions, partition) {
            Ok(owned) => owned,
            Err(error) => return Deferred::Now(error),
        };
        let Some(entry) = txns.get_mut(transactional_id) else {
            return Deferred::Now(ec::INVALID_PRODUCER_ID_MAPPING);
        };
        let meta = &mut entry.meta;
        let added: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        let error = if meta.producer_id != producer_id {
            ec::INVALID_PRODUCER_ID_MAPPING
        } else if meta.producer_epoch != producer_epoch {
            ec::PRODUCER_FENCED
        } else if meta.pending.is_some()
            || matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            ec::CONCURRENT_TRANSACTIONS
        } else if meta.state == TxnState::Ongoing && added.is_subset(&meta.partitions) {
            ec::NONE
        } else {
            match meta.prepare_add_partitions(added, now_ms) {
                Ok(_) => {
                    let (tx, rx) = oneshot::channel();
                    self.out
                        .store(partition, coordinator_epoch, entry, Waiter::Add(tx), false);
                    return Deferred::Later(rx);
                }
                Err(e) => e.code(),
            }
        };
        Deferred::Now(error)
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition (`offsets_partition`,
    /// from `groups::partition_for`), as Kafka does, through AddPartitionsToTxn's rules.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
        now_ms: i64,
    ) -> Deferred<i16> {
        let partition = TopicPartition::new(OFFSETS_TOPIC, offsets_partition);
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            [partition],
            now_ms,
        )
    }

    /// AddPartitionsToTxn v4+ with verify_only (a partition leader checking a transactional
    /// produce, KIP-890): each partition's error, NONE if it is in the transaction,
    /// TRANSACTION_ABORTABLE if not (Kafka 3.8+; 3.6 and 3.7 answered INVALID_TXN_STATE).
    /// Nothing changes.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let all = |error: i16| partitions.iter().map(|p| (p.clone(), error)).collect();
        if transactional_id.is_empty() {
            return all(ec::INVALID_REQUEST);
        }
        let txns = match self.partitions.get(&self.partition_for(transactional_id)) {
            None => return all(ec::NOT_COORDINATOR),
            Some(Partition::Loading { .. }) => return all(ec::COORDINATOR_LOAD_IN_PROGRESS),
            Some(Partition::Loaded { txns, .. }) => txns,
        };
        let Some(entry) = txns.get(transactional_id) else {
            return all(ec::INVALID_PRODUCER_ID_MAPPING);
        };
        let meta = &entry.meta;
        if meta.producer_id != producer_id {
            return all(ec::INVALID_PRODUCER_ID_MAPPING);
        }
        if meta.producer_epoch != producer_epoch {
            return all(ec::PRODUCER_FENCED);
        }
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return all(ec::CONCURRENT_TRANSACTIONS);
        }
        partitions
            .iter()
            .map(|p| {
                let error = if meta.partitions.contains(p) {
                    ec::NONE
                } else {
                    ec::TRANSACTION_ABORTABLE
                };
                (p.clone(), error)
            })
            .collect()
    }

    /// EndTxn: PrepareCommit or PrepareAbort is stored, then the client is answered and the
    /// markers go out. A retry of an EndTxn that completed succeeds; the opposite result is
    /// INVALID_TXN_STATE; so is ending a transaction that never started (Empty).
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        now_ms: i64,
    ) -> Deferred<EndTxnResult> {
        let now = |error| Deferred::Now(EndTxnResult::error(error));
        if transactional_id.is_empty() {
            return now(ec::INVALID_REQUEST);
        }
        let partition = self.partition_for(transactional_id);
        let (coordinator_epoch, txns) = match Self::owned(&mut self.partitions, partition) {
            Ok(owned) => owned,
            Err(error) => return now(error),
        };
        let Some(entry) = txns.get_mut(transactional_id) else {
            return now(ec::INVALID_PRODUCER_ID_MAPPING);
        };
        let meta = &mut entry.meta;
        if meta.producer_id != producer_id {
            return now(ec::INVALID_PRODUCER_ID_MAPPING);
        }
        if meta.producer_epoch != producer_epoch {
            return now(ec::PRODUCER_FENCED);
        }
        if meta.pending.is_some() {
            return now(ec::CONCURRENT_TRANSACTIONS);
        }
        let done = Deferred::Now(EndTxnResult {
            error: ec::NONE,
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
        });
        match (meta.state, result) {
            (TxnState::Ongoing, _) => {
                let target = match result {
                    TxnResult::Commit => TxnState::PrepareCommit,
                    TxnResult::Abort => TxnState::PrepareAbort,
                };
                match meta.prepare_abort_or_commit(target, now_ms) {
                    Ok(_) => {
                        let (tx, rx) = oneshot::channel();
                        self.out
                            .store(partition, coordinator_epoch, entry, Waiter::End(tx), false);
                        Deferred::Later(rx)
                    }
                    Err(e) => now(e.code()),
                }
            }
            (TxnState::CompleteCommit, TxnResult::Commit)
            | (TxnState::CompleteAbort, TxnResult::Abort) => done,
            (TxnState::PrepareCommit, TxnResult::Commit)
            | (TxnState::PrepareAbort, TxnResult::Abort) => now(ec::CONCURRENT_TRANSACTIONS),
            (
                TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
                | TxnState::PrepareCommit
                | TxnState::PrepareAbort,
                _,
            ) => now(ec::INVALID_TXN_STATE),
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => now(ec::UNKNOWN_SERVER_ERROR),
        }
    }

    /// The store asked for with `token` finished: `Ok`, or `Err` with the append's error
    /// (mapped to the coordinator's answer as Kafka does). Reports about a partition unloaded
    /// or reloaded since are ignored.
    pub fn stored(&mut self, token: &StoreToken, result: Result<(), i16>, now_ms: i64) {
        let Some(Partition::Loaded {
            coordinator_epoch,
            txns,
        }) = self.partitions.get_mut(&token.partition)
        else {
            return;
        };
        let coordinator_epoch = *coordinator_epoch;
        if coordinator_epoch != token.coordinator_epoch {
            return;
        }
        let Some(entry) = txns.get_mut(&token.transactional_id) else {
            return;
        };
        let current = entry
            .flight
            .as_ref()
            .is_some_and(|f| f.seq == token.seq && f.phase == Phase::Storing);
        let Some(transit) = entry.meta.pending.clone().filter(|_| current) else {
            return;
        };
        let flight = entry.flight.take().expect("checked above");
        let error = result.err().map(store_error);
        let id = token.transactional_id.as_str();
        match transit.state {
            TxnState::Dead => {
                if error.is_none() {
                    txns.remove(id);
                } else {
                    entry.meta.abandon_pending();
                }
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => match error {
                None => {
                    if let Err(e) = entry.meta.complete_transition(&transit) {
                        tracing::error!(transactional_id = id, error = %e, "completing failed");
                        entry.meta.abandon_pending();
                    }
                }
                Some(error) => {
                    // Kafka retries COORDINATOR_NOT_AVAILABLE and gives up on the others (the
                    // partition is moving; its next leader completes on load). Retrying them
                    // all is as safe: an unloaded partition's retries go with it.
                    tracing::warn!(transactional_id = id, error, "storing a completion failed");
                    entry.flight = Some(InFlight {
                        phase: Phase::RetryStore,
                        ..flight
                    });
                }
            },
            _ => {
                if let Some(error) = error {
                    entry.meta.abandon_pending();
                    if flight.epoch_fence {
                        entry.meta.has_failed_epoch_fence = true;
                    }
                    flight.waiter.fail(error);
                    return;
                }
                if let Err(e) = entry.meta.complete_transition(&transit) {
                    tracing::error!(transactional_id = id, error = %e, "a transition failed");
                    entry.meta.abandon_pending();
                    flight.waiter.fail(e.code());
                    return;
                }
                let meta = &entry.meta;
                match flight.waiter {
                    Waiter::Nobody => {}
                    Waiter::Init(tx) => tx.send(InitResult {
                        error: ec::NONE,
                        producer_id: meta.producer_id,
                        producer_epoch: meta.producer_epoch,
                    }),
                    Waiter::FenceForInit(tx) => {
                        tx.send(InitResult::error(ec::CONCURRENT_TRANSACTIONS))
                    }
                    Waiter::Add(tx) => tx.send(ec::NONE),
                    Waiter::End(tx) => tx.send(EndTxnResult {
                        error: ec::NONE,
                        producer_id: meta.producer_id,
                        producer_epoch: meta.producer_epoch,
                    }),
                }
                if matches!(
                    entry.meta.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                ) {
                    self.out
                        .markers(token.partition, coordinator_epoch, entry, now_ms);
                }
            }
        }
    }

    /// The markers of `markers` are all written: the completion is stored next.
    pub fn markers_written(&mut self, markers: &MarkerRequest) {
        let Some(Partition::Loaded {
            coordinator_epoch,
            txns,
        }) = self.partitions.get_mut(&markers.partition)
        else {
            return;
        };
        if *coordinator_epoch != markers.coordinator_epoch {
            return;
        }
        let Some(entry) = txns.get_mut(&markers.transactional_id) else {
            return;
        };
        let awaiting = entry
            .flight
            .as_ref()
            .is_some_and(|f| f.phase == Phase::AwaitingMarkers);
        if !awaiting
            || entry.meta.producer_id != markers.producer_id
            || entry.meta.producer_epoch != markers.producer_epoch
        {
            return;
        }
        if let Some(flight) = &mut entry.flight {
            flight.phase = Phase::Storing;
        }
        self.out
            .push_store(markers.partition, markers.coordinator_epoch, entry);
    }

    /// Periodic work: completions whose store failed are stored again; transactions open
    /// longer than their timeout are aborted with the producer fenced (Kafka's
    /// `abortTimedOutTransactions`); ids idle longer than `transactional.id.expiration.ms` in
    /// Empty, CompleteCommit or CompleteAbort are forgotten (a tombstone is stored first).
    pub fn tick(&mut self, now_ms: i64) {
        let expiration = self.config.transactional_id_expiration_ms;
        for partition in self.loaded_partitions() {
            let Some(Partition::Loaded {
                coordinator_epoch,
                txns,
            }) = self.partitions.get_mut(&partition)
            else {
                continue;
            };
            let coordinator_epoch = *coordinator_epoch;
            let mut ids: Vec<&String> = txns.keys().collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.into_iter().cloned().collect();
            for id in ids {
                let entry = txns.get_mut(&id).expect("listed above");
                if let Some(flight) = &mut entry.flight {
                    if flight.phase == Phase::RetryStore {
                        flight.phase = Phase::Storing;
                        self.out.push_store(partition, coordinator_epoch, entry);
                    }
                    continue;
                }
                let meta = &mut entry.meta;
                let timed_out = meta.state == TxnState::Ongoing
                    && meta
                        .start_timestamp_ms
                        .saturating_add(i64::from(meta.timeout_ms))
                        < now_ms;
                if timed_out {
                    tracing::info!(
                        transactional_id = %id,
                        producer_id = meta.producer_id,
                        "aborting a transaction past its timeout"
                    );
                    if meta.prepare_epoch_fence_abort(now_ms).is_ok() {
                        self.out
                            .store(partition, coordinator_epoch, entry, Waiter::Nobody, true);
                    }
                } else if meta.state.expiration_allowed()
                    && meta.last_update_timestamp_ms <= now_ms.saturating_sub(expiration)
                    && meta.prepare_dead().is_ok()
                {
                    self.out
                        .store(partition, coordinator_epoch, entry, Waiter::Nobody, false);
                }
            }
        }
    }

    /// Starts taking over `partition` (this shard now leads it, at leader epoch
    /// `coordinator_epoch`): whatever was held for it is dropped, and requests for its ids are
    /// answered COORDINATOR_LOAD_IN_PROGRESS until [`load`](Self::load) brings its records.
    pub fn begin_load(&mut self, partition: i32, coordinator_epoch: i32) {
        self.drop_partition(partition);
        self.partitions
            .insert(partition, Partition::Loading { coordinator_epoch });
    }

    /// Finishes taking over `partition` from its records, in log order (key and value; a
    /// `None` value is a tombstone). Transactions found in PrepareCommit or PrepareAbort get
    /// their markers queued again, as Kafka completes them on load. `None`, and nothing
    /// changes, unless the partition is still being loaded at `coordinator_epoch` by
    /// [`begin_load`](Self::begin_load): a load that was overtaken (the partition was unloaded,
    /// or loaded again at another epoch, while its records were read) is ignored.
    pub fn load<K, V>(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        records: impl IntoIterator<Item = (K, Option<V>)>,
        now_ms: i64,
    ) -> Option<LoadReport>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        match self.partitions.get(&partition) {
            Some(Partition::Loading {
                coordinator_epoch: loading,
            }) if *loading == coordinator_epoch => {}
            _ => return None,
        }
        let mut report = LoadReport::default();
        let mut txns: HashMap<String, Entry> = HashMap::new();
        for (key, value) in records {
            let id = match records::decode_key(key.as_ref()) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "skipping a transaction log key");
                    report.skipped_records += 1;
                    continue;
                }
            };
            let Some(value) = value else {
                txns.remove(&id);
                continue;
            };
            let meta = records::decode_value(value.as_ref())
                .and_then(|v| TxnMetadata::from_log_value(id.clone(), &v));
            match meta {
                Ok(meta) => {
                    txns.insert(id, Entry { meta, flight: None });
                }
                Err(e) => {
                    tracing::warn!(partition, transactional_id = %id, error = %e,
                        "skipping a transaction log value");
                    report.skipped_records += 1;
                }
            }
        }
        let mut completing: Vec<&String> = txns
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.meta.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                )
            })
            .map(|(id, _)| id)
            .collect();
        completing.sort_unstable();
        report.completing = completing.into_iter().cloned().collect();
        for id in &report.completing {
            let entry = txns.get_mut(id).expect("listed above");
            self.out
                .markers(partition, coordinator_epoch, entry, now_ms);
        }
        report.transactional_ids = txns.len();
        self.partitions.insert(
            partition,
            Partition::Loaded {
                coordinator_epoch,
                txns,
            },
        );
        Some(report)
    }

    /// Gives up `partition` (another broker or shard leads it now): its requests still waiting
    /// are answered NOT_COORDINATOR and its queued effects are dropped.
    pub fn unload(&mut self, partition: i32) {
        self.drop_partition(partition);
    }

    fn drop_partition(&mut self, partition: i32) {
        if let Some(Partition::Loaded { txns, .. }) = self.partitions.remove(&partition) {
            for entry in txns.into_values() {
                if let Some(flight) = entry.flight {
                    flight.waiter.fail(ec::NOT_COORDINATOR);
                }
            }
        }
        self.out.effects.retain(|e| e.partition() != partition);
    }

    /// DescribeTransactions, for the ids this shard coordinates (others: NOT_COORDINATOR).
    pub fn describe<'a>(
        &self,
        transactional_ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<DescribedTxn> {
        transactional_ids
            .into_iter()
            .map(|id| self.describe_one(id))
            .collect()
    }

    fn describe_one(&self, id: &str) -> DescribedTxn {
        if id.is_empty() {
            return DescribedTxn::error(id, ec::INVALID_REQUEST);
        }
        let txns = match self.partitions.get(&self.partition_for(id)) {
            None => return DescribedTxn::error(id, ec::NOT_COORDINATOR),
            Some(Partition::Loading { .. }) => {
                return DescribedTxn::error(id, ec::COORDINATOR_LOAD_IN_PROGRESS)
            }
            Some(Partition::Loaded { txns, .. }) => txns,
        };
        match txns.get(id).map(|e| &e.meta) {
            Some(meta) if meta.state != TxnState::Dead => DescribedTxn {
                transactional_id: id.to_owned(),
                error: ec::NONE,
                state: meta.state.name(),
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                timeout_ms: meta.timeout_ms,
                start_timestamp_ms: meta.start_timestamp_ms,
                partitions: meta.partitions.iter().cloned().collect(),
            },
            _ => DescribedTxn::error(id, ec::TRANSACTIONAL_ID_NOT_FOUND),
        }
    }

    /// ListTransactions over this shard's partitions (the handler merges the shards').
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> ListResult {
        let mut result = ListResult::default();
        if self
            .partitions
            .values()
            .any(|p| matches!(p, Partition::Loading { .. }))
        {
            result.error = ec::COORDINATOR_LOAD_IN_PROGRESS;
            return result;
        }
        let mut states = Vec::new();
        for name in &filter.states {
            match TxnState::from_name(name) {
                Some(state) => states.push(state),
                None => result.unknown_state_filters.push(name.clone()),
            }
        }
        for partition in self.partitions.values() {
            let Partition::Loaded { txns, .. } = partition else {
                continue;
            };
            for (id, entry) in txns {
                let meta = &entry.meta;
                let include = meta.state != TxnState::Dead
                    && (filter.producer_ids.is_empty()
                        || filter.producer_ids.contains(&meta.producer_id))
                    && (filter.states.is_empty() || states.contains(&meta.state))
                    && (filter.min_duration_ms < 0
                        || now_ms.saturating_sub(meta.start_timestamp_ms) > filter.min_duration_ms);
                if include {
                    result.transactions.push(ListedTxn {
                        transactional_id: id.clone(),
                        producer_id: meta.producer_id,
                        state: meta.state.name(),
                    });
                }
            }
        }
        result
            .transactions
            .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        result
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
