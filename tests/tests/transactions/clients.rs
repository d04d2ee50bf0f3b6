//! Transactions (KIP-98) with librdkafka as the client: commits and aborts seen through
//! read_committed and read_uncommitted, an open transaction holding read_committed readers at
//! its first offset, a second producer with the same transactional id fencing the first, a
//! hanging transaction aborted at its timeout, and a consume-transform-produce loop that
//! copies every input record exactly once while the broker is SIGKILLed and restarted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::create;
use runnel_tests::{backends_under_test, Broker, TempDir};

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional_producer(
    bootstrap: &str,
    transactional_id: &str,
    extra: &[(&str, &str)],
) -> BaseProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("linger.ms", "2");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer
}

/// Sends `values` to `topic` (partition = index % partitions) and waits for them to be
/// acknowledged (inside the open transaction).
fn send_all(producer: &BaseProducer, topic: &str, partitions: i32, values: &[String]) {
    for (i, value) in values.iter().enumerate() {
        let partition = i as i32 % partitions;
        let record = BaseRecord::to(topic)
            .payload(value)
            .key("k")
            .partition(partition);
        producer.send(record).unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

fn values(tag: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{tag}-{i:04}")).collect()
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-tests-unused")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap()
}

/// Everything `isolation` lets a reader see of `topic` from the start, by partition, read
/// until nothing new arrives for `quiet`.
fn read_all(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partitions: i32,
    quiet: Duration,
) -> BTreeMap<i32, Vec<String>> {
    let consumer = reader(bootstrap, isolation);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut last_new = Instant::now();
    while last_new.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let value = String::from_utf8(message.payload().unwrap_or_default().to_vec());
                seen.entry(message.partition())
                    .or_default()
                    .push(value.unwrap());
                last_new = Instant::now();
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    seen
}

fn flat(seen: &BTreeMap<i32, Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = seen.values().flatten().cloned().collect();
    all.sort();
    all
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, topic, partitions, &[], false).0, 0);
}

#[test]
fn read_committed_sees_only_committed_records_in_order() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("txn-isolation-{backend}"));
        let broker = Broker::start_in(&dir, backend, &[]);
        let bootstrap = broker.addr.to_string();
        create_topic(&broker, "txn-out", 2);
        let producer = transactional_producer(&bootstrap, "isolation", &[]);

        producer.begin_transaction().unwrap();
        send_all(&producer, "txn-out", 2, &values("first", 10));
        producer.commit_transaction(TIMEOUT).unwrap();
        producer.begin_transaction().unwrap();
        send_all(&producer, "txn-out", 2, &values("aborted", 10));
        producer.abort_transaction(TIMEOUT).unwrap();
        producer.begin_transaction().unwrap();
        send_all(&producer, "txn-out", 2, &values("second", 10));
        producer.commit_transaction(TIMEOUT).unwrap();

        let quiet = Duration::from_secs(2);
        let committed = read_all(&bootstrap, "read_committed", "txn-out", 2, quiet);
        for (partition, seen) in &committed {
            // Each partition gets every other record, in the order sent.
            let expected: Vec<String> = values("first", 10)
                .into_iter()
                .chain(values("second", 10))
                .enumerate()
                .filter(|(i, _)| (i % 10) as i32 % 2 == *partition)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(seen, &expected, "{backend}: partition {partition}");
        }
        assert_eq!(committed.len(), 2, "{backend}");
        let everything = read_all(&bootstrap, "read_uncommitted", "txn-out", 2, quiet);
        let mut expected: Vec<String> = ["first", "aborted", "second"]
            .iter()
            .flat_map(|tag| values(tag, 10))
            .collect();
        expected.sort();
        assert_eq!(flat(&everything), expected, "{backend}");

        // An open transaction holds read_committed readers at its first offset: a plain
        // record written after it is not readable either until the transaction ends.
        producer.begin_transaction().unwrap();
        send_all(&producer, "txn-out", 1, &values("open", 3));
        let plain: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        plain
            .send(
                BaseRecord::to("txn-out")
                    .payload("plain")
                    .key("k")
                    .partition(0),
            )
            .unwrap();
        plain.flush(TIMEOUT).unwrap();
        let during = read_all(&bootstrap, "read_committed", "txn-out", 1, quiet);
        assert_eq!(during[&0].len(), 10, "{backend}: {during:?}");
        let uncommitted = read_all(&bootstrap, "read_uncommitted", "txn-out", 1, quiet);
        assert_eq!(uncommitted[&0].len(), 19, "{backend}");
        producer.commit_transaction(TIMEOUT).unwrap();
        let after = read_all(&bootstrap, "read_committed", "txn-out", 1, quiet);
        assert_eq!(
            &after[&0][10..],
            &["open-0000", "open-0001", "open-0002", "plain"],
            "{backend}"
        );
    }
}

/// The error a fenced producer's transaction call gets: fatal.
fn assert_fenced(result: Result<(), KafkaError>, what: &str) {
    match result {
        Err(KafkaError::Transaction(e)) => assert!(e.is_fatal(), "{what}: {e} is not fatal"),
        other => panic!("{what}: expected a fatal transaction error, got {other:?}"),
    }
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first() {
    let dir = TempDir::new("txn-fencing");
    let broker = Broker::start_in(&dir, "auto", &[]);
    let bootstrap = broker.addr.to_string();
    create_topic(&broker, "fenced", 1);
    let zombie = transactional_producer(&bootstrap, "fence-me", &[]);
    zombie.begin_transaction().unwrap();
    send_all(&zombie, "fenced", 1, &values("zombie", 5));

    // The new instance's InitProducerId aborts the zombie's open transaction.
    let successor = transactional_producer(&bootstrap, "fence-me", &[]);
    assert_fenced(zombie.commit_transaction(TIMEOUT), "the zombie's commit");

    successor.begin_transaction().unwrap();
    send_all(&successor, "fenced", 1, &values("successor", 5));
    successor.commit_transaction(TIMEOUT).unwrap();
    let seen = read_all(
        &bootstrap,
        "read_committed",
        "fenced",
        1,
        Duration::from_secs(2),
    );
    assert_eq!(seen[&0], values("successor", 5));
}

#[test]
fn a_hanging_transaction_is_aborted_at_its_timeout() {
    let dir = TempDir::new("txn-timeout");
    let config = dir.path().join("runnel.toml");
    std::fs::write(
        &config,
        "[transactions]\nabort_timed_out_interval_ms = 200\n",
    )
    .unwrap();
    let broker = Broker::start_in(&dir, "auto", &["--config", config.to_str().unwrap()]);
    let bootstrap = broker.addr.to_string();
    create_topic(&broker, "hanging", 1);
    let hanging =
        transactional_producer(&bootstrap, "hangs", &[("transaction.timeout.ms", "1500")]);
    hanging.begin_transaction().unwrap();
    send_all(&hanging, "hanging", 1, &values("hung", 5));
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    plain
        .send(
            BaseRecord::to("hanging")
                .payload("after")
                .key("k")
                .partition(0),
        )
        .unwrap();
    plain.flush(TIMEOUT).unwrap();

    // Once the coordinator aborts it, read_committed readers get past it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = read_all(
            &bootstrap,
            "read_committed",
            "hanging",
            1,
            Duration::from_secs(1),
        );
        if seen.get(&0).is_some_and(|v| v == &["after"]) {
            break;
        }
        assert!(seen.is_empty(), "only the plain record may show: {seen:?}");
        assert!(
            Instant::now() < deadline,
            "the transaction was never aborted"
        );
    }
    // Its producer was fenced by the abort's epoch bump.
    let result = hanging.commit_transaction(Timeout::After(TIMEOUT));
    assert!(result.is_err(), "a timed-out transaction committed");
}

const INPUT: &str = "ctp-in";
const OUTPUT: &str = "ctp-out";
const INPUT_RECORDS: usize = 3000;

/// One consume-transform-produce worker: a read_committed consumer in a group and a
/// transactional producer that writes each input record's copy and the consumer's offsets in
/// one transaction.
struct Copier {
    consumer: BaseConsumer,
    producer: BaseProducer,
}

impl Copier {
    fn start(bootstrap: &str) -> Result<Copier, KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "copier")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "6000")
            .create()?;
        consumer.subscribe(&[INPUT])?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("transactional.id", "copier-txn")
            .set("transaction.timeout.ms", "10000")
            .set("linger.ms", "2")
            .create()?;
        producer.init_transactions(TIMEOUT)?;
        Ok(Copier { consumer, producer })
    }

    /// Copies what one poll round brings (up to 100 records) in one transaction. Returns how
    /// many records the committed transaction copied.
    fn copy_round(&self) -> Result<usize, KafkaError> {
        let mut batch = Vec::new();
        let until = Instant::now() + Duration::from_millis(200);
        while batch.len() < 100 && Instant::now() < until {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(message)) => {
                    let value = message.payload().unwrap_or_default().to_vec();
                    batch.push((message.partition(), message.offset(), value));
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        self.producer.begin_transaction()?;
        for (partition, _, value) in &batch {
            let copy = [b"copy-".as_slice(), value].concat();
            let record = BaseRecord::to(OUTPUT)
                .payload(&copy)
                .key("k")
                .partition(*partition);
            self.producer.send(record).map_err(|(e, _)| e)?;
        }
        let mut offsets = TopicPartitionList::new();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset, _) in &batch {
            next.insert(*partition, offset + 1);
        }
        for (partition, offset) in next {
            offsets.add_partition_offset(INPUT, partition, Offset::Offset(offset))?;
        }
        let group = self.consumer.group_metadata().expect("a group consumer");
        self.producer
            .send_offsets_to_transaction(&offsets, &group, TIMEOUT)?;
        self.producer.commit_transaction(TIMEOUT)?;
        Ok(batch.len())
    }

    /// After an aborted transaction: the consumer goes back to the committed offsets, so the
    /// aborted records are copied again.
    fn rewind(&self) -> Result<(), KafkaError> {
        let committed = self.consumer.committed(TIMEOUT)?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            self.consumer
                .seek(element.topic(), element.partition(), offset, TIMEOUT)?;
        }
        Ok(())
    }
}

/// Runs copiers until every input record is copied or `deadline`; a copier that fails is
/// replaced (an abortable error is aborted and the consumer rewound first).
fn copy_everything(bootstrap: String, deadline: Instant) -> usize {
    let mut copier: Option<Copier> = None;
    let mut copied = 0;
    let mut restarts = 0;
    while copied < INPUT_RECORDS && Instant::now() < deadline {
        let Some(current) = copier.as_ref() else {
            match Copier::start(&bootstrap) {
                Ok(c) => copier = Some(c),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
            continue;
        };
        match current.copy_round() {
            Ok(n) => copied += n,
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                let recovered = current
                    .producer
                    .abort_transaction(TIMEOUT)
                    .and_then(|()| current.rewind());
                if recovered.is_err() {
                    copier = None;
                    restarts += 1;
                }
            }
            Err(_) => {
                // Fatal, or the broker went away mid-call: start over from the committed
                // offsets with a new producer instance (it fences the old one).
                copier = None;
                restarts += 1;
            }
        }
    }
    eprintln!("copier: {copied} records copied in committed transactions, {restarts} restarts");
    copied
}

#[test]
fn consume_transform_produce_copies_every_record_once_through_sigkills() {
    let backend = "auto";
    let dir = TempDir::new("txn-ctp");
    let mut broker = Broker::start_in(&dir, backend, &[]);
    let addr = broker.addr.to_string();
    create_topic(&broker, INPUT, 2);
    create_topic(&broker, OUTPUT, 2);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..INPUT_RECORDS {
        let value = format!("in-{i:05}");
        let record = BaseRecord::to(INPUT)
            .payload(&value)
            .key("k")
            .partition((i % 2) as i32);
        plain.send(record).unwrap();
        plain.poll(Duration::ZERO);
    }
    plain.flush(TIMEOUT).unwrap();
    drop(plain);

    let deadline = Instant::now() + Duration::from_secs(240);
    let copying = {
        let addr = addr.clone();
        std::thread::spawn(move || copy_everything(addr, deadline))
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(2500));
        broker.signal(libc::SIGKILL);
        broker.wait_exit(Duration::from_secs(10)).unwrap();
        broker = Broker::start_in(&dir, backend, &["--listen", &addr]);
    }
    copying.join().unwrap();

    let seen = read_all(&addr, "read_committed", OUTPUT, 2, Duration::from_secs(3));
    let mut expected: Vec<String> = (0..INPUT_RECORDS)
        .map(|i| format!("copy-in-{i:05}"))
        .collect();
    expected.sort();
    let copies = flat(&seen);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for copy in &copies {
        *counts.entry(copy.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "copied more than once: {repeated:?}");
    assert_eq!(
        copies.len(),
        INPUT_RECORDS,
        "every input record copied once"
    );
    assert_eq!(copies, expected);
}
