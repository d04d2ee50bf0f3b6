//! The real broker driven by librdkafka (the `rdkafka` crate), the reference Kafka client, on
//! every backend: admin round trips, every acks value and compression codec, consuming from
//! earliest / latest / an offset / a timestamp, keys and headers, 1000 partitions, a 10 MiB
//! message, and reading everything back after a restart.

use std::time::{Duration, Instant};

use futures_executor::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel_tests::{backends_under_test, Broker, TempDir};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A record as the test sends it and expects it back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

fn start(dir: &TempDir, backend: &str) -> Broker {
    Broker::start_in(dir, backend, &[])
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
    assert!(results[0].is_ok(), "create {name}: {results:?}");
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rdkafka-tests-unused")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "16777216")
        .set("receive.message.max.bytes", "67108864")
        .create()
        .unwrap()
}

fn records(tag: &str, count: usize, first_timestamp: i64) -> Vec<Sent> {
    (0..count)
        .map(|i| Sent {
            key: format!("{tag}-key-{i}").into_bytes(),
            value: format!("{tag}-value-{i}").into_bytes(),
            headers: vec![
                ("tag".into(), tag.as_bytes().to_vec()),
                ("i".into(), i.to_string().into_bytes()),
            ],
            timestamp: first_timestamp + i as i64,
        })
        .collect()
}

fn produce(producer: &BaseProducer, topic: &str, partition: i32, sent: &[Sent]) {
    for record in sent {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut pending = BaseRecord::to(topic)
            .partition(partition)
            .key(&record.key)
            .payload(&record.value)
            .headers(headers)
            .timestamp(record.timestamp);
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((_, rejected)) => {
                    producer.poll(Duration::from_millis(10));
                    pending = rejected;
                }
            }
        }
    }
    producer.flush(TIMEOUT).unwrap();
}

/// Consumes `count` records of one partition starting at `offset`.
fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: Offset,
    count: usize,
) -> Vec<Sent> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, offset)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < count && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        got.push(Sent {
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
        });
    }
    got
}

#[test]
fn admin_create_describe_alter_grow_delete() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("rdkafka-admin-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        let admin = admin(&bootstrap);
        create_topic(&admin, "admin-topic", 3, &[("retention.ms", "86400000")]);

        let spec = ResourceSpecifier::Topic("admin-topic");
        let described = block_on(admin.describe_configs([&spec], &AdminOptions::new())).unwrap();
        let config = described[0].as_ref().unwrap();
        assert_eq!(
            config.get("retention.ms").unwrap().value.as_deref(),
            Some("86400000")
        );
        assert_eq!(
            config.get("segment.bytes").unwrap().value.as_deref(),
            Some("1073741824")
        );

        let alter = AlterConfig::new(ResourceSpecifier::Topic("admin-topic"))
            .set("retention.bytes", "5000000");
        let altered = block_on(admin.alter_configs([&alter], &AdminOptions::new())).unwrap();
        assert!(altered[0].is_ok(), "{altered:?}");
        let described = block_on(admin.describe_configs([&spec], &AdminOptions::new())).unwrap();
        assert_eq!(
            described[0]
                .as_ref()
                .unwrap()
                .get("retention.bytes")
                .unwrap()
                .value
                .as_deref(),
            Some("5000000")
        );

        let grown = block_on(admin.create_partitions(
            [&NewPartitions::new("admin-topic", 5)],
            &AdminOptions::new(),
        ))
        .unwrap();
        assert!(grown[0].is_ok(), "{grown:?}");
        let probe = consumer(&bootstrap);
        let metadata = probe.fetch_metadata(Some("admin-topic"), TIMEOUT).unwrap();
        assert_eq!(metadata.topics()[0].partitions().len(), 5);
        assert_eq!(metadata.brokers().len(), 1);

        let again = NewTopic::new("admin-topic", 1, TopicReplication::Fixed(1));
        let refused = block_on(admin.create_topics([&again], &AdminOptions::new())).unwrap();
        assert!(refused[0].is_err(), "a second create is refused");

        let deleted =
            block_on(admin.delete_topics(&["admin-topic"], &AdminOptions::new())).unwrap();
        assert!(deleted[0].is_ok(), "{deleted:?}");
        let metadata = probe.fetch_metadata(None, TIMEOUT).unwrap();
        assert!(metadata.topics().iter().all(|t| t.name() != "admin-topic"));
    }
}

#[test]
fn every_acks_and_codec_round_trips_keys_and_headers() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("rdkafka-codecs-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        let admin = admin(&bootstrap);
        let consumer = consumer(&bootstrap);
        for acks in ["0", "1", "all"] {
            for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
                let topic = format!("acks{acks}-{codec}");
                create_topic(&admin, &topic, 1, &[]);
                let producer = producer(&bootstrap, &[("acks", acks), ("compression.type", codec)]);
                let sent = records(&topic, 100, 1_700_000_000_000);
                produce(&producer, &topic, 0, &sent);
                let got = consume(&consumer, &topic, 0, Offset::Beginning, sent.len());
                assert_eq!(got, sent, "acks={acks} compression={codec}");
            }
        }
    }
}

#[test]
fn consume_from_earliest_latest_offset_and_timestamp() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("rdkafka-positions-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        create_topic(&admin(&bootstrap), "positions", 2, &[]);
        let producer = producer(&bootstrap, &[]);
        let first = records("first", 50, 1_000_000);
        produce(&producer, "positions", 1, &first);
        let consumer = consumer(&bootstrap);

        assert_eq!(
            consume(&consumer, "positions", 1, Offset::Beginning, 50),
            first
        );
        assert_eq!(
            consume(&consumer, "positions", 1, Offset::Offset(25), 25),
            first[25..]
        );
        assert_eq!(
            consumer.fetch_watermarks("positions", 1, TIMEOUT).unwrap(),
            (0, 50)
        );

        let mut by_time = TopicPartitionList::new();
        by_time
            .add_partition_offset("positions", 1, Offset::Offset(1_000_030))
            .unwrap();
        let found = consumer.offsets_for_times(by_time, TIMEOUT).unwrap();
        assert_eq!(found.elements()[0].offset(), Offset::Offset(30));

        // From the end: only what is produced afterwards arrives.
        let mut at_end = TopicPartitionList::new();
        at_end
            .add_partition_offset("positions", 1, Offset::End)
            .unwrap();
        // A consumer that reports reaching the end: the records are produced only once it
        // stands there (its position resolved and validated against the leader epoch, a few
        // round trips that a loaded machine can stretch past any fixed wait).
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "rdkafka-tests-unused")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        consumer.assign(&at_end).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(1))) => break,
                Some(Ok(message)) => panic!("read offset {} from the end", message.offset()),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the consumer never reached the end"
            );
        }
        let later = records("later", 10, 2_000_000);
        produce(&producer, "positions", 1, &later);
        let mut got = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while got.len() < 10 && Instant::now() < deadline {
            // (Reaching the end again between fetches is reported too: skipped.)
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                got.push(message.payload().unwrap().to_vec());
            }
        }
        let expected: Vec<Vec<u8>> = later.iter().map(|r| r.value.clone()).collect();
        assert_eq!(got, expected);
    }
}

#[test]
fn thousand_partitions_a_10mib_message_and_a_restart() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("rdkafka-scale-{backend}"));
        let mut broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        let admin = admin(&bootstrap);
        create_topic(&admin, "many", 1000, &[]);
        create_topic(&admin, "big", 1, &[("max.message.bytes", "16777216")]);
        let producer = producer(&bootstrap, &[("message.max.bytes", "16777216")]);
        let per_partition: Vec<Vec<Sent>> = (0..1000)
            .map(|p| records(&format!("p{p}"), 2, 5_000))
            .collect();
        for (p, sent) in per_partition.iter().enumerate() {
            for record in sent {
                producer
                    .send(
                        BaseRecord::to("many")
                            .partition(p as i32)
                            .key(&record.key)
                            .payload(&record.value)
                            .timestamp(record.timestamp),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(TIMEOUT).unwrap();
        let big: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
        producer
            .send(BaseRecord::to("big").partition(0).key("big").payload(&big))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(TIMEOUT).unwrap();

        let check = |bootstrap: &str| {
            let consumer = consumer(bootstrap);
            let mut assignment = TopicPartitionList::new();
            for p in 0..1000 {
                assignment
                    .add_partition_offset("many", p, Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&assignment).unwrap();
            let mut counts = vec![0usize; 1000];
            let deadline = Instant::now() + TIMEOUT;
            while counts.iter().sum::<usize>() < 2000 && Instant::now() < deadline {
                let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let message = message.unwrap();
                let p = message.partition() as usize;
                assert_eq!(
                    message.payload().unwrap(),
                    &per_partition[p][counts[p]].value[..]
                );
                counts[p] += 1;
            }
            assert!(
                counts.iter().all(|&c| c == 2),
                "every partition's records arrived"
            );
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset("big", 0, Offset::Beginning)
                .unwrap();
            consumer.assign(&assignment).unwrap();
            let deadline = Instant::now() + TIMEOUT;
            loop {
                assert!(Instant::now() < deadline, "the 10 MiB message arrived");
                if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                    assert!(
                        message.unwrap().payload().unwrap() == &big[..],
                        "10 MiB intact"
                    );
                    break;
                }
            }
        };
        check(&bootstrap);

        broker.signal(libc::SIGTERM);
        assert!(broker.wait_exit(TIMEOUT).unwrap().success());
        let broker = start(&dir, backend);
        check(&broker.addr.to_string());
    }
}
