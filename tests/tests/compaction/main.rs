//! Log compaction (`cleanup.policy=compact`) against the real broker, with real clients
//! (librdkafka through the `rdkafka` crate, kafka-python from `.venv`):
//!
//! - keyed overwrites and tombstones compact to each key's newest record, with gaps in the
//!   offsets that both clients read through; tombstones stay for `delete.retention.ms`, then a
//!   later pass removes them; the log shrinks on disk; `/metrics` reports the cleaner;
//! - records without a key are refused (INVALID_RECORD) and DeleteRecords too
//!   (POLICY_VIOLATION) on a compact-only topic;
//! - consumers reading while the cleaner runs see a consistent log (defined in readers.rs);
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

/// Per key, the newest version among `acked`.
fn newest_versions(acked: &[Rec]) -> BTreeMap<String, u64> {
    let mut newest = BTreeMap::new();
    for r in acked {
        let v = newest.entry(r.key.clone().unwrap()).or_insert(0);
        *v = (*v).max(r.version.unwrap());
    }
    newest
}

mod kills;
mod offsets_topic;
mod overwrites;
mod readers;
mod refusals;
