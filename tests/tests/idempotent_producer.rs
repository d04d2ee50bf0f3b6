//! Idempotent producers against the real broker: the sequence rules answered with Kafka's
//! codes over the wire, retries recognised across clean restarts and SIGKILL, producer ids
//! that never repeat, and librdkafka with `enable.idempotence=true` delivering every message
//! exactly once and in order while a proxy swallows acknowledgements, cuts its connections
//! and the broker is killed and restarted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use runnel_engine::log::batch;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::proxy::Proxy;
use runnel_tests::requests::{self, list_offset, produce};
use runnel_tests::{backends_under_test, Broker, TempDir};

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_PRODUCER_ID: i16 = 59;
const INVALID_RECORD: i16 = 87;
const TOPIC: &str = "idem";

fn init_producer_id(conn: &mut KafkaConn) -> (i64, i16) {
    let mut request = InitProducerIdRequest::default();
    request.transaction_timeout_ms = 60_000;
    request.producer_id = kafka_protocol::messages::ProducerId(-1);
    request.producer_epoch = -1;
    request.transactional_id = None;
    for _ in 0..1_000 {
        let response: InitProducerIdResponse =
            conn.call(ApiKey::InitProducerId, 4, &request).unwrap();
        // Retriable, as clients treat it: the broker is reserving the next block of ids.
        if response.error_code == COORDINATOR_LOAD_IN_PROGRESS {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        assert_eq!(response.error_code, 0);
        return (response.producer_id.0, response.producer_epoch);
    }
    panic!("no producer id after 1000 tries");
}

/// `count` records from producer `pid`, epoch `epoch`, first sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..count {
        builder.push(&Record {
            key: None,
            value: Some(format!("{pid}-{epoch}-{}", seq as usize + i).into_bytes()),
            headers: vec![],
            timestamp: 1_000,
        });
    }
    builder.build()
}

/// A one-record batch from `pid` with `attribute_bits` set (CRC fixed): 0x20 marks a control
/// batch (what no client may write).
fn marked_batch(pid: i64, attribute_bits: u8) -> Vec<u8> {
    let mut bytes = batch(pid, 0, 0, 1);
    bytes[22] |= attribute_bits;
    let crc = batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn describe_producers(conn: &mut KafkaConn) -> Vec<(i64, i32, i32)> {
    let mut topic = TopicRequest::default();
    topic.name = requests::name(TOPIC);
    topic.partition_indexes = vec![0];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![topic];
    let response: DescribeProducersResponse =
        conn.call(ApiKey::DescribeProducers, 0, &request).unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut producers: Vec<_> = partition
        .active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.producer_epoch, p.last_sequence))
        .collect();
    producers.sort_unstable();
    producers
}

fn latest(conn: &mut KafkaConn) -> i64 {
    list_offset(conn, TOPIC, 0, -1).1
}

#[test]
fn sequence_rules_over_the_wire_and_across_restarts() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("idempotent-rules-{backend}"));
        let mut broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(requests::create(&mut conn, TOPIC, 1, &[], false).0, 0);
        let (pid, epoch) = init_producer_id(&mut conn);
        assert_eq!(epoch, 0);

        for (seq, offset) in [(0, 0), (2, 2), (4, 4)] {
            assert_eq!(
                produce(&mut conn, TOPIC, 0, -1, batch(pid, 0, seq, 2)),
                (0, offset)
            );
        }
        // Retries, by hand: their first offsets, nothing written.
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 0, 2, 2)),
            (0, 2)
        );
        assert_eq!(produce(&mut conn, TOPIC, 0, 1, batch(pid, 0, 0, 2)), (0, 0));
        assert_eq!(latest(&mut conn), 6);
        // A gap, an id the partition doesn't know mid-sequence, a control batch.
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 0, 10, 1)).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid + 1, 0, 3, 1)).0,
            UNKNOWN_PRODUCER_ID
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, marked_batch(pid + 2, 0x20)).0,
            INVALID_RECORD
        );
        assert_eq!(latest(&mut conn), 6, "refusals wrote nothing");
        // A new epoch starts at 0 and fences the old one.
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 0, 1)),
            (0, 6)
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 0, 6, 1)).0,
            INVALID_PRODUCER_EPOCH
        );
        assert_eq!(describe_producers(&mut conn), vec![(pid, 1, 0)]);

        // A clean restart loads the producer snapshot; SIGKILL makes the broker replay the log.
        drop(conn);
        broker.signal(libc::SIGTERM);
        assert!(broker.wait_exit(Duration::from_secs(15)).unwrap().success());
        let mut broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 0, 1)),
            (0, 6)
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 1, 3)),
            (0, 7)
        );
        drop(conn);
        broker.signal(libc::SIGKILL);
        broker.wait_exit(Duration::from_secs(15)).unwrap();
        let broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 1, 3)),
            (0, 7)
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 5, 1)).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert_eq!(
            produce(&mut conn, TOPIC, 0, -1, batch(pid, 1, 4, 1)),
            (0, 10)
        );
        assert_eq!(describe_producers(&mut conn), vec![(pid, 1, 4)]);
    }
}

#[test]
fn producer_ids_never_repeat_across_restarts() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("idempotent-ids");
    let mut broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    // More than a reserved block, so the reservation is extended while ids are handed out.
    let mut last = -1;
    for _ in 0..2_500 {
        let (id, epoch) = init_producer_id(&mut conn);
        assert!(id > last, "{id} after {last}");
        assert_eq!(epoch, 0);
        last = id;
    }
    drop(conn);
    broker.signal(libc::SIGKILL);
    broker.wait_exit(Duration::from_secs(15)).unwrap();
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let (id, _) = init_producer_id(&mut conn);
    assert!(id > last, "after a crash: {id} not past {last}");
}

/// Counts librdkafka's delivery reports.
#[derive(Default)]
struct DeliveryCounter {
    delivered: AtomicUsize,
    failed: AtomicUsize,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::SeqCst),
            Err((e, _)) => {
                eprintln!("delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

/// Starts the broker advertising the proxy's address, so every client connection passes
/// through the proxy.
fn start_behind(proxy: &Proxy, dir: &TempDir, backend: &str) -> Broker {
    let config = dir.path().join("advertise.toml");
    std::fs::write(
        &config,
        format!("advertised_listener = \"{}\"\n", proxy.addr),
    )
    .unwrap();
    let broker = Broker::start_in(dir, backend, &["--config", config.to_str().unwrap()]);
    proxy.set_target(broker.addr);
    broker
}

#[test]
fn librdkafka_delivers_exactly_once_through_lost_acks_cut_connections_and_a_kill() {
    const MESSAGES: usize = 60_000;
    let backend = backends_under_test()[0];
    let dir = TempDir::new("idempotent-rdkafka");
    let proxy = Proxy::start();
    let mut broker = start_behind(&proxy, &dir, backend);
    let bootstrap = proxy.addr.to_string();
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(requests::create(&mut conn, TOPIC, 1, &[], false).0, 0);
    drop(conn);

    let producer: BaseProducer<DeliveryCounter> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "200")
        .create_with_context(DeliveryCounter::default())
        .unwrap();
    let mut sent = 0;
    let mut faults = 0;
    // A fault each time another tenth of the messages has been queued.
    let mut next_fault = MESSAGES / 10;
    while sent < MESSAGES {
        // Paced: a bounded number outstanding, so requests are in flight whenever a fault
        // strikes, for the whole run.
        if producer.in_flight_count() < 2_000 {
            for _ in 0..100.min(MESSAGES - sent) {
                let value = sent.to_string();
                producer
                    .send(BaseRecord::<(), _>::to(TOPIC).partition(0).payload(&value))
                    .expect("the local queue has room");
                sent += 1;
            }
        }
        producer.poll(Duration::from_millis(1));
        // Lose the acknowledgements of whatever is in flight, then cut the connections: the
        // broker has appended batches the producer must resend.
        if sent >= next_fault && sent < MESSAGES {
            proxy.swallow_responses(true);
            std::thread::sleep(Duration::from_millis(80));
            proxy.cut_all();
            proxy.swallow_responses(false);
            faults += 1;
            if faults % 4 == 0 {
                // And now and then the broker itself dies with batches in flight.
                broker.signal(libc::SIGKILL);
                broker.wait_exit(Duration::from_secs(15)).unwrap();
                broker = start_behind(&proxy, &dir, backend);
            }
            next_fault += MESSAGES / 10;
        }
    }
    let flushed = producer.flush(Duration::from_secs(120));
    assert!(flushed.is_ok(), "producer flush: {flushed:?}");
    assert_eq!(faults, 9);
    let context = producer.context();
    assert_eq!(
        context.failed.load(Ordering::SeqCst),
        0,
        "deliveries failed"
    );
    assert_eq!(context.delivered.load(Ordering::SeqCst), MESSAGES);

    // Exactly once: the log holds as many records as were sent, and they read back in order.
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(latest(&mut conn), MESSAGES as i64, "records in the log");
    let seen = consume_all(&bootstrap, TOPIC, MESSAGES);
    let first_wrong = seen.iter().enumerate().position(|(i, &v)| v != i);
    assert!(
        seen.len() == MESSAGES && first_wrong.is_none(),
        "consumed {} messages, expected {MESSAGES} in order; first difference at {first_wrong:?}",
        seen.len()
    );
}

/// Sends `values` to partition 0 of `topic` and waits for every delivery report.
fn produce_all(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    values: std::ops::Range<usize>,
) {
    for i in values {
        let value = i.to_string();
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(0).payload(&value))
            .expect("the local queue has room");
    }
    producer.flush(Duration::from_secs(60)).expect("flushed");
}

/// Every value in partition 0 of `topic`, in order.
fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "idempotent-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < expected && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
            seen.push(value.parse::<usize>().unwrap());
        }
    }
    seen
}

/// A producer idle past `producer.id.expiration.ms` is forgotten by the partition; its next
/// batch (mid-sequence) gets UNKNOWN_PRODUCER_ID, and librdkafka recovers from it (a new
/// epoch, sequences from 0) without losing or repeating a message.
#[test]
fn librdkafka_recovers_when_the_partition_forgot_an_idle_producer() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("idempotent-expiry");
    let config = dir.path().join("expiry.toml");
    std::fs::write(
        &config,
        "producer_id_expiration_ms = 2000\nlog_retention_check_interval_ms = 100\n",
    )
    .unwrap();
    let broker = Broker::start_in(&dir, backend, &["--config", config.to_str().unwrap()]);
    let bootstrap = broker.addr.to_string();
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(requests::create(&mut conn, TOPIC, 1, &[], false).0, 0);
    let producer: BaseProducer<DeliveryCounter> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create_with_context(DeliveryCounter::default())
        .unwrap();
    produce_all(&producer, TOPIC, 0..100);
    let (pid, epoch, _) = describe_producers(&mut conn)[0];
    // Wait until the partition has forgotten the producer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !describe_producers(&mut conn).is_empty() {
        assert!(Instant::now() < deadline, "the producer never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    produce_all(&producer, TOPIC, 100..200);
    // The client started over (KIP-360: a bumped epoch, or a new id) with sequences from 0.
    let after = describe_producers(&mut conn);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        after[0].0 != pid || after[0].1 > epoch,
        "still the forgotten producer's epoch: {after:?}"
    );
    assert_eq!(after[0].2, 99, "{after:?}");
    let context = producer.context();
    assert_eq!(
        context.failed.load(Ordering::SeqCst),
        0,
        "deliveries failed"
    );
    assert_eq!(context.delivered.load(Ordering::SeqCst), 200);
    assert_eq!(
        consume_all(&bootstrap, TOPIC, 200),
        (0..200).collect::<Vec<_>>()
    );
}
