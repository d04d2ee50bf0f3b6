//! Log compaction (`cleanup.policy=compact`) against the real broker, with real clients
//! (librdkafka through the `rdkafka` crate, kafka-python from `.venv`):
//!
//! - keyed overwrites and tombstones compact to each key's newest record, with gaps in the
//!   offsets that both clients read through; tombstones stay for `delete.retention.ms`, then a
//!   later pass removes them; the log shrinks on disk; `/metrics` reports the cleaner;
//! - records without a key are refused (INVALID_RECORD) and DeleteRecords too
//!   (POLICY_VIOLATION) on a compact-only topic;
//! - consumers reading while the cleaner runs see a consistent log (defined at
//!   [`consumers_reading_during_cleaning_see_a_consistent_log`]);
//! - many group commits keep `__consumer_offsets` small, and the offsets survive a restart
//!   that loads them from the compacted log; an offsets topic made before compaction is
//!   compacted from the next start;
//! - SIGKILL while the cleaner works loses no acknowledged key's newest value.
//!
//! Cleaning within seconds: small segments, `min.cleanable.dirty.ratio=0.01`,
//! `log_cleaner_backoff_ms` of tens of milliseconds. The cleaner never touches a log's active
//! segment, so a test that wants every overwrite cleaned ends its workload with "filler"
//! records of keys of their own, enough to roll the segment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_executor::block_on;
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::produce_request;
use runnel_tests::{backends_under_test, python, runnelctl, Broker, TempDir};

const INVALID_RECORD: i16 = 87;

/// The broker's config file in these tests: a cleaner that looks for work every 50 ms.
const FAST: &str = "log_cleaner_backoff_ms = 50\n";

/// A compacted topic that cleans as soon as anything is dirty.
const COMPACT: [(&str, &str); 3] = [
    ("cleanup.policy", "compact"),
    ("segment.bytes", "16384"),
    ("min.cleanable.dirty.ratio", "0.01"),
];

/// Starts a broker with config file `config` (TOML) and the admin port.
fn start(dir: &TempDir, config: &str) -> Broker {
    start_at(dir, config, None)
}

/// [`start`] on a given address (a restart keeps its clients' bootstrap address).
fn start_at(dir: &TempDir, config_text: &str, listen: Option<&str>) -> Broker {
    let config = dir.path().join("runnel.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ];
    if let Some(listen) = listen {
        args.extend(["--listen", listen]);
    }
    Broker::start_in(dir, backends_under_test()[0], &args)
}

fn admin(addr: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap()
}

fn create_topic(addr: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin(addr).create_topics([&topic], &AdminOptions::new())).unwrap();
    assert!(results[0].is_ok(), "create {name}: {results:?}");
}

/// A topic's configs as DescribeConfigs reports them.
fn describe(addr: &str, topic: &str) -> BTreeMap<String, Option<String>> {
    let spec = ResourceSpecifier::Topic(topic);
    let described = block_on(admin(addr).describe_configs([&spec], &AdminOptions::new())).unwrap();
    let resource = described[0].as_ref().expect("described");
    resource
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// One record as the tests write and read it. `version` travels in header `v` (a tombstone
/// has no value to carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<String>,
    value: Option<String>,
    version: Option<u64>,
}

/// What a producer's deliveries were: successes with their offsets, failures with their
/// error codes.
#[derive(Default)]
struct Outcomes {
    acked: Vec<Rec>,
    failed: Vec<RDKafkaErrorCode>,
}

struct Deliveries(Arc<Mutex<Outcomes>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut outcomes = self.0.lock().unwrap();
        match result {
            Ok(message) => outcomes.acked.push(rec(message)),
            Err((KafkaError::MessageProduction(code), _)) => outcomes.failed.push(*code),
            Err((e, _)) => panic!("delivery failed: {e}"),
        }
    }
}

/// A record read or acknowledged.
fn rec(message: &impl Message) -> Rec {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let version = message.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == "v")
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    });
    Rec {
        partition: message.partition(),
        offset: message.offset(),
        key: text(message.key()),
        value: text(message.payload()),
        version,
    }
}

fn producer(
    addr: &str,
    outcomes: &Arc<Mutex<Outcomes>>,
    extra: &[(&str, &str)],
) -> BaseProducer<Deliveries> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        // Batches well under segment.bytes (a batch larger than a segment is refused).
        .set("batch.size", "4096")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .create_with_context(Deliveries(outcomes.clone()))
        .unwrap()
}

/// A write: partition, key, value (`None`: a tombstone), version.
type Write = (i32, String, Option<String>, u64);

/// Sends `writes` in order with librdkafka and waits until every one is acknowledged.
fn produce_all(addr: &str, topic: &str, writes: &[Write]) -> Vec<Rec> {
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let producer = producer(addr, &outcomes, &[("enable.idempotence", "true")]);
    for (partition, key, value, version) in writes {
        send(
            &producer,
            topic,
            *partition,
            key,
            value.as_deref(),
            *version,
        );
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(outcomes.failed.is_empty(), "refused: {:?}", outcomes.failed);
    assert_eq!(outcomes.acked.len(), writes.len());
    outcomes.acked
}

/// Queues one record, waiting for room in the producer's queue.
fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    partition: i32,
    key: &str,
    value: Option<&str>,
    version: u64,
) {
    let version = version.to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: "v",
        value: Some(&version),
    });
    let mut record = BaseRecord::to(topic)
        .key(key)
        .partition(partition)
        .headers(headers);
    if let Some(value) = value {
        record = record.payload(value);
    }
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Every record of `topic`'s partitions from the start to their high watermarks, read with
/// librdkafka; panics if the consumer stops advancing (a gap it can't get over).
fn read_all(addr: &str, topic: &str, partitions: i32) -> Vec<Rec> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (_, end) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.push(end);
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut next = vec![0i64; partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(20);
    while next.iter().zip(&ends).any(|(n, e)| n < e) {
        assert!(
            Instant::now() < deadline,
            "librdkafka stalled at {next:?} reading {topic} up to {ends:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let p = message.partition() as usize;
                next[p] = next[p].max(message.offset() + 1);
                records.push(rec(&message));
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
        // Records removed at a partition's end leave no message to say it was reached.
        if let Ok(positions) = consumer.position() {
            for element in positions.elements() {
                if let Offset::Offset(at) = element.offset() {
                    let p = element.partition() as usize;
                    next[p] = next[p].max(at);
                }
            }
        }
    }
    records
}

/// The same with kafka-python: every record from the start to the high watermarks.
fn read_all_kafka_python(addr: &str, topic: &str, partitions: i32) -> Vec<Rec> {
    const SCRIPT: &str = r#"
import json, sys, time
from kafka import KafkaConsumer, TopicPartition
addr, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False)
tps = [TopicPartition(topic, p) for p in range(partitions)]
consumer.assign(tps)
consumer.seek_to_beginning(*tps)
ends = consumer.end_offsets(tps)
deadline = time.time() + 20
while any(consumer.position(tp) < ends[tp] for tp in tps):
    if time.time() > deadline:
        sys.exit("kafka-python stalled at %s of %s" % ([consumer.position(tp) for tp in tps], ends))
    for tp, messages in consumer.poll(timeout_ms=200).items():
        for m in messages:
            version = dict(m.headers).get("v")
            print(json.dumps([m.partition, m.offset,
                              None if m.key is None else m.key.decode(),
                              None if m.value is None else m.value.decode(),
                              None if version is None else int(version.decode())]))
consumer.close()
"#;
    let out = python::run_ok(SCRIPT, &[addr, topic, &partitions.to_string()]);
    out.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
            Rec {
                partition: v[0].as_i64().unwrap() as i32,
                offset: v[1].as_i64().unwrap(),
                key: text(&v[2]),
                value: text(&v[3]),
                version: v[4].as_u64(),
            }
        })
        .collect()
}

/// Offsets only grow within each partition.
fn assert_offsets_increase(records: &[Rec], who: &str) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        if let Some(&before) = last.get(&r.partition) {
            assert!(
                r.offset > before,
                "{who}: partition {} went from offset {before} to {}",
                r.partition,
                r.offset
            );
        }
        last.insert(r.partition, r.offset);
    }
}

/// Records by (partition, key), in the order read.
fn by_key(records: &[Rec]) -> BTreeMap<(i32, String), Vec<&Rec>> {
    let mut keys: BTreeMap<(i32, String), Vec<&Rec>> = BTreeMap::new();
    for r in records {
        let key = r.key.clone().expect("every record here has a key");
        keys.entry((r.partition, key)).or_default().push(r);
    }
    keys
}

/// Reads with librdkafka until `done` accepts what it read (the cleaner caught up); panics
/// after `timeout`, showing why the last read didn't satisfy it.
fn read_until(
    addr: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    done: impl Fn(&[Rec]) -> Result<(), String>,
) -> Vec<Rec> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_all(addr, topic, partitions);
        match done(&records) {
            Ok(()) => return records,
            Err(why) if Instant::now() > deadline => {
                panic!("{topic} not compacted within {timeout:?}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Each key at most once, except those `allowed` to repeat (the active segment's).
fn each_key_once(records: &[Rec], allowed: impl Fn(&str) -> bool) -> Result<(), String> {
    for ((p, key), recs) in by_key(records) {
        if recs.len() > 1 && !allowed(&key) {
            return Err(format!("{p}/{key} appears {} times", recs.len()));
        }
    }
    Ok(())
}

/// Bytes of a partition directory's segment files (`.log`). The cleaner may be swapping
/// files meanwhile: one gone before it is measured counts nothing.
fn log_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Bytes of the segment files of every partition of `topic` under `data`.
fn topic_log_bytes(data: &Path, topic: &str) -> u64 {
    std::fs::read_dir(data)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.rsplit_once('-')
                .is_some_and(|(t, p)| t == topic && p.parse::<u32>().is_ok())
        })
        .map(|e| log_bytes(&e.path()))
        .sum()
}

/// The value of `/metrics` sample `name{topic="..",partition=".."}`, if it is there.
fn metric(admin: &str, name: &str, topic: &str, partition: i32) -> Option<f64> {
    let text = runnel_net::metrics::report::fetch(admin).unwrap();
    let series = format!("{name}{{topic=\"{topic}\",partition=\"{partition}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.parse().unwrap())
}

/// Filler: `count` records per partition of keys of their own, big enough to roll a
/// 16 KiB segment, so what was written before is all in sealed (cleanable) segments.
fn filler(tag: &str, partitions: i32, count: usize) -> Vec<Write> {
    let mut writes = Vec::new();
    for p in 0..partitions {
        for i in 0..count {
            let value = format!("{tag}-{i}-{}", "f".repeat(300));
            writes.push((p, format!("{FILLER}{tag}-{p}-{i}"), Some(value), 0));
        }
    }
    writes
}

const FILLER: &str = "filler-";

fn is_filler(key: &str) -> bool {
    key.starts_with(FILLER)
}

#[test]
fn overwrites_and_tombstones_compact_to_each_keys_newest_record() {
    const TOPIC: &str = "keyed";
    const KEYS: usize = 200;
    const ROUNDS: u64 = 10;
    const DELETE_RETENTION_MS: u64 = 6000;
    let dir = TempDir::new("compaction-keyed");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    let admin_port = broker.admin_addr();
    // Written under cleanup.policy=delete first (nothing is cleaned), so the size before
    // compaction is known; then switched to compact, as an operator would.
    let retention = DELETE_RETENTION_MS.to_string();
    let mut configs = vec![
        ("segment.bytes", "16384"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", retention.as_str()),
    ];
    create_topic(
        &addr,
        TOPIC,
        2,
        &[&configs[..], &[("cleanup.policy", "delete")]].concat(),
    );
    let key = |k: usize| format!("k{k:04}");
    let mut writes: Vec<Write> = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let value = format!("{}-v{round}-{}", key(k), "x".repeat(90));
            writes.push(((k % 2) as i32, key(k), Some(value), round));
        }
    }
    // Every fifth key deleted.
    let deleted: BTreeSet<String> = (0..KEYS).step_by(5).map(key).collect();
    for k in (0..KEYS).step_by(5) {
        writes.push(((k % 2) as i32, key(k), None, ROUNDS));
    }
    writes.extend(filler("a", 2, 60));
    produce_all(&addr, TOPIC, &writes);
    let newest: BTreeMap<(i32, String), Option<String>> = writes
        .iter()
        .map(|(p, k, v, _)| ((*p, k.clone()), v.clone()))
        .collect();
    let data = dir.path().join("data");
    let before = topic_log_bytes(&data, TOPIC);
    assert_eq!(
        read_all(&addr, TOPIC, 2).len(),
        writes.len(),
        "nothing is cleaned under cleanup.policy=delete"
    );

    configs.push(("cleanup.policy", "compact"));
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(TOPIC));
    for (k, v) in &configs {
        alter = alter.set(k, v);
    }
    let altered = block_on(admin(&addr).alter_configs([&alter], &AdminOptions::new())).unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");

    // The first passes leave each key once, its newest record, tombstones included.
    let compacted = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    let check_newest = |records: &[Rec], who: &str, tombstones_kept: bool| {
        assert_offsets_increase(records, who);
        let keys = by_key(records);
        for ((p, k), value) in &newest {
            let found = keys.get(&(*p, k.clone()));
            match (value, found) {
                (Some(value), Some(recs)) => {
                    assert_eq!(
                        recs.last().unwrap().value.as_ref(),
                        Some(value),
                        "{who}: {p}/{k}"
                    )
                }
                (None, Some(recs)) if tombstones_kept => assert_eq!(
                    recs.last().unwrap().value,
                    None,
                    "{who}: {p}/{k} should be a tombstone"
                ),
                (None, None) if !tombstones_kept => {}
                (_, found) => panic!("{who}: {p}/{k}: expected {value:?}, read {found:?}"),
            }
        }
        assert_eq!(
            keys.len(),
            newest.len() - if tombstones_kept { 0 } else { deleted.len() },
            "{who}: no other keys"
        );
    };
    check_newest(&compacted, "librdkafka after cleaning", true);
    let tombstones = compacted.iter().filter(|r| r.value.is_none()).count();
    assert_eq!(
        tombstones,
        deleted.len(),
        "tombstones kept within delete.retention.ms"
    );
    // Offsets kept their places: gaps where records went.
    let last_offset = compacted.iter().map(|r| r.offset).max().unwrap();
    assert!(
        (compacted.len() as i64) < last_offset / 2,
        "{} records up to offset {last_offset}: offsets keep gaps",
        compacted.len()
    );
    let after = topic_log_bytes(&data, TOPIC);
    assert!(
        after * 3 < before,
        "the log shrinks on disk: {before} bytes before compaction, {after} after"
    );

    // kafka-python reads the same log through its gaps (its tombstones may have expired by
    // now: only what both states share is checked).
    let python = read_all_kafka_python(&addr, TOPIC, 2);
    assert_offsets_increase(&python, "kafka-python");
    each_key_once(&python, is_filler).unwrap();
    for r in &python {
        let key = r.key.clone().unwrap();
        if let Some(Some(value)) = newest.get(&(r.partition, key.clone())) {
            assert_eq!(r.value.as_ref(), Some(value), "kafka-python: {key}");
        }
    }
    let python_keys: BTreeSet<String> = python.iter().filter_map(|r| r.key.clone()).collect();
    for ((_, k), value) in &newest {
        assert!(
            value.is_none() || python_keys.contains(k),
            "kafka-python: {k} missing"
        );
    }

    // What the cleaner did shows in /metrics.
    for p in 0..2 {
        let runs = metric(&admin_port, "runnel_cleaner_runs_total", TOPIC, p).unwrap();
        assert!(runs >= 1.0, "partition {p}: {runs} runs");
        let removed = metric(
            &admin_port,
            "runnel_cleaner_records_removed_total",
            TOPIC,
            p,
        )
        .unwrap();
        assert!(
            removed >= (KEYS as f64 / 2.0) * (ROUNDS as f64 - 1.0),
            "partition {p}: {removed} removed"
        );
        for name in [
            "runnel_cleaner_bytes_read_total",
            "runnel_cleaner_bytes_written_total",
        ] {
            assert!(metric(&admin_port, name, TOPIC, p).unwrap() > 0.0, "{name}");
        }
        let ratio = metric(&admin_port, "runnel_partition_dirty_ratio", TOPIC, p).unwrap();
        assert!((0.0..=1.0).contains(&ratio), "dirty ratio {ratio}");
        let since = metric(
            &admin_port,
            "runnel_cleaner_seconds_since_last_clean",
            TOPIC,
            p,
        )
        .unwrap();
        assert!(
            (0.0..60.0).contains(&since),
            "{since} s since the last clean"
        );
    }

    // Past delete.retention.ms a later pass removes the tombstones, with no new writes.
    let expired = read_until(
        &addr,
        TOPIC,
        2,
        Duration::from_secs(30),
        |records| match records.iter().find(|r| r.value.is_none()) {
            Some(r) => Err(format!("tombstone {:?} still there", r.key)),
            None => Ok(()),
        },
    );
    check_newest(&expired, "librdkafka after delete.retention.ms", false);
    let python = read_all_kafka_python(&addr, TOPIC, 2);
    check_newest(&python, "kafka-python after delete.retention.ms", false);
}

#[test]
fn keyless_records_and_delete_records_are_refused_on_compacted_topics() {
    let dir = TempDir::new("compaction-refusals");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, "compacted", 1, &COMPACT);
    create_topic(
        &addr,
        "both",
        1,
        &[
            ("cleanup.policy", "compact,delete"),
            ("segment.bytes", "16384"),
        ],
    );

    // librdkafka: a keyless record fails with INVALID_RECORD; a keyed one is stored.
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let producer = producer(&addr, &outcomes, &[]);
    producer
        .send(
            BaseRecord::<str, str>::to("compacted")
                .payload("no key")
                .partition(0),
        )
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    producer
        .send(
            BaseRecord::to("compacted")
                .key("k")
                .payload("keyed")
                .partition(0),
        )
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    {
        let outcomes = outcomes.lock().unwrap();
        assert_eq!(outcomes.failed, [RDKafkaErrorCode::InvalidRecord]);
        assert_eq!(outcomes.acked.len(), 1);
        assert_eq!(outcomes.acked[0].key.as_deref(), Some("k"));
    }

    // A batch mixing keyed and keyless records is refused whole, each keyless record named
    // in record_errors (Produce v8+), as Kafka answers.
    let mut builder = BatchBuilder::new();
    for i in 0..10 {
        builder.push(&Record {
            key: (i % 4 != 1).then(|| format!("k{i}").into_bytes()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
            timestamp: 1,
        });
    }
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let request = produce_request("compacted", 0, -1, builder.build());
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &request).unwrap();
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, INVALID_RECORD);
    let named: Vec<i32> = answer.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, [1, 5, 9]);
    let message = answer.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap();
    assert_eq!(
        message.as_str(),
        "Compacted topic cannot accept message without key in topic partition compacted-0."
    );
    assert!(
        answer
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("3 record errors")),
        "{:?}",
        answer.error_message
    );
    assert_eq!(
        read_all(&addr, "compacted", 1).len(),
        1,
        "nothing of the refused batches was stored"
    );

    // kafka-python: the same refusal; DeleteRecords too, with POLICY_VIOLATION, on a topic
    // whose policy lacks delete, and allowed where it has delete.
    const SCRIPT: &str = r#"
import sys
from kafka import KafkaProducer, KafkaAdminClient, TopicPartition
from kafka.errors import InvalidRecordError, PolicyViolationError
addr = sys.argv[1]
producer = KafkaProducer(bootstrap_servers=addr, retries=0)
try:
    producer.send("compacted", value=b"no key", partition=0).get(timeout=30)
    sys.exit("a keyless record was accepted")
except InvalidRecordError:
    print("keyless: INVALID_RECORD")
producer.send("both", key=b"k", value=b"v", partition=0).get(timeout=30)
producer.send("both", key=b"k", value=b"w", partition=0).get(timeout=30)
producer.close()
admin = KafkaAdminClient(bootstrap_servers=addr)
try:
    admin.delete_records({TopicPartition("compacted", 0): 1})
    sys.exit("DeleteRecords on a compact-only topic was accepted")
except PolicyViolationError:
    print("delete compacted: POLICY_VIOLATION")
result = admin.delete_records({TopicPartition("both", 0): 1})
print("delete both:", result)
"#;
    let out = python::run_ok(SCRIPT, &[&addr]);
    assert!(out.contains("keyless: INVALID_RECORD"), "{out}");
    assert!(out.contains("delete compacted: POLICY_VIOLATION"), "{out}");

    // librdkafka's DeleteRecords: the same answers.
    let admin = admin(&addr);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("compacted", 0, Offset::Offset(1))
        .unwrap();
    let result = block_on(admin.delete_records(&offsets, &AdminOptions::new())).unwrap();
    assert_eq!(
        result.elements()[0].error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::PolicyViolation)),
        "{result:?}"
    );
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("both", 0, Offset::Offset(2))
        .unwrap();
    let result = block_on(admin.delete_records(&offsets, &AdminOptions::new())).unwrap();
    assert_eq!(result.elements()[0].error(), Ok(()), "{result:?}");
    assert_eq!(
        result.elements()[0].offset(),
        Offset::Offset(2),
        "the new low watermark"
    );
}

/// What one reader saw in one pass over the log, for checking once every write is known.
struct Pass {
    /// The high watermarks the pass read up to.
    ends: Vec<i64>,
    /// Per key, the newest version acknowledged before the pass began.
    acked_before: BTreeMap<String, u64>,
    /// Per key, the newest version the pass read.
    seen: BTreeMap<String, u64>,
}

/// Consumers reading while the cleaner runs see a consistent log. Precisely, in every pass
/// from the start of the log to the high watermark it found:
/// 1. offsets strictly increase within a partition;
/// 2. a key's versions strictly increase in the order read (nothing older follows newer);
/// 3. a key whose newest acknowledged version before the pass began was v is read at v or
///    newer, unless a newer write of the key lies beyond where the pass stopped (only then
///    may the cleaner have removed v);
/// 4. no pass stalls;
///
/// and once the producer stops and the cleaner catches up, each key's one record is its last
/// write (a tombstone if that was one).
#[test]
fn consumers_reading_during_cleaning_see_a_consistent_log() {
    const TOPIC: &str = "live";
    const KEYS: u64 = 300;
    const PRODUCE_FOR: Duration = Duration::from_secs(8);
    let dir = TempDir::new("compaction-live");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, TOPIC, 2, &COMPACT);
    let partition_of = |k: u64| (k % 2) as i32;

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (addr, outcomes, stop) = (addr.clone(), outcomes.clone(), stop.clone());
        std::thread::spawn(move || {
            let producer = producer(&addr, &outcomes, &[("enable.idempotence", "true")]);
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                let k = version % KEYS;
                let key = format!("key{k}");
                // Every seventh write of a key is a tombstone.
                let value =
                    (version % 7 != 0).then(|| format!("{key}@{version}-{}", "y".repeat(60)));
                send(
                    &producer,
                    TOPIC,
                    partition_of(k),
                    &key,
                    value.as_deref(),
                    version,
                );
                // About 10,000 writes a second: the cleaner always has work.
                if version % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    };
    let passes = Arc::new(Mutex::new(Vec::<Pass>::new()));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (addr, outcomes, stop, passes) =
                (addr.clone(), outcomes.clone(), stop.clone(), passes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let acked_before = newest_versions(&outcomes.lock().unwrap().acked);
                    let (ends, records) = read_pass(&addr, TOPIC, 2);
                    assert_offsets_increase(&records, "a reader during cleaning");
                    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                    for r in &records {
                        let key = r.key.clone().unwrap();
                        let version = r.version.expect("every record carries its version");
                        if let Some(&before) = seen.get(&key) {
                            assert!(
                                version > before,
                                "{key}: version {version} read after {before}"
                            );
                        }
                        seen.insert(key, version);
                    }
                    passes.lock().unwrap().push(Pass {
                        ends,
                        acked_before,
                        seen,
                    });
                }
            })
        })
        .collect();
    std::thread::sleep(PRODUCE_FOR);
    // The readers read while the cleaner worked.
    let admin = broker.admin_addr();
    for p in 0..2 {
        let runs = metric(&admin, "runnel_cleaner_runs_total", TOPIC, p).unwrap();
        assert!(
            runs >= 2.0,
            "partition {p}: {runs} cleaner passes while reading"
        );
    }
    stop.store(true, Ordering::SeqCst);
    producing.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(outcomes.failed.is_empty(), "refused: {:?}", outcomes.failed);
    let writes = outcomes.acked;
    let passes = passes.lock().unwrap();
    assert!(passes.len() >= 4, "only {} passes", passes.len());
    for (i, pass) in passes.iter().enumerate() {
        for (key, &acked) in &pass.acked_before {
            let seen = pass.seen.get(key).copied().unwrap_or(0);
            if seen >= acked {
                continue;
            }
            let p = writes
                .iter()
                .find(|w| w.key.as_deref() == Some(key))
                .unwrap()
                .partition;
            let superseded_beyond = writes
                .iter()
                .any(|w| w.key.as_deref() == Some(key) && w.offset >= pass.ends[p as usize]);
            assert!(
                superseded_beyond,
                "pass {i}: {key} read at version {seen} though {acked} was acknowledged before \
                 the pass and nothing newer lies past its end {:?}",
                pass.ends
            );
        }
    }
    eprintln!("{} writes, {} passes checked", writes.len(), passes.len());

    // The final state: roll the active segment away, let the cleaner finish.
    let last: BTreeMap<String, &Rec> = writes.iter().map(|w| (w.key.clone().unwrap(), w)).collect();
    produce_all(&addr, TOPIC, &filler("end", 2, 60));
    let records = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    let read: BTreeMap<String, &Rec> = records
        .iter()
        .filter(|r| !is_filler(r.key.as_deref().unwrap()))
        .map(|r| (r.key.clone().unwrap(), r))
        .collect();
    assert_eq!(read.len(), last.len(), "every key written is there once");
    for (key, written) in &last {
        let r = read[key];
        assert_eq!(
            (r.version, &r.value),
            (written.version, &written.value),
            "{key}: the last write"
        );
    }
}

/// Per key, the newest version among `acked`.
fn newest_versions(acked: &[Rec]) -> BTreeMap<String, u64> {
    let mut newest = BTreeMap::new();
    for r in acked {
        let v = newest.entry(r.key.clone().unwrap()).or_insert(0);
        *v = (*v).max(r.version.unwrap());
    }
    newest
}

/// One pass over the log: the high watermarks found first, and every record below them.
fn read_pass(addr: &str, topic: &str, partitions: i32) -> (Vec<i64>, Vec<Rec>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "compaction-live-reader")
        .create()
        .unwrap();
    let ends: Vec<i64> = (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    drop(consumer);
    let records = read_all(addr, topic, partitions)
        .into_iter()
        .filter(|r| r.offset < ends[r.partition as usize])
        .collect();
    (ends, records)
}

#[test]
fn group_commits_keep_the_offsets_topic_small_and_survive_a_restart() {
    const GROUPS: usize = 3;
    const COMMITS: i64 = 5000;
    const PARTITIONS: i32 = 4;
    let dir = TempDir::new("compaction-offsets");
    let config = format!(
        "{FAST}[groups]\noffsets_topic_num_partitions = 3\noffsets_topic_segment_bytes = 16384\n\
         [topic_defaults]\n\"min.cleanable.dirty.ratio\" = \"0.01\"\n"
    );
    let mut broker = start(&dir, &config);
    let addr = broker.addr.to_string();
    create_topic(&addr, "tracked", PARTITIONS, &[]);

    let commit_loop = |group: String| {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            for n in 1..=COMMITS {
                let mut offsets = TopicPartitionList::new();
                for p in 0..PARTITIONS {
                    offsets
                        .add_partition_offset("tracked", p, Offset::Offset(n * 10 + i64::from(p)))
                        .unwrap();
                }
                consumer.commit(&offsets, CommitMode::Sync).unwrap();
            }
        })
    };
    let data = dir.path().join("data");
    let committers: Vec<_> = (0..GROUPS)
        .map(|g| commit_loop(format!("group-{g}")))
        .collect();
    // The topic's size while the commits pour in: the cleaner keeps up.
    let mut largest = 0;
    while committers.iter().any(|c| !c.is_finished()) {
        largest = largest.max(topic_log_bytes(&data, "__consumer_offsets"));
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in committers {
        c.join().unwrap();
    }
    let described = describe(&addr, "__consumer_offsets");
    for (name, value) in [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "16384"),
        ("compression.type", "producer"),
    ] {
        assert_eq!(described[name].as_deref(), Some(value), "{name}");
    }

    // Each commit wrote PARTITIONS records of some 60 bytes or more: megabytes uncompacted.
    let written = GROUPS as u64 * COMMITS as u64 * PARTITIONS as u64 * 60;
    // Three partitions of 16 KiB segments: the active ones and a few cleaned ones.
    let bound = 128 << 10;
    assert!(
        largest < 8 * bound,
        "__consumer_offsets grew to {largest} bytes during the commits"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = topic_log_bytes(&data, "__consumer_offsets");
        if size < bound {
            eprintln!(
                "__consumer_offsets: {size} bytes (at most {largest} during the commits) for \
                 over {written} written"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets holds {size} bytes after {} commits",
            GROUPS as i64 * COMMITS
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(written > 16 * bound, "the test writes enough to tell");

    // The groups' offsets are loaded again from the compacted log.
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();
    let broker = start_at(&dir, &config, Some(&addr));
    for g in 0..GROUPS {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.addr.to_string())
            .set("group.id", format!("group-{g}"))
            .create()
            .unwrap();
        let mut wanted = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            wanted.add_partition("tracked", p);
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(30))
            .unwrap();
        for p in 0..PARTITIONS {
            assert_eq!(
                committed.find_partition("tracked", p).unwrap().offset(),
                Offset::Offset(COMMITS * 10 + i64::from(p)),
                "group-{g} partition {p}"
            );
        }
    }
}

#[test]
fn an_offsets_topic_made_before_compaction_is_compacted_from_the_next_start() {
    let dir = TempDir::new("compaction-offsets-upgrade");
    let mut broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, "t", 1, &[]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "old-group")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("t", 0, Offset::Offset(42))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(consumer);
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();

    // What Runnel before compaction stored for it: keep everything, no cleanup.policy.
    let registry = dir.path().join("data/topics.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    let old = text
        .replace(
            "\"cleanup.policy\" = \"compact\"\n",
            "\"retention.ms\" = \"-1\"\n",
        )
        .replace("\"compression.type\" = \"producer\"\n", "");
    assert!(old != text && !old.contains("compact"), "{text}");
    std::fs::write(&registry, old).unwrap();

    let mut broker = start_at(&dir, FAST, Some(&addr));
    broker
        .wait_for_log("compacted from now on", Duration::from_secs(10))
        .unwrap();
    let described = describe(&addr, "__consumer_offsets");
    assert_eq!(described["cleanup.policy"].as_deref(), Some("compact"));
    assert_eq!(described["compression.type"].as_deref(), Some("producer"));
    assert_eq!(described["segment.bytes"].as_deref(), Some("104857600"));
    assert_eq!(
        described["retention.ms"].as_deref(),
        Some("604800000"),
        "the stand-in for compaction is gone (the default shows)"
    );
    let saved = std::fs::read_to_string(&registry).unwrap();
    assert!(
        saved.contains("\"cleanup.policy\" = \"compact\""),
        "{saved}"
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "old-group")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("t", 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        committed.find_partition("t", 0).unwrap().offset(),
        Offset::Offset(42)
    );
}

/// SIGKILL while the cleaner works (a tiny backoff and a steady stream of overwrites keep it
/// busy), at irregular moments, then restart: every time the log must open and, once the
/// producer stops and a last pass runs, hold each key once, at its newest acknowledged
/// version or a newer one the producer sent; then `runnelctl log verify` finds no damage.
#[test]
fn sigkills_while_cleaning_lose_no_acknowledged_key() {
    const TOPIC: &str = "killed-compact";
    const KEYS: u64 = 1000;
    const KILLS: usize = 8;
    // The cleaner looks for work every 10 ms: it is cleaning most of the time.
    const BUSY: &str = "log_cleaner_backoff_ms = 10\n";
    let dir = TempDir::new("compaction-kills");
    let mut broker = start(&dir, BUSY);
    let addr = broker.addr.to_string();
    create_topic(&addr, TOPIC, 2, &COMPACT);

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (addr, outcomes, stop, sent) =
            (addr.clone(), outcomes.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            // One request in flight per partition: a retry after a kill can repeat a batch,
            // never reorder two.
            let producer = producer(
                &addr,
                &outcomes,
                &[
                    ("max.in.flight.requests.per.connection", "1"),
                    ("reconnect.backoff.ms", "20"),
                    ("reconnect.backoff.max.ms", "200"),
                ],
            );
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                let k = version % KEYS;
                let key = format!("key{k}");
                let value = format!("{key}@{version}-{}", "z".repeat(150));
                send(
                    &producer,
                    TOPIC,
                    (k % 2) as i32,
                    &key,
                    Some(&value),
                    version,
                );
                sent.store(version as usize, Ordering::SeqCst);
                if version % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    };
    let mut runs = 0.0;
    for round in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 7919) % 500));
        let admin = broker.admin_addr();
        runs += (0..2)
            .filter_map(|p| metric(&admin, "runnel_cleaner_runs_total", TOPIC, p))
            .sum::<f64>();
        broker.signal(libc::SIGKILL);
        broker.wait_exit(Duration::from_secs(10)).unwrap();
        broker = start_at(&dir, BUSY, Some(&addr));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    producing.join().unwrap();
    let sent = sent.load(Ordering::SeqCst) as u64;
    assert!(
        runs >= KILLS as f64,
        "the cleaner ran only {runs} passes between the kills"
    );

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked = newest_versions(&outcomes.acked);
    assert!(
        acked.len() as u64 == KEYS,
        "{} keys acknowledged",
        acked.len()
    );
    eprintln!(
        "{KILLS} kills, {sent} sent, {} acknowledged, {runs} cleaner passes before the kills",
        outcomes.acked.len()
    );
    produce_all(&addr, TOPIC, &filler("end", 2, 120));
    let records = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    assert_offsets_increase(&records, "after the kills");
    let mut found = 0;
    for r in records
        .iter()
        .filter(|r| !is_filler(r.key.as_deref().unwrap()))
    {
        let key = r.key.clone().unwrap();
        let version = r.version.unwrap();
        assert!(
            version >= acked[&key] && version <= sent,
            "{key}: version {version} read; {} acknowledged, {sent} sent",
            acked[&key]
        );
        assert!(
            r.value
                .as_deref()
                .is_some_and(|v| v.starts_with(&format!("{key}@{version}-"))),
            "{key}: value {:?} for version {version}",
            r.value
        );
        found += 1;
    }
    assert_eq!(found, KEYS, "every key once");

    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();
    let data = dir.path().join("data");
    let verify = runnelctl::command()
        .args(["log", "verify", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "runnelctl log verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
