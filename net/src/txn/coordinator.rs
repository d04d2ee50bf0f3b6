//! The transaction coordinator of one shard: drives the [`Transactions`] state machine for the
//! `__transaction_state` partitions this shard owns. It loads a partition before serving its
//! transactional ids, appends the records the machine asks to store, writes the markers it
//! asks for (through [`markers`](super::markers), to whichever shard owns each partition),
//! reports both back, and ticks the machine for timeouts and expiration.
//!
//! Every call into the machine happens on this shard and never across an `.await`; the I/O
//! runs in tasks of its own, so a request that stops waiting can't lose a write the machine
//! expects to hear about.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::rt::{self, LocalEvent};

use super::markers;
use super::state_machine::{Effect, MarkerRequest, StoreRequest, Transactions, TxnConfig};
use super::state_topic::{self, STATE_TOPIC};
use crate::config::TransactionsConfig;
use crate::groups::group::wall_ms;
use crate::kafka::error_code as ec;
use crate::partitions::replay::replay;
use crate::partitions::{shard, TopicPartition};
use crate::producer_ids::{self, Unavailable};
use crate::route;

/// The coordinator epoch of a transaction state partition's coordinator is the partition's
/// leader epoch (Kafka's): a coordinator that lost the partition and still writes markers has
/// an older one, and the partitions it writes to refuse them (TRANSACTION_COORDINATOR_FENCED).
/// A lone broker's partitions stay at epoch 0.
fn coordinator_epoch(state: &crate::partitions::Partition) -> i32 {
    state.leader_epoch()
}

/// The newest coordinator epoch any transaction coordinator may hold now: the largest leader
/// epoch among `__transaction_state`'s partitions as this broker's metadata has them (0 on a
/// lone broker). WriteTxnMarkers refuses markers claiming a newer one: they would fence the
/// real coordinator from the producer's partitions.
pub fn newest_coordinator_epoch() -> i32 {
    let topics = shard::current().topics();
    let Some(topic) = topics.get(STATE_TOPIC) else {
        return 0;
    };
    topic
        .controller
        .iter()
        .flat_map(|c| &c.partitions)
        .map(|p| p.leader_epoch)
        .max()
        .unwrap_or(0)
}
/// Wait between attempts at markers that could not be written yet.
const MARKER_RETRY: Duration = Duration::from_millis(100);

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<TxnCoordinator>>> = const { RefCell::new(None) };
}

/// This shard's transaction coordinator.
///
/// # Panics
/// On a thread where [`start`] has not run.
pub fn current() -> Rc<TxnCoordinator> {
    COORDINATOR.with(|c| {
        c.borrow()
            .clone()
            .expect("transaction coordinator installed by txn::coordinator::start")
    })
}

/// Installs this shard's coordinator, loads the `__transaction_state` partitions it owns (so
/// transactions a crash left between prepare and complete are finished without waiting for
/// their producers), and starts the ticker.
pub async fn start(config: TransactionsConfig) {
    let partitions = state_topic::partition_count(config.state_log_num_partitions);
    let machine = Transactions::new(
        TxnConfig {
            max_timeout_ms: config.max_timeout_ms.clamp(1, i64::from(i32::MAX)) as i32,
            transactional_id_expiration_ms: config.id_expiration_ms,
            ..TxnConfig::default()
        },
        partitions,
    );
    let coordinator = Rc::new(TxnCoordinator {
        config,
        machine: RefCell::new(machine),
        loaded: RefCell::new(HashSet::new()),
        loading: RefCell::new(HashSet::new()),
        load_done: LocalEvent::new(),
        unloads: RefCell::new(HashMap::new()),
        ticking: Cell::new(false),
    });
    COORDINATOR.with(|c| *c.borrow_mut() = Some(coordinator.clone()));
    if let Some(topic) = shard::current().topics().get(STATE_TOPIC) {
        let me = rt::shard_id();
        // Only the partitions this broker leads: the others are coordinated elsewhere.
        for (partition, owner) in topic.led_here().collect::<Vec<_>>() {
            if owner == me {
                if let Err(code) = coordinator.ensure_loaded(partition as i32).await {
                    tracing::error!(partition, code, "cannot load transaction state");
                }
            }
        }
    }
}

/// Runs `work` with the coordinator of `transactional_id` on its shard, once the id's
/// `__transaction_state` partition exists and is loaded there. `Err` is the Kafka error for
/// the whole request.
pub async fn on_coordinator<F, Fut, T>(
    config: &TransactionsConfig,
    transactional_id: &str,
    work: F,
) -> Result<T, i16>
where
    F: FnOnce(Rc<TxnCoordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // The id is the key of its `__transaction_state` records, an int16-length string there
    // (flexible requests can carry longer ones; Kafka fails to write those too).
    if transactional_id.is_empty() || transactional_id.len() > i16::MAX as usize {
        return Err(ec::INVALID_REQUEST);
    }
    state_topic::ensure_state_topic(
        config.state_log_num_partitions,
        config.state_log_segment_bytes,
    )
    .await?;
    let topics = shard::current().topics();
    let topic = topics
        .get(STATE_TOPIC)
        .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
    // The topic's own count rules (it may predate a change of the setting).
    let partition = state_topic::partition_for(transactional_id, topic.shards.len() as i32);
    // In a cluster, only the partition's leader coordinates its transactional ids.
    let owner = route::coordinator_shard(&topics, STATE_TOPIC, partition)?;
    rt::run_on(owner, move || async move {
        let coordinator = current();
        coordinator.ensure_loaded(partition).await?;
        Ok(work(coordinator).await)
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?
}

#[derive(Debug)]
pub struct TxnCoordinator {
    pub config: TransactionsConfig,
    machine: RefCell<Transactions>,
    /// `__transaction_state` partitions whose records have been read into the machine.
    loaded: RefCell<HashSet<i32>>,
    loading: RefCell<HashSet<i32>>,
    load_done: LocalEvent,
    /// How many times each partition was unloaded: a load, store or marker write begun
    /// before an unload sees the count change and leaves the partition alone.
    unloads: RefCell<HashMap<i32, u64>>,
    ticking: Cell<bool>,
}

impl TxnCoordinator {
    /// Runs `f` on the state machine, then starts whatever it asked for.
    pub fn with_machine<T>(self: &Rc<Self>, f: impl FnOnce(&mut Transactions, i64) -> T) -> T {
        let result = f(&mut self.machine.borrow_mut(), wall_ms());
        self.run_effects();
        result
    }

    /// Reads partition `partition` into the machine once; later calls return at once.
    pub async fn ensure_loaded(self: &Rc<Self>, partition: i32) -> Result<(), i16> {
        loop {
            if self.loaded.borrow().contains(&partition) {
                return Ok(());
            }
            let wait = self.load_done.wait();
            if self.loading.borrow_mut().insert(partition) {
                break;
            }
            wait.await;
        }
        let era = self.era(partition);
        let result = self.load(partition, era).await;
        self.loading.borrow_mut().remove(&partition);
        if result.is_ok() {
            self.loaded.borrow_mut().insert(partition);
            self.ensure_ticking();
        }
        self.load_done.notify_all();
        result
    }

    /// How many times `partition` has been unloaded so far.
    fn era(&self, partition: i32) -> u64 {
        self.unloads.borrow().get(&partition).copied().unwrap_or(0)
    }

    /// Gives up `__transaction_state` partition `partition`: this broker no longer leads it
    /// (Kafka's `TransactionStateManager.removeTransactionsForTxnTopicPartition`). Its
    /// transactional ids are dropped from the machine, whose waiting requests get
    /// NOT_COORDINATOR; a load under way keeps nothing; stores and marker writes still in
    /// flight for it stop (their reports would be ignored: the new leader completes the
    /// transactions it loads in a Prepare state).
    pub fn unload_partition(self: &Rc<Self>, partition: i32) {
        *self.unloads.borrow_mut().entry(partition).or_insert(0) += 1;
        let was_loaded = self.loaded.borrow_mut().remove(&partition);
        self.machine.borrow_mut().unload(partition);
        if was_loaded {
            tracing::info!(partition, "unloaded transaction state");
        }
    }

    /// Whether `partition` is loaded here (its transactional ids coordinated here).
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Reads `partition` into the machine, unless it is unloaded (its era moves on from
    /// `era`) meanwhile: then nothing is kept and the answer is NOT_COORDINATOR.
    async fn load(self: &Rc<Self>, partition: i32, era: u64) -> Result<(), i16> {
        let state = state_partition(partition)?;
        let log = state.log();
        // A follower's copy may be behind its leader's: transactions are coordinated by
        // the leader.
        if log.is_follower() {
            return Err(ec::NOT_COORDINATOR);
        }
        let epoch = coordinator_epoch(&state);
        self.machine.borrow_mut().begin_load(partition, epoch);
        let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let replayed = replay(log, |header, batch| {
            if header.is_control() {
                return;
            }
            records.extend(batch.into_iter().filter_map(|r| {
                let key = r.key?;
                Some((key.to_vec(), r.value.map(|v| v.to_vec())))
            }));
        })
        .await;
        if self.era(partition) != era {
            // The unload dropped the partition from the machine already.
            tracing::info!(partition, "transaction state unloaded while loading it");
            return Err(ec::NOT_COORDINATOR);
        }
        if let Err(e) = replayed {
            tracing::error!(partition, error = %e, "cannot load the transaction state partition");
            self.machine.borrow_mut().unload(partition);
            return Err(ec::COORDINATOR_LOAD_IN_PROGRESS);
        }
        let report = self.with_machine(|machine, now| machine.load(partition, epoch, records, now));
        let Some(report) = report else {
            // Overtaken inside the machine (unloaded and loading again): not ours to finish.
            return Err(ec::NOT_COORDINATOR);
        };
        if report.transactional_ids > 0 {
            tracing::info!(
                partition,
                transactional_ids = report.transactional_ids,
                completing = report.completing.len(),
                skipped = report.skipped_records,
                "loaded transaction state"
            );
        }
        Ok(())
    }

    /// Starts every effect the machine has queued, each in a task of its own.
    fn run_effects(self: &Rc<Self>) {
        let effects = self.machine.borrow_mut().take_effects();
        for effect in effects {
            let this = self.clone();
            match effect {
                Effect::Store(request) => {
                    let era = self.era(request.token.partition);
                    rt::spawn_local(this.store(request, era));
                }
                Effect::WriteMarkers(request) => {
                    let era = self.era(request.partition);
                    rt::spawn_local(this.write_markers(request, era));
                }
            }
        }
    }

    /// Appends a record to `__transaction_state` and reports how it went.
    /// Nothing is written if the partition was unloaded since the store was asked for, in
    /// era `era`.
    async fn store(self: Rc<Self>, request: StoreRequest, era: u64) {
        if self.era(request.token.partition) != era {
            return;
        }
        let result = match state_partition(request.token.partition) {
            Ok(state) => {
                let mut builder = BatchBuilder::new();
                builder.push(&Record {
                    key: Some(request.key),
                    value: request.value,
                    headers: Vec::new(),
                    timestamp: wall_ms(),
                });
                match state.log().append(builder.build()).await {
                    // Stored once every in-sync replica has it (Kafka writes transaction
                    // state with acks=all).
                    Ok(info) => {
                        state
                            .wait_replicated(info.last_offset + 1, REPLICATION_TIMEOUT)
                            .await
                    }
                    Err(e) => Err(route::errors::append_error(&e)),
                }
            }
            Err(_) => Err(ec::NOT_LEADER_OR_FOLLOWER),
        };
        if let Err(code) = result {
            tracing::warn!(
                transactional_id = %request.token.transactional_id,
                code,
                "storing transaction state failed"
            );
        }
        self.with_machine(|machine, now| machine.stored(&request.token, result, now));
    }

    /// Writes a transaction's markers to all its partitions, retrying those that can't be
    /// written yet, and reports once all are (unless a newer coordinator took over).
    /// Stops, unreported, once the transaction's partition is unloaded (its era moves on
    /// from `era`): the partition's new leader completes the transaction.
    async fn write_markers(self: Rc<Self>, request: MarkerRequest, era: u64) {
        let marker = markers::MarkerWrite {
            producer_id: request.producer_id,
            producer_epoch: request.producer_epoch,
            commit: request.result.is_commit(),
            coordinator_epoch: request.coordinator_epoch,
        };
        let mut left: Vec<TopicPartition> = request.partitions.clone();
        while !left.is_empty() {
            if self.era(request.partition) != era {
                tracing::info!(
                    transactional_id = %request.transactional_id,
                    "transaction state unloaded; leaving its markers to the new leader"
                );
                return;
            }
            let results = markers::write_anywhere(marker, left.clone()).await;
            let mut retry = Vec::new();
            for (tp, code) in results {
                match code {
                    // Written, or the topic is gone with its transaction's data, or the
                    // partition has seen a newer epoch of the producer than this
                    // coordinator ever gave it (only a client inventing its own epoch does
                    // that): whatever is open there now belongs to that epoch, and retrying
                    // can't change it. Kafka stops sending and leaves the transaction
                    // prepared forever; completing it keeps the id usable.
                    ec::NONE | ec::UNKNOWN_TOPIC_OR_PARTITION | ec::INVALID_PRODUCER_EPOCH => {}
                    // A newer coordinator owns the transaction now: it finishes it; this one
                    // must not.
                    ec::TRANSACTION_COORDINATOR_FENCED => {
                        tracing::warn!(
                            transactional_id = %request.transactional_id,
                            code,
                            "markers fenced; leaving the transaction to its new coordinator"
                        );
                        return;
                    }
                    _ => retry.push(tp),
                }
            }
            left = retry;
            if !left.is_empty() {
                let stop = rt::select(rt::sleep(MARKER_RETRY), rt::shutdown_requested()).await;
                if let rt::Either::Right(()) = stop {
                    return;
                }
            }
        }
        if self.era(request.partition) == era {
            self.with_machine(|machine, _| machine.markers_written(&request));
        }
    }

    fn ensure_ticking(self: &Rc<Self>) {
        if self.ticking.replace(true) {
            return;
        }
        rt::spawn_local(self.clone().tick_forever());
    }

    /// Aborts transactions past their timeout and forgets expired ids, for as long as the
    /// broker runs (only shards that loaded a partition tick).
    async fn tick_forever(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.abort_timed_out_interval_ms.max(1));
        loop {
            if let rt::Either::Right(()) =
                rt::select(rt::sleep(interval), rt::shutdown_requested()).await
            {
                return;
            }
            self.with_machine(|machine, now| machine.tick(now));
        }
    }
}

/// This broker stopped leading `__transaction_state` partition `partition`: the transaction
/// coordinator of the current shard (the partition's owner) unloads it
/// ([`TxnCoordinator::unload_partition`]). Nothing to do on a shard whose coordinator has not
/// started: it has loaded nothing.
pub fn partition_lost(partition: i32) {
    if let Some(coordinator) = try_current() {
        coordinator.unload_partition(partition);
    }
}

/// This shard's transaction coordinator, if [`start`] has installed it.
pub fn try_current() -> Option<Rc<TxnCoordinator>> {
    COORDINATOR.with(|c| c.borrow().clone())
}

/// A new producer id for InitProducerId, or the error to answer (as for idempotent
/// producers: retriable while the reservation is extended).
pub fn allocate_producer_id() -> Result<i64, i16> {
    producer_ids::global()
        .ok_or(Unavailable::Failed)
        .and_then(|ids| ids.next())
        .map_err(|e| match e {
            Unavailable::Extending => ec::COORDINATOR_LOAD_IN_PROGRESS,
            Unavailable::Failed => ec::COORDINATOR_NOT_AVAILABLE,
        })
}

/// This shard's log of `__transaction_state` partition `partition`.
/// How long a transaction state write waits for the in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

fn state_partition(partition: i32) -> Result<crate::partitions::Partition, i16> {
    shard::current()
        .partition(&TopicPartition::new(STATE_TOPIC, partition))
        .ok_or(ec::COORDINATOR_LOAD_IN_PROGRESS)
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
