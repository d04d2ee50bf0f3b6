//! The transaction APIs request by request, with Kafka's error codes: InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! DescribeTransactions, ListTransactions and WriteTxnMarkers; the last stable offset in
//! ListOffsets and Fetch, aborted transactions in read_committed fetches, offsets held
//! until the commit (OffsetFetch's require_stable), and all of it after a SIGKILL.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, BrokerId, CreatePartitionsRequest,
    CreatePartitionsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    FetchResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, ListTransactionsRequest, ListTransactionsResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProducerId, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{create, delete_topic, fetch_request, name, produce};
use runnel_tests::{Broker, TempDir};

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

const TOPIC: &str = "raw-txn";
const TXN: &str = "raw";
const GROUP: &str = "raw-group";

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

/// InitProducerId for `id`, retrying what clients retry; returns (error, producer id, epoch).
fn init(conn: &mut KafkaConn, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = Some(txn_id(id));
    request.transaction_timeout_ms = timeout_ms;
    request.producer_id = ProducerId(-1);
    request.producer_epoch = -1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, 4, &request).unwrap();
        let retriable = [
            COORDINATOR_LOAD_IN_PROGRESS,
            COORDINATOR_NOT_AVAILABLE,
            CONCURRENT_TRANSACTIONS,
        ];
        if retriable.contains(&r.error_code) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        return (r.error_code, r.producer_id.0, r.producer_epoch);
    }
}

/// AddPartitionsToTxn at `version` (<= 3); each partition's error, in order.
fn add_partitions(
    conn: &mut KafkaConn,
    version: i16,
    (pid, epoch): (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<i16> {
    let mut request = AddPartitionsToTxnRequest::default();
    request.v3_and_below_transactional_id = txn_id(TXN);
    request.v3_and_below_producer_id = ProducerId(pid);
    request.v3_and_below_producer_epoch = epoch;
    for (topic, partition) in partitions {
        let mut t = AddPartitionsToTxnTopic::default();
        t.name = name(topic);
        t.partitions = vec![*partition];
        request.v3_and_below_topics.push(t);
    }
    let r: AddPartitionsToTxnResponse = conn
        .call(ApiKey::AddPartitionsToTxn, version, &request)
        .unwrap();
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

/// AddOffsetsToTxn for the test's group.
fn add_offsets(conn: &mut KafkaConn, (pid, epoch): (i64, i16)) {
    let mut request = AddOffsetsToTxnRequest::default();
    request.transactional_id = txn_id(TXN);
    request.producer_id = ProducerId(pid);
    request.producer_epoch = epoch;
    request.group_id = GroupId(StrBytes::from_static_str(GROUP));
    let r: AddOffsetsToTxnResponse = conn.call(ApiKey::AddOffsetsToTxn, 3, &request).unwrap();
    assert_eq!(r.error_code, 0);
}

/// TxnOffsetCommit of the group's `offset` for partition 0 (v3, outside group management);
/// its error code.
fn txn_offset_commit(conn: &mut KafkaConn, (pid, epoch): (i64, i16), offset: i64) -> i16 {
    let mut partition = TxnOffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = offset;
    partition.committed_leader_epoch = -1;
    let mut topic = TxnOffsetCommitRequestTopic::default();
    topic.name = name(TOPIC);
    topic.partitions = vec![partition];
    let mut request = TxnOffsetCommitRequest::default();
    request.transactional_id = txn_id(TXN);
    request.group_id = GroupId(StrBytes::from_static_str(GROUP));
    request.producer_id = ProducerId(pid);
    request.producer_epoch = epoch;
    request.generation_id = -1;
    request.topics = vec![topic];
    let r: TxnOffsetCommitResponse = conn.call(ApiKey::TxnOffsetCommit, 3, &request).unwrap();
    r.topics[0].partitions[0].error_code
}

fn end_txn(conn: &mut KafkaConn, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let mut request = EndTxnRequest::default();
    request.transactional_id = txn_id(TXN);
    request.producer_id = ProducerId(pid);
    request.producer_epoch = epoch;
    request.committed = commit;
    let r: EndTxnResponse = conn.call(ApiKey::EndTxn, 3, &request).unwrap();
    r.error_code
}

/// A transaction as DescribeTransactions shows it: error, state, topics with partitions.
type Described = (i16, String, Vec<(String, Vec<i32>)>);

fn describe(conn: &mut KafkaConn, ids: &[&str]) -> Vec<Described> {
    let mut request = DescribeTransactionsRequest::default();
    request.transactional_ids = ids.iter().map(|id| txn_id(id)).collect();
    let r: DescribeTransactionsResponse = conn
        .call(ApiKey::DescribeTransactions, 0, &request)
        .unwrap();
    r.transaction_states
        .iter()
        .map(|s| {
            let topics = s
                .topics
                .iter()
                .map(|t| (t.topic.to_string(), t.partitions.clone()))
                .collect();
            (s.error_code, s.transaction_state.to_string(), topics)
        })
        .collect()
}

fn state_of(conn: &mut KafkaConn, id: &str) -> String {
    describe(conn, &[id]).remove(0).1
}

/// Waits until `id`'s transaction reaches `state` (markers are written after EndTxn answers).
fn await_state(conn: &mut KafkaConn, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(conn, id) != state {
        assert!(Instant::now() < deadline, "{id} never reached {state}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One record, from `pid` at `epoch`, sequence `seq`, transactional.
fn txn_record(pid: i64, epoch: i16, seq: i32, value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new()
        .producer(pid, epoch, seq)
        .transactional();
    builder.push(&Record {
        key: Some(b"k".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp: 1_700_000_000_000,
    });
    builder.build()
}

fn plain_record(value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    builder.push(&Record {
        key: Some(b"k".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
        timestamp: 1_700_000_000_000,
    });
    builder.build()
}

/// ListOffsets latest of partition 0 at an isolation level (v7).
fn latest(conn: &mut KafkaConn, read_committed: bool) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = name(TOPIC);
    t.partitions = vec![p];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.isolation_level = i8::from(read_committed);
    request.topics = vec![t];
    let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &request).unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    r.topics[0].partitions[0].offset
}

/// A read_committed Fetch (v12) of partition 0 from 0: (last stable offset, aborted
/// transactions as (producer id, first offset)).
fn fetch_committed(conn: &mut KafkaConn) -> (i64, Vec<(i64, i64)>) {
    let mut request = fetch_request(TOPIC, 0, 0, 0);
    request.isolation_level = 1;
    let r: FetchResponse = conn.call(ApiKey::Fetch, 12, &request).unwrap();
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p
        .aborted_transactions
        .as_ref()
        .expect("read_committed fetches list aborted transactions")
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    (p.last_stable_offset, aborted)
}

/// OffsetFetch v8 of the group's offset for partition 0: (error, offset).
fn committed_offset(conn: &mut KafkaConn, require_stable: bool) -> (i16, i64) {
    let mut topic = OffsetFetchRequestTopic::default();
    topic.name = name(TOPIC);
    topic.partition_indexes = vec![0];
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(StrBytes::from_static_str(GROUP));
    request.topics = Some(vec![topic]);
    request.require_stable = require_stable;
    let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request).unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[test]
fn every_transaction_api_answers_as_kafka_does() {
    let dir = TempDir::new("txn-apis");
    let mut broker = Broker::start_in(&dir, "auto", &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, TOPIC, 1, &[], false).0, 0);

    // InitProducerId: timeouts beyond transaction.max.timeout.ms are refused.
    assert_eq!(init(&mut conn, TXN, 900_001).0, INVALID_TRANSACTION_TIMEOUT);
    let (error, pid, epoch) = init(&mut conn, TXN, 60_000);
    assert_eq!((error, epoch), (0, 0));
    let me = (pid, epoch);

    // AddPartitionsToTxn: an unknown partition spoils the request; wrong ids and epochs.
    assert_eq!(
        add_partitions(&mut conn, 3, me, &[(TOPIC, 0), ("missing", 0)]),
        vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        add_partitions(&mut conn, 3, (pid + 1, epoch), &[(TOPIC, 0)]),
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    assert_eq!(
        add_partitions(&mut conn, 3, (pid, epoch + 1), &[(TOPIC, 0)]),
        vec![PRODUCER_FENCED]
    );
    assert_eq!(
        add_partitions(&mut conn, 1, (pid, epoch + 1), &[(TOPIC, 0)]),
        vec![INVALID_PRODUCER_EPOCH],
        "clients before v2 don't know PRODUCER_FENCED"
    );
    assert_eq!(add_partitions(&mut conn, 3, me, &[(TOPIC, 0)]), vec![0]);
    assert_eq!(state_of(&mut conn, TXN), "Ongoing");

    // The transaction's record holds read_committed readers at its offset; a plain record
    // after it too.
    assert_eq!(
        produce(&mut conn, TOPIC, 0, -1, txn_record(pid, epoch, 0, "t0")),
        (0, 0)
    );
    assert_eq!(produce(&mut conn, TOPIC, 0, -1, plain_record("p1")), (0, 1));
    assert_eq!((latest(&mut conn, false), latest(&mut conn, true)), (2, 0));
    assert_eq!(fetch_committed(&mut conn), (0, vec![]));

    // Offsets in the transaction: held until the commit.
    add_offsets(&mut conn, (pid, epoch));
    assert_eq!(txn_offset_commit(&mut conn, (pid, epoch), 2), 0);
    assert_eq!(
        committed_offset(&mut conn, true),
        (UNSTABLE_OFFSET_COMMIT, -1)
    );
    assert_eq!(committed_offset(&mut conn, false), (0, -1));

    // DescribeTransactions and ListTransactions while it is open.
    let described = describe(&mut conn, &[TXN, "nobody"]);
    assert_eq!(
        described[0],
        (
            0,
            "Ongoing".to_string(),
            vec![
                (
                    "__consumer_offsets".to_string(),
                    vec![described[0].2[0].1[0]]
                ),
                (TOPIC.to_string(), vec![0])
            ]
        )
    );
    assert_eq!(described[1].0, TRANSACTIONAL_ID_NOT_FOUND);
    let list = |conn: &mut KafkaConn, states: &[&str], min_duration_ms: i64| {
        let mut request = ListTransactionsRequest::default();
        request.state_filters = states
            .iter()
            .map(|s| StrBytes::from_string(s.to_string()))
            .collect();
        request.duration_filter = min_duration_ms;
        let r: ListTransactionsResponse = conn.call(ApiKey::ListTransactions, 1, &request).unwrap();
        let ids: Vec<String> = r
            .transaction_states
            .iter()
            .map(|s| s.transactional_id.to_string())
            .collect();
        let unknown: Vec<String> = r
            .unknown_state_filters
            .iter()
            .map(|s| s.to_string())
            .collect();
        (r.error_code, ids, unknown)
    };
    assert_eq!(
        list(&mut conn, &["Ongoing"], -1),
        (0, vec![TXN.to_string()], vec![])
    );
    assert_eq!(list(&mut conn, &["Empty"], -1), (0, vec![], vec![]));
    assert_eq!(
        list(&mut conn, &["Bogus"], -1),
        (0, vec![], vec!["Bogus".to_string()])
    );
    assert_eq!(
        list(&mut conn, &[], 3_600_000),
        (0, vec![], vec![]),
        "not an hour old"
    );

    // EndTxn: commit; a retry of it succeeds, the opposite is refused.
    assert_eq!(end_txn(&mut conn, me, true), 0);
    await_state(&mut conn, TXN, "CompleteCommit");
    assert_eq!(end_txn(&mut conn, me, true), 0);
    assert_eq!(end_txn(&mut conn, me, false), INVALID_TXN_STATE);
    assert_eq!(
        latest(&mut conn, true),
        3,
        "the commit marker (offset 2) is stable"
    );
    assert_eq!(committed_offset(&mut conn, true), (0, 2));

    // WriteTxnMarkers: an abort written directly for a producer's stray transaction.
    let stray = pid + 1_000_000;
    assert_eq!(
        produce(&mut conn, TOPIC, 0, -1, txn_record(stray, 0, 0, "s")),
        (0, 3)
    );
    assert_eq!(latest(&mut conn, true), 3);
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(stray);
    marker.producer_epoch = 0;
    marker.transaction_result = false;
    marker.coordinator_epoch = 0;
    let mut marked = WritableTxnMarkerTopic::default();
    marked.name = name(TOPIC);
    marked.partition_indexes = vec![0];
    marker.topics = vec![marked];
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = vec![marker];
    let r: WriteTxnMarkersResponse = conn.call(ApiKey::WriteTxnMarkers, 1, &request).unwrap();
    assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0);
    assert_eq!(latest(&mut conn, true), 5);
    assert_eq!(fetch_committed(&mut conn), (5, vec![(stray, 3)]));

    // All of it survives a SIGKILL: the coordinator's state, the held-then-applied offsets,
    // the aborted transaction index.
    drop(conn);
    broker.signal(libc::SIGKILL);
    broker.wait_exit(Duration::from_secs(10)).unwrap();
    let broker = Broker::start_in(&dir, "auto", &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(state_of(&mut conn, TXN), "CompleteCommit");
    assert_eq!(committed_offset(&mut conn, true), (0, 2));
    assert_eq!(fetch_committed(&mut conn), (5, vec![(stray, 3)]));
    // A new InitProducerId bumps the epoch and fences the old one.
    let (error, again, bumped) = init(&mut conn, TXN, 60_000);
    assert_eq!((error, again, bumped), (0, pid, epoch + 1));
    assert_eq!(end_txn(&mut conn, me, true), PRODUCER_FENCED);
}

/// A commit decided (PrepareCommit stored, EndTxn answered) whose markers were not yet written
/// when the broker was killed: the coordinator finishes it when it loads its state again, its
/// records become readable to read_committed consumers and the offsets it committed reach
/// the group. Writes to the data partition and to `__consumer_offsets` are slowed (an
/// injected fault) so the kill lands between the decision and the markers.
#[test]
fn a_commit_interrupted_before_its_markers_is_finished_after_a_restart() {
    let dir = TempDir::new("txn-resend");
    let slow = [(
        "RUNNEL_FAULTS",
        "slow:1500:raw-txn-0;slow:1500:__consumer_offsets",
    )];
    let mut broker = Broker::start_in_env(&dir, "auto", &[], &slow);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, TOPIC, 1, &[], false).0, 0);
    let (error, pid, epoch) = init(&mut conn, TXN, 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut conn, 3, (pid, epoch), &[(TOPIC, 0)]),
        vec![0]
    );
    assert_eq!(
        produce(&mut conn, TOPIC, 0, -1, txn_record(pid, epoch, 0, "t0")),
        (0, 0)
    );
    add_offsets(&mut conn, (pid, epoch));
    assert_eq!(txn_offset_commit(&mut conn, (pid, epoch), 1), 0);

    assert_eq!(end_txn(&mut conn, (pid, epoch), true), 0);
    assert_eq!(
        state_of(&mut conn, TXN),
        "PrepareCommit",
        "the markers are still on their way"
    );
    broker.signal(libc::SIGKILL);
    broker.wait_exit(Duration::from_secs(10)).unwrap();
    drop(conn);

    let broker = Broker::start_in(&dir, "auto", &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    await_state(&mut conn, TXN, "CompleteCommit");
    assert_eq!(
        latest(&mut conn, true),
        2,
        "the record and its commit marker are stable"
    );
    assert_eq!(fetch_committed(&mut conn), (2, vec![]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed_offset(&mut conn, true) != (0, 1) {
        assert!(
            Instant::now() < deadline,
            "the transaction's offset never took effect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the coordinators refuse reaches the client as Kafka's error: writes, deletions and
/// repartitioning of `__transaction_state`, markers claiming a newer coordinator, a
/// transactional id too long for its record key, and a fenced producer's offset commit.
#[test]
fn refusals_reach_the_client_as_kafkas_errors() {
    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    const INVALID_REQUEST: i16 = 42;
    let dir = TempDir::new("txn-refusals");
    let broker = Broker::start_in(&dir, "auto", &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, TOPIC, 1, &[], false).0, 0);
    let (error, pid, epoch) = init(&mut conn, TXN, 60_000);
    assert_eq!(error, 0);

    // The transaction coordinator's topic, made by the InitProducerId above.
    let state = "__transaction_state";
    assert_eq!(
        produce(&mut conn, state, 0, -1, plain_record("x")).0,
        INVALID_TOPIC_EXCEPTION
    );
    let mut partition = DeleteRecordsPartition::default();
    partition.partition_index = 0;
    partition.offset = -1;
    let mut topic = DeleteRecordsTopic::default();
    topic.name = name(state);
    topic.partitions = vec![partition];
    let mut request = DeleteRecordsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 10_000;
    let r: DeleteRecordsResponse = conn.call(ApiKey::DeleteRecords, 2, &request).unwrap();
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );
    let mut more = CreatePartitionsTopic::default();
    more.name = name(state);
    more.count = 60;
    let mut request = CreatePartitionsRequest::default();
    request.topics = vec![more];
    request.timeout_ms = 10_000;
    let r: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 3, &request).unwrap();
    assert_eq!(r.results[0].error_code, INVALID_REQUEST);
    assert_eq!(delete_topic(&mut conn, state), TOPIC_AUTHORIZATION_FAILED);

    // Markers from a coordinator claiming a newer epoch than this broker's.
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(pid);
    marker.producer_epoch = epoch;
    marker.transaction_result = false;
    marker.coordinator_epoch = 1;
    let mut marked = WritableTxnMarkerTopic::default();
    marked.name = name(TOPIC);
    marked.partition_indexes = vec![0];
    marker.topics = vec![marked];
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = vec![marker];
    let r: WriteTxnMarkersResponse = conn.call(ApiKey::WriteTxnMarkers, 1, &request).unwrap();
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code,
        INVALID_REQUEST
    );

    // A transactional id longer than a record key can hold.
    assert_eq!(
        init(&mut conn, &"t".repeat(40_000), 60_000).0,
        INVALID_REQUEST
    );

    // A producer fenced by a new instance: its offset commit is refused as fenced, not as a
    // coordinator to retry.
    add_offsets(&mut conn, (pid, epoch));
    assert_eq!(txn_offset_commit(&mut conn, (pid, epoch), 1), 0);
    let (error, _, bumped) = init(&mut conn, TXN, 60_000);
    assert_eq!(error, 0);
    assert!(bumped > epoch);
    assert_eq!(
        txn_offset_commit(&mut conn, (pid, epoch), 2),
        INVALID_PRODUCER_EPOCH
    );
}
