//! The transaction coordinator driven step by step with explicit times: a fake driver keeps
//! the records it was asked to store (the partition's log) and answers stores and markers as
//! each test says.

use super::*;
use crate::groups::oneshot::Pending;
use crate::txn::records::{decode_key, decode_value, encode_value, TxnLogValue};

const PARTITIONS: i32 = 50;
const TIMEOUT: i32 = 10_000;
const MAX_TIMEOUT: i32 = 60_000;
const EXPIRATION: i64 = 1_000_000;
const TX: &str = "tx";

type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn config() -> TxnConfig {
    TxnConfig {
        max_timeout_ms: MAX_TIMEOUT,
        transactional_id_expiration_ms: EXPIRATION,
        value_version: 0,
    }
}

/// A coordinator that has loaded TX's (empty) partition at coordinator epoch 1.
fn machine() -> Transactions {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    load(&mut m, partition, 1, Log::new(), 0);
    m
}

/// Takes over `partition` at `epoch` from `log`.
fn load(m: &mut Transactions, partition: i32, epoch: i32, log: Log, now: i64) -> LoadReport {
    m.begin_load(partition, epoch);
    m.load(partition, epoch, log, now)
        .expect("loading at this epoch")
}

/// Producer ids 1000, 1001, ...
fn ids() -> impl FnMut() -> Result<i64, i16> {
    let mut next = 1000;
    move || {
        next += 1;
        Ok(next - 1)
    }
}

fn no_ids() -> impl FnMut() -> Result<i64, i16> {
    || panic!("no producer id should be allocated")
}

fn now_value<T>(answer: Deferred<T>) -> T {
    match answer {
        Deferred::Now(value) => value,
        Deferred::Later(_) => panic!("expected an answer now"),
    }
}

fn later<T>(answer: Deferred<T>) -> Pending<T> {
    match answer {
        Deferred::Later(pending) => pending,
        Deferred::Now(_) => panic!("expected to wait"),
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// The one effect queued, which must be a store.
fn one_store(m: &mut Transactions) -> StoreRequest {
    let effects = m.take_effects();
    assert_eq!(effects.len(), 1, "{effects:?}");
    match effects.into_iter().next().unwrap() {
        Effect::Store(s) => s,
        other => panic!("expected a store, got {other:?}"),
    }
}

fn one_markers(m: &mut Transactions) -> MarkerRequest {
    let effects = m.take_effects();
    assert_eq!(effects.len(), 1, "{effects:?}");
    match effects.into_iter().next().unwrap() {
        Effect::WriteMarkers(w) => w,
        other => panic!("expected markers, got {other:?}"),
    }
}

/// Stores the one queued record successfully, appending it to `log`; returns its value.
fn store_ok(m: &mut Transactions, log: &mut Log, now: i64) -> Option<TxnLogValue> {
    let s = one_store(m);
    assert_eq!(decode_key(&s.key).unwrap(), s.token.transactional_id);
    log.push((s.key.clone(), s.value.clone()));
    m.stored(&s.token, Ok(()), now);
    s.value.map(|v| decode_value(&v).unwrap())
}

/// InitProducerId for TX, stored: the producer id and epoch.
fn init(
    m: &mut Transactions,
    log: &mut Log,
    alloc: &mut dyn FnMut() -> Result<i64, i16>,
    now: i64,
) -> (i64, i16) {
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, now, alloc));
    store_ok(m, log, now);
    let r = reply.try_take().unwrap();
    assert_eq!(r.error, ec::NONE);
    (r.producer_id, r.producer_epoch)
}

/// TX with producer 1000 epoch 0 and an Ongoing transaction on a-0 started at `now`.
fn ongoing(m: &mut Transactions, log: &mut Log, now: i64) {
    assert_eq!(init(m, log, &mut ids(), now), (1000, 0));
    let reply = later(m.add_partitions(TX, 1000, 0, [tp("a", 0)], now));
    store_ok(m, log, now);
    assert_eq!(reply.try_take(), Some(ec::NONE));
}

#[test]
fn a_new_id_gets_a_producer_id_at_epoch_0_once_stored() {
    let mut m = machine();
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 5, &mut ids()));
    let store = one_store(&mut m);
    assert_eq!(store.token.partition, m.partition_for(TX));
    assert_eq!(store.token.coordinator_epoch, 1);
    assert_eq!(store.key, records::encode_key(TX));
    let value = decode_value(store.value.as_ref().unwrap()).unwrap();
    assert_eq!(
        value,
        TxnLogValue {
            producer_id: 1000,
            producer_epoch: 0,
            timeout_ms: TIMEOUT,
            status: TxnState::Empty.id(),
            partitions: None,
            last_update_timestamp_ms: 5,
            start_timestamp_ms: -1,
            ..TxnLogValue::default()
        }
    );
    // Not answered, and not applied, before the record is stored.
    assert_eq!(reply.try_take(), None);
    assert_eq!(m.get(TX).unwrap().producer_epoch, -1);
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, None, 6, &mut no_ids())).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    m.stored(&store.token, Ok(()), 7);
    assert_eq!(
        reply.try_take(),
        Some(InitResult {
            error: ec::NONE,
            producer_id: 1000,
            producer_epoch: 0
        })
    );
    // A second InitProducerId bumps the epoch, same producer id.
    let mut log = Log::new();
    assert_eq!(init(&mut m, &mut log, &mut no_ids(), 8), (1000, 1));
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.timeout_ms, meta.last_producer_epoch),
        (TxnState::Empty, TIMEOUT, -1)
    );
}

#[test]
fn init_producer_id_refusals() {
    let mut m = machine();
    let mut alloc = ids();
    let error = |d: Deferred<InitResult>| now_value(d).error;
    assert_eq!(
        error(m.init_producer_id("", TIMEOUT, None, 0, &mut alloc)),
        ec::INVALID_REQUEST
    );
    assert_eq!(
        error(m.init_producer_id(TX, 0, None, 0, &mut alloc)),
        ec::INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        error(m.init_producer_id(TX, MAX_TIMEOUT + 1, None, 0, &mut alloc)),
        ec::INVALID_TRANSACTION_TIMEOUT
    );
    // An id of a partition not loaded here, or being loaded.
    let other = (0..)
        .map(|i| format!("id-{i}"))
        .find(|id| m.partition_for(id) != m.partition_for(TX))
        .unwrap();
    assert_eq!(
        error(m.init_producer_id(&other, TIMEOUT, None, 0, &mut alloc)),
        ec::NOT_COORDINATOR
    );
    m.begin_load(m.partition_for(&other), 3);
    assert_eq!(
        error(m.init_producer_id(&other, TIMEOUT, None, 0, &mut alloc)),
        ec::COORDINATOR_LOAD_IN_PROGRESS
    );
    // The allocator's error is the answer; nothing is kept.
    let mut failing = || Err(ec::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(
        error(m.init_producer_id(TX, TIMEOUT, None, 0, &mut failing)),
        ec::COORDINATOR_LOAD_IN_PROGRESS
    );
    assert!(m.get(TX).is_none());
    assert!(m.take_effects().is_empty());
}

#[test]
fn a_transaction_commits_through_prepare_markers_and_complete() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 100);
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.start_timestamp_ms),
        (TxnState::Ongoing, 100)
    );
    // Partitions already in the transaction: answered at once, nothing stored.
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 150)),
        ec::NONE
    );
    assert!(m.take_effects().is_empty());
    // AddOffsetsToTxn adds the group's offsets partition.
    let reply = later(m.add_offsets(TX, 1000, 0, 7, 200));
    let value = store_ok(&mut m, &mut log, 200).unwrap();
    assert_eq!(value.status, TxnState::Ongoing.id());
    assert_eq!(value.start_timestamp_ms, 100, "the start stays");
    assert_eq!(reply.try_take(), Some(ec::NONE));
    assert!(m
        .get(TX)
        .unwrap()
        .partitions
        .contains(&tp("__consumer_offsets", 7)));

    let reply = later(m.end_txn(TX, 1000, 0, TxnResult::Commit, 300));
    let prepare = one_store(&mut m);
    let value = decode_value(prepare.value.as_ref().unwrap()).unwrap();
    assert_eq!(value.status, TxnState::PrepareCommit.id());
    assert_eq!(value.partitions.unwrap().len(), 2);
    // While PrepareCommit is being stored: a retry must wait.
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 301)).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(reply.try_take(), None);
    m.stored(&prepare.token, Ok(()), 310);
    // The client is answered once PrepareCommit is stored, before the markers.
    assert_eq!(
        reply.try_take(),
        Some(EndTxnResult {
            error: ec::NONE,
            producer_id: 1000,
            producer_epoch: 0
        })
    );
    let markers = one_markers(&mut m);
    assert_eq!(
        markers,
        MarkerRequest {
            partition: m.partition_for(TX),
            coordinator_epoch: 1,
            transactional_id: TX.into(),
            producer_id: 1000,
            producer_epoch: 0,
            result: TxnResult::Commit,
            partitions: vec![tp("__consumer_offsets", 7), tp("a", 0)],
        }
    );
    // While the markers are written: everything waits.
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, [tp("b", 0)], 320)),
        ec::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, None, 320, &mut no_ids())).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Abort, 320)).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(m.get(TX).unwrap().state, TxnState::PrepareCommit);
    m.markers_written(&markers);
    let value = store_ok(&mut m, &mut log, 400).unwrap();
    assert_eq!(value.status, TxnState::CompleteCommit.id());
    assert_eq!(value.partitions, Some(vec![]));
    assert_eq!(
        value.last_update_timestamp_ms, 310,
        "stamped when the markers went out"
    );
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.partitions.len(), meta.pending.is_none()),
        (TxnState::CompleteCommit, 0, true)
    );
    // A retried EndTxn with the same result succeeds; the opposite one is refused.
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 500)),
        EndTxnResult {
            error: ec::NONE,
            producer_id: 1000,
            producer_epoch: 0
        }
    );
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Abort, 500)).error,
        ec::INVALID_TXN_STATE
    );
    // The next transaction starts now.
    let reply = later(m.add_partitions(TX, 1000, 0, [tp("b", 1)], 600));
    store_ok(&mut m, &mut log, 600);
    assert_eq!(reply.try_take(), Some(ec::NONE));
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.start_timestamp_ms),
        (TxnState::Ongoing, 600)
    );
    assert_eq!(
        meta.partitions.iter().cloned().collect::<Vec<_>>(),
        [tp("b", 1)]
    );
}

#[test]
fn an_abort_and_its_retry() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 0);
    let reply = later(m.end_txn(TX, 1000, 0, TxnResult::Abort, 10));
    assert_eq!(
        store_ok(&mut m, &mut log, 10).unwrap().status,
        TxnState::PrepareAbort.id()
    );
    assert_eq!(reply.try_take().unwrap().error, ec::NONE);
    let markers = one_markers(&mut m);
    assert_eq!(markers.result, TxnResult::Abort);
    m.markers_written(&markers);
    assert_eq!(
        store_ok(&mut m, &mut log, 20).unwrap().status,
        TxnState::CompleteAbort.id()
    );
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Abort, 30)).error,
        ec::NONE
    );
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 30)).error,
        ec::INVALID_TXN_STATE
    );
}

#[test]
fn end_txn_refusals() {
    let mut m = machine();
    let mut log = Log::new();
    let error = |d: Deferred<EndTxnResult>| now_value(d).error;
    assert_eq!(
        error(m.end_txn("", 1, 0, TxnResult::Commit, 0)),
        ec::INVALID_REQUEST
    );
    assert_eq!(
        error(m.end_txn(TX, 1000, 0, TxnResult::Commit, 0)),
        ec::INVALID_PRODUCER_ID_MAPPING
    );
    init(&mut m, &mut log, &mut ids(), 0);
    init(&mut m, &mut log, &mut no_ids(), 0);
    // Producer 1000 at epoch 1, nothing started.
    assert_eq!(
        error(m.end_txn(TX, 1000, 1, TxnResult::Commit, 0)),
        ec::INVALID_TXN_STATE
    );
    assert_eq!(
        error(m.end_txn(TX, 1000, 1, TxnResult::Abort, 0)),
        ec::INVALID_TXN_STATE
    );
    assert_eq!(
        error(m.end_txn(TX, 999, 1, TxnResult::Commit, 0)),
        ec::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        error(m.end_txn(TX, 1000, 0, TxnResult::Commit, 0)),
        ec::PRODUCER_FENCED
    );
    // A newer epoch than the coordinator's is fenced too (transactions v1: strict equality).
    assert_eq!(
        error(m.end_txn(TX, 1000, 2, TxnResult::Commit, 0)),
        ec::PRODUCER_FENCED
    );
    // Old clients hear INVALID_PRODUCER_EPOCH instead.
    assert_eq!(
        error_for_version(ec::PRODUCER_FENCED, 1, END_TXN_FENCED_SINCE),
        ec::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        error_for_version(ec::PRODUCER_FENCED, 2, END_TXN_FENCED_SINCE),
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        error_for_version(ec::NONE, 0, END_TXN_FENCED_SINCE),
        ec::NONE
    );
    assert_eq!(
        error_for_version(ec::PRODUCER_FENCED, 3, INIT_PRODUCER_ID_FENCED_SINCE),
        ec::INVALID_PRODUCER_EPOCH
    );
    assert!(m.take_effects().is_empty());
}

#[test]
fn add_partitions_refusals() {
    let mut m = machine();
    let mut log = Log::new();
    let parts = || [tp("a", 0)];
    assert_eq!(
        now_value(m.add_partitions("", 1000, 0, parts(), 0)),
        ec::INVALID_REQUEST
    );
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, parts(), 0)),
        ec::INVALID_PRODUCER_ID_MAPPING
    );
    init(&mut m, &mut log, &mut ids(), 0);
    init(&mut m, &mut log, &mut no_ids(), 0);
    assert_eq!(
        now_value(m.add_partitions(TX, 1001, 1, parts(), 0)),
        ec::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, parts(), 0)),
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        now_value(m.add_offsets(TX, 1000, 0, 3, 0)),
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        error_for_version(ec::PRODUCER_FENCED, 1, ADD_PARTITIONS_FENCED_SINCE),
        ec::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        error_for_version(ec::PRODUCER_FENCED, 1, ADD_OFFSETS_FENCED_SINCE),
        ec::INVALID_PRODUCER_EPOCH
    );
    // While an AddPartitions is being stored, another waits its turn.
    let first = later(m.add_partitions(TX, 1000, 1, parts(), 0));
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 1, [tp("b", 0)], 0)),
        ec::CONCURRENT_TRANSACTIONS
    );
    store_ok(&mut m, &mut log, 0);
    assert_eq!(first.try_take(), Some(ec::NONE));
    assert!(matches!(
        m.add_partitions(TX, 1000, 1, [tp("b", 0)], 0),
        Deferred::Later(_)
    ));
}

#[test]
fn verify_only_checks_membership() {
    let mut m = machine();
    let mut log = Log::new();
    let asked = [tp("a", 0), tp("a", 1)];
    assert_eq!(
        m.verify_partitions(TX, 1000, 0, &asked),
        vec![
            (tp("a", 0), ec::INVALID_PRODUCER_ID_MAPPING),
            (tp("a", 1), ec::INVALID_PRODUCER_ID_MAPPING)
        ]
    );
    ongoing(&mut m, &mut log, 0);
    assert_eq!(
        m.verify_partitions(TX, 1000, 0, &asked),
        vec![
            (tp("a", 0), ec::NONE),
            (tp("a", 1), ec::TRANSACTION_ABORTABLE)
        ]
    );
    assert_eq!(
        m.verify_partitions(TX, 1000, 1, &asked[..1]),
        vec![(tp("a", 0), ec::PRODUCER_FENCED)]
    );
    assert_eq!(
        m.verify_partitions(TX, 7, 0, &asked[..1]),
        vec![(tp("a", 0), ec::INVALID_PRODUCER_ID_MAPPING)]
    );
    assert_eq!(
        m.verify_partitions("", 7, 0, &asked[..1]),
        vec![(tp("a", 0), ec::INVALID_REQUEST)]
    );
    let _reply = later(m.end_txn(TX, 1000, 0, TxnResult::Commit, 1));
    store_ok(&mut m, &mut log, 1);
    assert_eq!(
        m.verify_partitions(TX, 1000, 0, &asked[..1]),
        vec![(tp("a", 0), ec::CONCURRENT_TRANSACTIONS)]
    );
    assert!(!m.take_effects().is_empty(), "the markers");
}

#[test]
fn init_producer_id_on_an_open_transaction_fences_and_aborts_it() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 0);
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 50, &mut no_ids()));
    let prepare = one_store(&mut m);
    let value = decode_value(prepare.value.as_ref().unwrap()).unwrap();
    assert_eq!(
        (value.status, value.producer_epoch),
        (TxnState::PrepareAbort.id(), 1)
    );
    // The zombie is fenced at once, before the abort is even stored.
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, [tp("b", 0)], 51)),
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 51)).error,
        ec::PRODUCER_FENCED
    );
    m.stored(&prepare.token, Ok(()), 60);
    // The new producer is told to retry; the fence's epoch is never handed out.
    assert_eq!(
        reply.try_take(),
        Some(InitResult::error(ec::CONCURRENT_TRANSACTIONS))
    );
    let markers = one_markers(&mut m);
    assert_eq!(
        (markers.result, markers.producer_epoch),
        (TxnResult::Abort, 1)
    );
    assert_eq!(markers.partitions, vec![tp("a", 0)]);
    // Its retry while the markers are written: still CONCURRENT_TRANSACTIONS.
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, None, 70, &mut no_ids())).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    m.markers_written(&markers);
    assert_eq!(
        store_ok(&mut m, &mut log, 80).unwrap().status,
        TxnState::CompleteAbort.id()
    );
    assert_eq!(init(&mut m, &mut log, &mut no_ids(), 90), (1000, 2));
}

#[test]
fn a_fence_that_fails_to_store_does_not_bump_twice() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 0);
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 50, &mut no_ids()));
    let prepare = one_store(&mut m);
    m.stored(&prepare.token, Err(ec::NOT_LEADER_OR_FOLLOWER), 51);
    assert_eq!(
        reply.try_take(),
        Some(InitResult::error(ec::NOT_COORDINATOR))
    );
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.producer_epoch, meta.has_failed_epoch_fence),
        (TxnState::Ongoing, 1, true)
    );
    assert!(m.take_effects().is_empty());
    // The retry fences again at the same epoch.
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 60, &mut no_ids()));
    let value = store_ok(&mut m, &mut log, 61).unwrap();
    assert_eq!(
        (value.status, value.producer_epoch),
        (TxnState::PrepareAbort.id(), 1)
    );
    assert_eq!(reply.try_take().unwrap().error, ec::CONCURRENT_TRANSACTIONS);
}

#[test]
fn a_failed_store_drops_the_change_and_answers_kafkas_error() {
    assert_eq!(
        store_error(ec::UNKNOWN_TOPIC_OR_PARTITION),
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        store_error(ec::NOT_ENOUGH_REPLICAS),
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        store_error(ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND),
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        store_error(ec::REQUEST_TIMED_OUT),
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(store_error(ec::NOT_LEADER_OR_FOLLOWER), ec::NOT_COORDINATOR);
    assert_eq!(store_error(ec::KAFKA_STORAGE_ERROR), ec::NOT_COORDINATOR);
    assert_eq!(store_error(ec::MESSAGE_TOO_LARGE), ec::UNKNOWN_SERVER_ERROR);
    assert_eq!(
        store_error(ec::RECORD_LIST_TOO_LARGE),
        ec::UNKNOWN_SERVER_ERROR
    );
    assert_eq!(store_error(ec::INVALID_REQUEST), ec::INVALID_REQUEST);

    let mut m = machine();
    let mut log = Log::new();
    // A first InitProducerId whose record fails: the id stays unused (epoch -1).
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 0, &mut ids()));
    let s = one_store(&mut m);
    m.stored(&s.token, Err(ec::REQUEST_TIMED_OUT), 1);
    assert_eq!(
        reply.try_take(),
        Some(InitResult::error(ec::COORDINATOR_NOT_AVAILABLE))
    );
    assert_eq!(m.get(TX).unwrap().producer_epoch, -1);
    // Its retry gets epoch 0 of the same producer id.
    assert_eq!(init(&mut m, &mut log, &mut no_ids(), 2), (1000, 0));
    // A failed AddPartitions leaves the transaction as it was.
    let reply = later(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 3));
    let s = one_store(&mut m);
    m.stored(&s.token, Err(ec::KAFKA_STORAGE_ERROR), 4);
    assert_eq!(reply.try_take(), Some(ec::NOT_COORDINATOR));
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.partitions.len(), meta.pending.is_none()),
        (TxnState::Empty, 0, true)
    );
    // A failed EndTxn: still Ongoing, and the client may try again.
    let reply = later(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 5));
    store_ok(&mut m, &mut log, 5);
    assert_eq!(reply.try_take(), Some(ec::NONE));
    let reply = later(m.end_txn(TX, 1000, 0, TxnResult::Commit, 6));
    let s = one_store(&mut m);
    m.stored(&s.token, Err(ec::MESSAGE_TOO_LARGE), 7);
    assert_eq!(reply.try_take().unwrap().error, ec::UNKNOWN_SERVER_ERROR);
    assert_eq!(m.get(TX).unwrap().state, TxnState::Ongoing);
    assert!(
        m.take_effects().is_empty(),
        "no markers for a transaction not prepared"
    );
    // A report for a store already settled is ignored.
    m.stored(&s.token, Ok(()), 8);
    assert_eq!(m.get(TX).unwrap().state, TxnState::Ongoing);
}

#[test]
fn a_completion_that_fails_to_store_is_retried_at_the_next_tick() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 0);
    let _reply = later(m.end_txn(TX, 1000, 0, TxnResult::Commit, 1));
    store_ok(&mut m, &mut log, 1);
    let markers = one_markers(&mut m);
    m.markers_written(&markers);
    m.markers_written(&markers); // a duplicate report changes nothing
    let s = one_store(&mut m);
    m.stored(&s.token, Err(ec::NOT_ENOUGH_REPLICAS), 2);
    assert!(m.take_effects().is_empty());
    assert_eq!(m.get(TX).unwrap().state, TxnState::PrepareCommit);
    m.tick(3);
    assert_eq!(
        store_ok(&mut m, &mut log, 3).unwrap().status,
        TxnState::CompleteCommit.id()
    );
    assert_eq!(m.get(TX).unwrap().state, TxnState::CompleteCommit);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 100);
    // Kafka aborts once start + timeout < now.
    m.tick(100 + i64::from(TIMEOUT));
    assert!(m.take_effects().is_empty());
    m.tick(101 + i64::from(TIMEOUT));
    let value = store_ok(&mut m, &mut log, 200 + i64::from(TIMEOUT)).unwrap();
    assert_eq!(
        (value.status, value.producer_epoch),
        (TxnState::PrepareAbort.id(), 1)
    );
    let markers = one_markers(&mut m);
    assert_eq!(
        (markers.result, markers.producer_epoch),
        (TxnResult::Abort, 1)
    );
    // Ticks while the markers are out do nothing more.
    m.tick(1_000_000);
    assert!(m.take_effects().is_empty());
    m.markers_written(&markers);
    assert_eq!(
        store_ok(&mut m, &mut log, 20_000).unwrap().status,
        TxnState::CompleteAbort.id()
    );
    // The timed-out producer is fenced.
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 20_001)).error,
        ec::PRODUCER_FENCED
    );
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 20_001)),
        ec::PRODUCER_FENCED
    );
    // ...also when it recovers with KIP-360's expected epoch.
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, Some((1000, 0)), 20_002, &mut no_ids())).error,
        ec::PRODUCER_FENCED
    );
}

/// A log holding TX in `state` with producer 1000 at `epoch`.
fn log_with(state: TxnState, epoch: i16, partitions: Option<Vec<records::TopicPartitions>>) -> Log {
    let value = TxnLogValue {
        producer_id: 1000,
        producer_epoch: epoch,
        timeout_ms: TIMEOUT,
        status: state.id(),
        partitions,
        last_update_timestamp_ms: 10,
        start_timestamp_ms: if state == TxnState::Empty { -1 } else { 5 },
        ..TxnLogValue::default()
    };
    vec![(records::encode_key(TX), Some(encode_value(&value, 0)))]
}

#[test]
fn epochs_used_up_rotate_the_producer_id() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    load(
        &mut m,
        partition,
        1,
        log_with(TxnState::CompleteCommit, i16::MAX - 2, Some(vec![])),
        0,
    );
    let mut log = Log::new();
    assert_eq!(
        init(&mut m, &mut log, &mut no_ids(), 20),
        (1000, i16::MAX - 1)
    );
    // MAX - 1 is used up: a new producer id at epoch 0.
    let mut alloc = || Ok(2000);
    assert_eq!(init(&mut m, &mut log, &mut alloc, 30), (2000, 0));
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.previous_producer_id, meta.last_producer_epoch),
        (1000, -1)
    );
    // Counting on: epochs of the new id.
    assert_eq!(init(&mut m, &mut log, &mut no_ids(), 40), (2000, 1));
}

#[test]
fn kip_360_a_retried_rotation_gets_the_same_answer() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    load(
        &mut m,
        partition,
        1,
        log_with(TxnState::Empty, i16::MAX - 1, None),
        0,
    );
    let mut alloc = || Ok(2000);
    let expected = Some((1000, i16::MAX - 1));
    let reply = later(m.init_producer_id(TX, TIMEOUT, expected, 20, &mut alloc));
    let mut log = Log::new();
    store_ok(&mut m, &mut log, 20);
    assert_eq!(
        reply.try_take().unwrap(),
        InitResult {
            error: ec::NONE,
            producer_id: 2000,
            producer_epoch: 0
        }
    );
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.previous_producer_id, meta.last_producer_epoch),
        (1000, i16::MAX - 1)
    );
    // The response was lost: the producer asks again with what it had.
    let reply = later(m.init_producer_id(TX, TIMEOUT, expected, 30, &mut no_ids()));
    store_ok(&mut m, &mut log, 30);
    assert_eq!(
        reply.try_take().unwrap(),
        InitResult {
            error: ec::NONE,
            producer_id: 2000,
            producer_epoch: 0
        }
    );
    // The old id with an epoch that isn't used up is a zombie.
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, Some((1000, 5)), 40, &mut no_ids())).error,
        ec::PRODUCER_FENCED
    );
}

#[test]
fn kip_360_expected_epochs() {
    let mut m = machine();
    let mut log = Log::new();
    // A brand-new id accepts any expectation (the producer lost its id: UNKNOWN_PRODUCER_ID).
    let reply = later(m.init_producer_id(TX, TIMEOUT, Some((77, 3)), 0, &mut ids()));
    store_ok(&mut m, &mut log, 0);
    assert_eq!(
        reply.try_take().unwrap(),
        InitResult {
            error: ec::NONE,
            producer_id: 1000,
            producer_epoch: 0
        }
    );
    // The current epoch: bumped, the old one remembered.
    let reply = later(m.init_producer_id(TX, TIMEOUT, Some((1000, 0)), 1, &mut no_ids()));
    store_ok(&mut m, &mut log, 1);
    assert_eq!(reply.try_take().unwrap().producer_epoch, 1);
    assert_eq!(m.get(TX).unwrap().last_producer_epoch, 0);
    // A retry of that call: the same epoch again, no second bump.
    let reply = later(m.init_producer_id(TX, TIMEOUT, Some((1000, 0)), 2, &mut no_ids()));
    store_ok(&mut m, &mut log, 2);
    assert_eq!(reply.try_take().unwrap().producer_epoch, 1);
    // Neither current nor last: fenced. Another producer id: fenced.
    let error = |m: &mut Transactions, e| {
        now_value(m.init_producer_id(TX, TIMEOUT, Some(e), 3, &mut no_ids())).error
    };
    assert_eq!(error(&mut m, (1000, 5)), ec::PRODUCER_FENCED);
    assert_eq!(error(&mut m, (1001, 1)), ec::PRODUCER_FENCED);
    // A plain InitProducerId (a new producer instance) forgets the last epoch.
    assert_eq!(init(&mut m, &mut log, &mut no_ids(), 4), (1000, 2));
    assert_eq!(m.get(TX).unwrap().last_producer_epoch, -1);
    assert_eq!(error(&mut m, (1000, 1)), ec::PRODUCER_FENCED);
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut m = machine();
    let mut log = Log::new();
    init(&mut m, &mut log, &mut ids(), 1_000);
    m.tick(1_000 + EXPIRATION - 1);
    assert!(m.take_effects().is_empty());
    m.tick(1_000 + EXPIRATION);
    let s = one_store(&mut m);
    assert_eq!(
        (s.key.clone(), s.value.clone()),
        (records::encode_key(TX), None)
    );
    // Requests while the tombstone is written wait.
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, None, 0, &mut no_ids())).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    // A failed tombstone keeps the id; the next tick tries again.
    m.stored(&s.token, Err(ec::REQUEST_TIMED_OUT), 0);
    assert!(m.get(TX).unwrap().pending.is_none());
    m.tick(2_000 + EXPIRATION);
    assert_eq!(store_ok(&mut m, &mut log, 0), None);
    assert!(m.get(TX).is_none());
    assert_eq!(m.describe([TX])[0].error, ec::TRANSACTIONAL_ID_NOT_FOUND);
    // An open transaction never expires (it times out instead).
    ongoing(&mut m, &mut log, 0);
    let s = {
        m.tick(i64::from(TIMEOUT) + 1);
        one_store(&mut m)
    };
    assert_eq!(
        decode_value(s.value.as_ref().unwrap()).unwrap().status,
        TxnState::PrepareAbort.id()
    );
}

#[test]
fn loading_rebuilds_the_ids_and_completes_prepared_transactions() {
    let mut m = machine();
    let mut log = Log::new();
    let partition = m.partition_for(TX);
    ongoing(&mut m, &mut log, 0);
    let _reply = later(m.end_txn(TX, 1000, 0, TxnResult::Commit, 10));
    store_ok(&mut m, &mut log, 10);
    let stale_markers = one_markers(&mut m);
    // Another id, expired (tombstoned), and records that can't be read.
    let gone = "gone";
    log.push((
        records::encode_key(gone),
        Some(encode_value(
            &TxnLogValue {
                producer_id: 5,
                producer_epoch: 0,
                ..TxnLogValue::default()
            },
            1,
        )),
    ));
    log.push((records::encode_key(gone), None));
    log.push((vec![0, 9, 0, 0], Some(vec![1])));
    log.push((records::encode_key("bad"), Some(vec![0, 0, 1])));

    // The partition moves here again at coordinator epoch 2.
    let report = load(&mut m, partition, 2, log.clone(), 50);
    assert_eq!(
        report,
        LoadReport {
            transactional_ids: 1,
            skipped_records: 2,
            completing: vec![TX.into()]
        }
    );
    let markers = one_markers(&mut m);
    assert_eq!(
        markers,
        MarkerRequest {
            coordinator_epoch: 2,
            ..stale_markers.clone()
        }
    );
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.producer_epoch, meta.start_timestamp_ms),
        (TxnState::PrepareCommit, 0, 0)
    );
    // Reports from before the reload are ignored.
    m.markers_written(&stale_markers);
    assert!(m.take_effects().is_empty());
    // The retried EndTxn of the client waits for the completion.
    assert_eq!(
        now_value(m.end_txn(TX, 1000, 0, TxnResult::Commit, 60)).error,
        ec::CONCURRENT_TRANSACTIONS
    );
    m.markers_written(&markers);
    let s = one_store(&mut m);
    assert_eq!(s.token.coordinator_epoch, 2);
    m.stored(&s.token, Ok(()), 70);
    assert_eq!(m.get(TX).unwrap().state, TxnState::CompleteCommit);
    assert_eq!(m.coordinator_epoch(partition), Some(2));
    log.push((s.key, s.value));
    // Loading the whole log again gives the same id, at rest.
    let report = load(&mut m, partition, 3, log, 80);
    assert_eq!((report.transactional_ids, report.completing.len()), (1, 0));
    assert!(m.take_effects().is_empty());
    let meta = m.get(TX).unwrap();
    assert_eq!(
        (meta.state, meta.producer_id, meta.producer_epoch),
        (TxnState::CompleteCommit, 1000, 0)
    );
}

#[test]
fn v1_records_load_too() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let value = TxnLogValue {
        producer_id: 1000,
        previous_producer_id: 999,
        producer_epoch: 4,
        timeout_ms: TIMEOUT,
        status: TxnState::PrepareAbort.id(),
        partitions: Some(vec![records::TopicPartitions {
            topic: "a".into(),
            partitions: vec![1, 2],
        }]),
        last_update_timestamp_ms: 10,
        start_timestamp_ms: 5,
        ..TxnLogValue::default()
    };
    let partition = m.partition_for(TX);
    load(
        &mut m,
        partition,
        4,
        vec![(records::encode_key(TX), Some(encode_value(&value, 1)))],
        20,
    );
    let markers = one_markers(&mut m);
    assert_eq!(
        (markers.result, markers.producer_epoch),
        (TxnResult::Abort, 4)
    );
    assert_eq!(markers.partitions, vec![tp("a", 1), tp("a", 2)]);
    assert_eq!(m.get(TX).unwrap().previous_producer_id, 999);
}

#[test]
fn unloading_answers_the_waiting_and_forgets_the_partition() {
    let mut m = machine();
    let mut log = Log::new();
    let partition = m.partition_for(TX);
    init(&mut m, &mut log, &mut ids(), 0);
    let reply = later(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 1));
    let s = one_store(&mut m);
    m.unload(partition);
    assert_eq!(reply.try_take(), Some(ec::NOT_COORDINATOR));
    m.stored(&s.token, Ok(()), 2);
    assert!(m.get(TX).is_none());
    assert!(m.take_effects().is_empty());
    assert_eq!(
        now_value(m.add_partitions(TX, 1000, 0, [tp("a", 0)], 3)),
        ec::NOT_COORDINATOR
    );
    assert_eq!(m.describe([TX])[0].error, ec::NOT_COORDINATOR);
    // Queued effects of an unloaded partition are dropped.
    load(&mut m, partition, 2, log, 4);
    let _reply = later(m.init_producer_id(TX, TIMEOUT, None, 5, &mut no_ids()));
    m.unload(partition);
    assert!(m.take_effects().is_empty());
}

#[test]
fn describe_and_list() {
    let mut m = machine();
    let mut log = Log::new();
    ongoing(&mut m, &mut log, 100);
    let neighbour = (0..)
        .map(|i| format!("id-{i}"))
        .find(|id| m.partition_for(id) == m.partition_for(TX))
        .unwrap();
    let described = m.describe([TX, "", neighbour.as_str()]);
    assert_eq!(
        described[0],
        DescribedTxn {
            transactional_id: TX.into(),
            error: ec::NONE,
            state: "Ongoing",
            producer_id: 1000,
            producer_epoch: 0,
            timeout_ms: TIMEOUT,
            start_timestamp_ms: 100,
            partitions: vec![tp("a", 0)],
        }
    );
    assert_eq!(described[1].error, ec::INVALID_REQUEST);
    assert_eq!(described[2].error, ec::TRANSACTIONAL_ID_NOT_FOUND);

    let listed = m.list(&ListFilter::default(), 200);
    assert_eq!(
        listed,
        ListResult {
            error: ec::NONE,
            unknown_state_filters: vec![],
            transactions: vec![ListedTxn {
                transactional_id: TX.into(),
                producer_id: 1000,
                state: "Ongoing"
            }],
        }
    );
    let filter = |states: &[&str], producer_ids: &[i64], min_duration_ms| ListFilter {
        states: states.iter().map(|s| s.to_string()).collect(),
        producer_ids: producer_ids.to_vec(),
        min_duration_ms,
    };
    let count = |m: &Transactions, f: ListFilter| m.list(&f, 200).transactions.len();
    assert_eq!(count(&m, filter(&["Ongoing"], &[], -1)), 1);
    assert_eq!(count(&m, filter(&["Empty"], &[], -1)), 0);
    assert_eq!(count(&m, filter(&[], &[1000], -1)), 1);
    assert_eq!(count(&m, filter(&[], &[1], -1)), 0);
    assert_eq!(count(&m, filter(&[], &[], 99)), 1);
    assert_eq!(count(&m, filter(&[], &[], 100)), 0);
    let unknown = m.list(&filter(&["Ongoing", "Bogus"], &[], -1), 200);
    assert_eq!(
        (unknown.unknown_state_filters, unknown.transactions.len()),
        (vec!["Bogus".to_string()], 1)
    );
    m.begin_load(m.partition_for(TX) + 1, 1);
    assert_eq!(
        m.list(&ListFilter::default(), 200).error,
        ec::COORDINATOR_LOAD_IN_PROGRESS
    );
}

#[test]
fn a_fence_may_use_the_last_epoch_and_the_retry_rotates() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    let a0 = Some(vec![records::TopicPartitions {
        topic: "a".into(),
        partitions: vec![0],
    }]);
    load(
        &mut m,
        partition,
        1,
        log_with(TxnState::Ongoing, i16::MAX - 1, a0),
        0,
    );
    let mut log = Log::new();
    let reply = later(m.init_producer_id(TX, TIMEOUT, None, 20, &mut no_ids()));
    let value = store_ok(&mut m, &mut log, 20).unwrap();
    assert_eq!(value.producer_epoch, i16::MAX);
    assert_eq!(reply.try_take().unwrap().error, ec::CONCURRENT_TRANSACTIONS);
    let markers = one_markers(&mut m);
    assert_eq!(markers.producer_epoch, i16::MAX);
    m.markers_written(&markers);
    store_ok(&mut m, &mut log, 30);
    // The retry can't bump past i16::MAX: a new producer id. If none can be had now, the
    // allocator's error is the answer and nothing changes.
    let mut unavailable = || Err(ec::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(
        now_value(m.init_producer_id(TX, TIMEOUT, None, 40, &mut unavailable)).error,
        ec::COORDINATOR_LOAD_IN_PROGRESS
    );
    assert!(m.take_effects().is_empty());
    let mut alloc = || Ok(3000);
    assert_eq!(init(&mut m, &mut log, &mut alloc, 50), (3000, 0));
}

#[test]
fn init_producer_id_takes_the_new_timeout() {
    let mut m = machine();
    let mut log = Log::new();
    init(&mut m, &mut log, &mut ids(), 0);
    let reply = later(m.init_producer_id(TX, MAX_TIMEOUT, None, 1, &mut no_ids()));
    assert_eq!(
        store_ok(&mut m, &mut log, 1).unwrap().timeout_ms,
        MAX_TIMEOUT
    );
    assert_eq!(reply.try_take().unwrap().producer_epoch, 1);
    assert_eq!(m.get(TX).unwrap().timeout_ms, MAX_TIMEOUT);
    // While a partition loads, its ids can't be described.
    let partition = m.partition_for(TX);
    m.begin_load(partition, 2);
    assert_eq!(m.describe([TX])[0].error, ec::COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(
        m.verify_partitions(TX, 1000, 1, &[tp("a", 0)]),
        vec![(tp("a", 0), ec::COORDINATOR_LOAD_IN_PROGRESS)]
    );
}

#[test]
fn an_overtaken_load_is_ignored() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    let log = log_with(TxnState::Empty, 3, None);
    // Without begin_load, or at another epoch than the one begun: ignored.
    assert_eq!(m.load(partition, 1, log.clone(), 0), None);
    m.begin_load(partition, 2);
    assert_eq!(m.load(partition, 1, log.clone(), 0), None);
    // Unloaded while its records were read: ignored.
    m.unload(partition);
    assert_eq!(m.load(partition, 2, log.clone(), 0), None);
    assert!(m.get(TX).is_none());
    assert_eq!(m.coordinator_epoch(partition), None);
    m.begin_load(partition, 3);
    assert_eq!(m.coordinator_epoch(partition), None, "not until loaded");
    let report = m.load(partition, 3, log, 0).unwrap();
    assert_eq!(report.transactional_ids, 1);
    assert_eq!(m.coordinator_epoch(partition), Some(3));
    assert_eq!(m.get(TX).unwrap().producer_epoch, 3);
}

#[test]
fn garbled_timestamps_do_not_overflow() {
    let mut m = Transactions::new(config(), PARTITIONS);
    let partition = m.partition_for(TX);
    let value = TxnLogValue {
        producer_id: 1000,
        producer_epoch: 0,
        timeout_ms: i32::MAX,
        status: TxnState::Ongoing.id(),
        partitions: Some(vec![]),
        last_update_timestamp_ms: i64::MIN,
        start_timestamp_ms: i64::MAX,
        ..TxnLogValue::default()
    };
    let log = vec![(records::encode_key(TX), Some(encode_value(&value, 0)))];
    load(&mut m, partition, 1, log, 0);
    m.tick(i64::MAX);
    assert!(m.take_effects().is_empty(), "never timed out");
    let filter = ListFilter {
        min_duration_ms: 0,
        ..ListFilter::default()
    };
    assert!(m.list(&filter, i64::MIN).transactions.is_empty());
    assert_eq!(m.loaded_partitions(), vec![partition]);
    assert!(!m.has_effects());
}
