//! The broker's data path against the real binary, on every backend: CreateTopics, Produce
//! (each acks value), Fetch (long poll), ListOffsets, Metadata auto-creation, restart, and kcat
//! (librdkafka) producing and consuming with every compression codec.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchResponse, MetadataRequest, MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::batch;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{
    create, fetch, fetch_request, list_offset, name, produce, produce_request, records,
};
use runnel_tests::{backends_under_test, Broker, TempDir};

fn start(dir: &TempDir, backend: &str) -> Broker {
    Broker::start_in(dir, backend, &[])
}

fn stored(mut batch: Vec<u8>, base: i64) -> Vec<u8> {
    batch::set_base_offset(&mut batch, base);
    batch
}

#[test]
fn create_produce_fetch_list_offsets_and_restart() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("data-path-{backend}"));
        let mut broker = start(&dir, backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();

        // CreateTopics and its refusals.
        assert_eq!(
            create(&mut conn, "orders", 4, &[("retention.ms", "-1")], true).0,
            0
        );
        let mut metadata = MetadataRequest::default();
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(name("orders"));
        metadata.topics = Some(vec![wanted]);
        metadata.allow_auto_topic_creation = false;
        let described: MetadataResponse = conn.call(ApiKey::Metadata, 12, &metadata).unwrap();
        assert_eq!(
            described.topics[0].error_code, 3,
            "validate_only created nothing"
        );
        assert_eq!(
            create(&mut conn, "orders", 4, &[("retention.ms", "-1")], false).0,
            0
        );
        assert_eq!(
            create(&mut conn, "orders", 4, &[], false).0,
            36,
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            create(&mut conn, "bad name!", 1, &[], false).0,
            17,
            "INVALID_TOPIC_EXCEPTION"
        );
        assert_eq!(
            create(&mut conn, "zero", 0, &[], false).0,
            37,
            "INVALID_PARTITIONS"
        );
        assert_eq!(
            create(&mut conn, "cfg", 1, &[("no.such", "1")], false).0,
            40,
            "INVALID_CONFIG"
        );
        let described: MetadataResponse = conn.call(ApiKey::Metadata, 12, &metadata).unwrap();
        assert_eq!(described.topics[0].error_code, 0);
        assert_eq!(described.topics[0].partitions.len(), 4);

        // Produce to every partition (spread over both shards) with each acks value.
        let mut expected: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
        for partition in 0..4 {
            let mut next = 0;
            for (i, acks) in [1i16, -1, 1].into_iter().enumerate() {
                let batch = records(&format!("p{partition}b{i}"), 3, 1_000 * (i as i64 + 1));
                let (code, base) = produce(&mut conn, "orders", partition, acks, batch.clone());
                assert_eq!((code, base), (0, next), "partition {partition} acks {acks}");
                expected
                    .entry(partition)
                    .or_default()
                    .push(stored(batch, base));
                next += 3;
            }
        }
        // acks=0: no response; the next request's answer comes back first.
        let zero = records("acks0", 2, 9_000);
        conn.send(
            ApiKey::Produce,
            9,
            &produce_request("orders", 0, 0, zero.clone()),
        )
        .unwrap();
        expected.get_mut(&0).unwrap().push(stored(zero, 9));
        let (code, high_watermark, _) = fetch(&mut conn, "orders", 0, 0, 0);
        assert_eq!((code, high_watermark), (0, 11));

        // Refusals map to Kafka codes; the log is untouched.
        let mut corrupt = records("x", 1, 0);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(
            produce(&mut conn, "orders", 1, 1, corrupt).0,
            2,
            "CORRUPT_MESSAGE"
        );
        assert_eq!(produce(&mut conn, "nope", 0, 1, records("x", 1, 0)).0, 3);
        assert_eq!(
            produce(&mut conn, "orders", 1, 2, records("x", 1, 0)).0,
            21,
            "INVALID_REQUIRED_ACKS"
        );
        assert_eq!(produce(&mut conn, "orders", 9, 1, records("x", 1, 0)).0, 3);

        // Fetch everything back, byte for byte.
        for (&partition, batches) in &expected {
            let (code, _, fetched) = fetch(&mut conn, "orders", partition, 0, 0);
            assert_eq!(code, 0);
            assert_eq!(&fetched, batches, "partition {partition}");
        }
        assert_eq!(
            fetch(&mut conn, "orders", 1, 100, 0).0,
            1,
            "OFFSET_OUT_OF_RANGE"
        );

        // ListOffsets: earliest, latest, by timestamp, max timestamp.
        assert_eq!(list_offset(&mut conn, "orders", 1, -2), (0, 0, -1));
        assert_eq!(list_offset(&mut conn, "orders", 1, -1), (0, 9, -1));
        assert_eq!(list_offset(&mut conn, "orders", 1, 2_001), (0, 4, 2_001));
        assert_eq!(list_offset(&mut conn, "orders", 1, -3), (0, 8, 3_002));
        assert_eq!(list_offset(&mut conn, "orders", 1, 99_999), (0, -1, -1));

        // Long poll: a fetch at the end waits until another connection produces.
        let addr = broker.addr;
        let waiter = std::thread::spawn(move || {
            let mut conn = KafkaConn::connect(addr).unwrap();
            let started = Instant::now();
            let (code, _, batches) = fetch(&mut conn, "orders", 2, 9, 8_000);
            (code, batches.len(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        produce(&mut conn, "orders", 2, 1, records("late", 1, 5));
        let (code, batches, waited) = waiter.join().unwrap();
        assert_eq!((code, batches), (0, 1));
        assert!(
            waited < Duration::from_secs(6),
            "the fetch returned when data came ({waited:?})"
        );
        // The produce comes ~300 ms after the fetch; an answer without waiting takes ~1 ms.
        assert!(
            waited >= Duration::from_millis(100),
            "it did wait ({waited:?})"
        );
        expected
            .get_mut(&2)
            .unwrap()
            .push(stored(records("late", 1, 5), 9));

        // Metadata auto-creates a topic it is asked about.
        let mut auto = MetadataRequest::default();
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(name("auto-created"));
        auto.topics = Some(vec![wanted]);
        auto.allow_auto_topic_creation = true;
        let response: MetadataResponse = conn.call(ApiKey::Metadata, 12, &auto).unwrap();
        assert_eq!(
            (
                response.topics[0].error_code,
                response.topics[0].partitions.len()
            ),
            (0, 1)
        );

        // Restart: everything is still there.
        broker.signal(libc::SIGTERM);
        assert!(broker.wait_exit(Duration::from_secs(15)).unwrap().success());
        let broker = start(&dir, backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        for (&partition, batches) in &expected {
            let (code, _, fetched) = fetch(&mut conn, "orders", partition, 0, 0);
            assert_eq!(code, 0);
            assert_eq!(&fetched, batches, "partition {partition} after restart");
        }
        let mut all = MetadataRequest::default();
        all.topics = None;
        let response: MetadataResponse = conn.call(ApiKey::Metadata, 12, &all).unwrap();
        let names: Vec<_> = response
            .topics
            .iter()
            .map(|t| t.name.as_ref().unwrap().0.to_string())
            .collect();
        assert_eq!(names, vec!["auto-created", "orders"]);
    }
}

#[test]
fn profiles_set_topic_defaults() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("profile");
    let data = dir.path().join("data");
    let args = [
        "--io-backend",
        backend,
        "--data-dir",
        data.to_str().unwrap(),
        "--profile",
        "durable",
    ];
    let broker = Broker::start(&args).unwrap();
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "durable-default", 1, &[], false).0, 0);
    assert_eq!(
        create(
            &mut conn,
            "durable-override",
            1,
            &[("flush.policy", "never")],
            false
        )
        .0,
        0
    );
    let flush_policy = |conn: &mut KafkaConn, topic: &str| -> (String, i8) {
        let mut resource = DescribeConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_string(topic.to_owned());
        resource.configuration_keys = Some(vec![StrBytes::from_static_str("flush.policy")]);
        let mut request = DescribeConfigsRequest::default();
        request.resources = vec![resource];
        let response: DescribeConfigsResponse =
            conn.call(ApiKey::DescribeConfigs, 4, &request).unwrap();
        let config = &response.results[0].configs[0];
        (
            config.value.as_ref().unwrap().to_string(),
            config.config_source,
        )
    };
    assert_eq!(
        flush_policy(&mut conn, "durable-default"),
        ("always".into(), 4),
        "broker default"
    );
    assert_eq!(
        flush_policy(&mut conn, "durable-override"),
        ("never".into(), 1),
        "topic's own"
    );
    // Durable appends are acknowledged (and synced) as usual.
    assert_eq!(
        produce(&mut conn, "durable-default", 0, -1, records("d", 3, 0)),
        (0, 0)
    );

    let out = std::process::Command::new(runnel_tests::broker_binary())
        .args([
            "--profile",
            "no-such-profile",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-profile"));
}

#[test]
fn both_fetch_paths_serve_the_same_bytes() {
    // Zero copy splices reads of 64 KiB and more and copies smaller ones (or splices all);
    // the copy path copies everything. All must serve the stored bytes exactly.
    let paths = [
        "fetch_zero_copy = true",
        "fetch_zero_copy = true\nfetch_splice_min_bytes = 0",
        "fetch_zero_copy = false",
    ];
    for (backend, (n, path)) in backends_under_test()
        .into_iter()
        .flat_map(|b| paths.iter().enumerate().map(move |p| (b, p)))
    {
        let dir = TempDir::new(&format!("fetch-paths-{backend}-{n}"));
        let config = dir.path().join("runnel.toml");
        std::fs::write(&config, format!("{path}\n")).unwrap();
        let broker = Broker::start_in(&dir, backend, &["--config", config.to_str().unwrap()]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "paths", 2, &[], false).0, 0);
        let mut expected = Vec::new();
        for i in 0..6 {
            let batch = if i % 3 == 1 {
                big_batch(100_000)
            } else {
                records(&format!("c{i}"), 4, i * 100)
            };
            let (code, base) = produce(&mut conn, "paths", 1, 1, batch.clone());
            assert_eq!(code, 0);
            expected.push(stored(batch, base));
        }
        // All six (over 64 KiB), then the last small one alone.
        let (code, high_watermark, fetched) = fetch(&mut conn, "paths", 1, 0, 0);
        assert_eq!((code, high_watermark), (0, 18));
        assert_eq!(fetched, expected, "{path}");
        let (code, _, fetched) = fetch(&mut conn, "paths", 1, 14, 0);
        assert_eq!(code, 0);
        assert_eq!(fetched, expected[5..], "{path}");
    }
}

#[test]
fn delete_topics_create_partitions_and_delete_records() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("admin-{backend}"));
        let broker = start(&dir, backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "grow", 1, &[], false).0, 0);
        for _ in 0..3 {
            assert_eq!(produce(&mut conn, "grow", 0, 1, records("r", 2, 0)).0, 0);
        }

        // CreatePartitions: only upwards; new partitions take writes.
        let grow = |conn: &mut KafkaConn, count: i32, validate_only: bool| -> i16 {
            let mut topic = CreatePartitionsTopic::default();
            topic.name = name("grow");
            topic.count = count;
            let mut request = CreatePartitionsRequest::default();
            request.topics = vec![topic];
            request.timeout_ms = 10_000;
            request.validate_only = validate_only;
            let response: CreatePartitionsResponse =
                conn.call(ApiKey::CreatePartitions, 3, &request).unwrap();
            response.results[0].error_code
        };
        assert_eq!(
            grow(&mut conn, 1, false),
            37,
            "INVALID_PARTITIONS: not more"
        );
        assert_eq!(grow(&mut conn, 3, true), 0);
        assert_eq!(
            produce(&mut conn, "grow", 2, 1, records("r", 1, 0)).0,
            3,
            "validate_only"
        );
        assert_eq!(grow(&mut conn, 3, false), 0);
        assert_eq!(produce(&mut conn, "grow", 2, 1, records("r", 1, 0)), (0, 0));

        // DeleteRecords: the start moves, reads below it are out of range.
        let delete_records = |conn: &mut KafkaConn, offset: i64| -> (i16, i64) {
            let mut partition = DeleteRecordsPartition::default();
            partition.partition_index = 0;
            partition.offset = offset;
            let mut topic = DeleteRecordsTopic::default();
            topic.name = name("grow");
            topic.partitions = vec![partition];
            let mut request = DeleteRecordsRequest::default();
            request.topics = vec![topic];
            request.timeout_ms = 10_000;
            let response: DeleteRecordsResponse =
                conn.call(ApiKey::DeleteRecords, 2, &request).unwrap();
            let p = &response.topics[0].partitions[0];
            (p.error_code, p.low_watermark)
        };
        assert_eq!(
            delete_records(&mut conn, 99),
            (1, -1),
            "OFFSET_OUT_OF_RANGE past the end"
        );
        assert_eq!(delete_records(&mut conn, 4), (0, 4));
        assert_eq!(list_offset(&mut conn, "grow", 0, -2), (0, 4, -1));
        assert_eq!(fetch(&mut conn, "grow", 0, 1, 0).0, 1, "below the start");
        assert_eq!(delete_records(&mut conn, -1), (0, 6));

        // DeleteTopics: the data goes; the name can be reused for a fresh topic.
        let delete = |conn: &mut KafkaConn, topic: &str| -> i16 {
            let mut request = DeleteTopicsRequest::default();
            request.topic_names = vec![name(topic)];
            request.timeout_ms = 10_000;
            let response: DeleteTopicsResponse =
                conn.call(ApiKey::DeleteTopics, 5, &request).unwrap();
            response.responses[0].error_code
        };
        assert_eq!(delete(&mut conn, "grow"), 0);
        assert!(
            !dir.path().join("data/grow-0").exists(),
            "partition data removed"
        );
        assert_eq!(delete(&mut conn, "grow"), 3, "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(produce(&mut conn, "grow", 0, 1, records("r", 1, 0)).0, 3);
        assert_eq!(create(&mut conn, "grow", 1, &[], false).0, 0);
        assert_eq!(
            produce(&mut conn, "grow", 0, 1, records("r", 1, 0)),
            (0, 0),
            "a fresh log"
        );
    }
}

#[test]
fn kcat_produces_and_consumes_with_every_codec() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("kcat-codecs-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = format!("codec-{codec}");
            let lines: Vec<String> = (0..50)
                .map(|i| format!("key{i}:{codec}-value-{i}"))
                .collect();
            let mut producer = Command::new("kcat")
                .args(["-P", "-b", &bootstrap, "-t", &topic, "-K:", "-z", codec])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            producer
                .stdin
                .take()
                .unwrap()
                .write_all((lines.join("\n") + "\n").as_bytes())
                .unwrap();
            assert!(producer.wait().unwrap().success(), "{codec}: produce");
            let out = Command::new("kcat")
                .args([
                    "-C",
                    "-b",
                    &bootstrap,
                    "-t",
                    &topic,
                    "-o",
                    "beginning",
                    "-e",
                    "-f",
                    "%k:%s\n",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{codec}: consume: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let consumed: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(consumed, lines, "{codec}");
        }
    }
}

fn record_count(batch: &[u8]) -> i64 {
    i64::from(batch::BatchHeader::parse(batch).unwrap().last_offset_delta) + 1
}

/// The broker's `runnel_fsync_latency_seconds_count`: group-commit rounds so far.
fn sync_rounds(admin: &str) -> u64 {
    runnel_net::metrics::report::fetch(admin)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("runnel_fsync_latency_seconds_count "))
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn pipelined_produce_requests_keep_their_order_and_share_syncs() {
    const REQUESTS: usize = 40;
    const FETCH_AT: usize = 20;
    const NO_ACKS_AT: usize = 31;
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("pipelined-produce-{backend}"));
        let broker = Broker::start_in(&dir, backend, &["--admin-listen", "127.0.0.1:0"]);
        let admin = broker.admin_addr();
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let configs = [("flush.policy", "always")];
        assert_eq!(create(&mut conn, "pipe", 2, &configs, false).0, 0);
        let syncs_before = sync_rounds(&admin);

        // Forty produce requests (alternating partitions, one with acks=0) and a fetch in the
        // middle, written in one go: the broker reads them all before answering the first.
        let mut frames = Vec::new();
        let mut sent = Vec::new(); // (correlation id, what the request was)
        let mut batches: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for i in 0..REQUESTS {
            if i == FETCH_AT {
                let (id, frame) = conn.frame(ApiKey::Fetch, 12, &fetch_request("pipe", 0, 0, 0));
                frames.extend(frame);
                sent.push((id, None));
            }
            let partition = i % 2;
            let batch = records(&format!("r{i}"), 1 + i % 3, 1_000 + i as i64);
            let acks = if i == NO_ACKS_AT { 0 } else { -1 };
            let request = produce_request("pipe", partition as i32, acks, batch.clone());
            let (id, frame) = conn.frame(ApiKey::Produce, 9, &request);
            frames.extend(frame);
            batches[partition].push(batch);
            if acks != 0 {
                sent.push((id, Some(partition)));
            }
        }
        conn.send_raw(&frames).unwrap();

        let mut next_offset = [0i64; 2];
        let mut answered = [0usize; 2];
        for (id, what) in sent {
            match what {
                Some(partition) => {
                    let (received, response): (i32, ProduceResponse) =
                        conn.receive(ApiKey::Produce, 9).unwrap();
                    assert_eq!(received, id, "responses in request order");
                    let p = &response.responses[0].partition_responses[0];
                    assert_eq!(p.error_code, 0);
                    // Offsets follow request order (the acks=0 batch takes its turn silently).
                    let mut at = answered[partition];
                    if partition == NO_ACKS_AT % 2 && at == NO_ACKS_AT / 2 {
                        next_offset[partition] += record_count(&batches[partition][at]);
                        at += 1;
                    }
                    assert_eq!(p.base_offset, next_offset[partition], "request {id}");
                    next_offset[partition] += record_count(&batches[partition][at]);
                    answered[partition] = at + 1;
                }
                None => {
                    // The fetch ran after every earlier request had completed: it sees the
                    // ten batches produced to partition 0 before it, all of them durable.
                    let (received, response): (i32, FetchResponse) =
                        conn.receive(ApiKey::Fetch, 12).unwrap();
                    assert_eq!(received, id);
                    let p = &response.responses[0].partitions[0];
                    assert_eq!(p.high_watermark, next_offset[0]);
                    assert_eq!(answered[0], FETCH_AT / 2);
                }
            }
        }
        // Everything landed, in order, byte for byte.
        for (partition, expected) in batches.iter().enumerate() {
            let (code, _, stored_batches) = fetch(&mut conn, "pipe", partition as i32, 0, 0);
            assert_eq!(code, 0);
            let mut base = 0;
            let expected: Vec<_> = expected
                .iter()
                .map(|b| {
                    let at = base;
                    base += record_count(b);
                    stored(b.clone(), at)
                })
                .collect();
            assert_eq!(stored_batches, expected, "partition {partition}");
        }
        // One at a time, 40 acks=all requests under flush.policy=always cost at least 39
        // group-commit rounds; pipelined, the requests queued behind a sync share the next.
        let syncs = sync_rounds(&admin) - syncs_before;
        eprintln!("{backend}: {syncs} sync rounds for {REQUESTS} pipelined requests");
        assert!(
            syncs <= 20,
            "{syncs} sync rounds for {REQUESTS} pipelined requests"
        );
    }
}

/// A batch of one record with a `value_len`-byte value.
fn big_batch(value_len: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    builder.push(&Record {
        value: Some(vec![7; value_len]),
        ..Default::default()
    });
    builder.build()
}

#[test]
fn fetch_spends_its_byte_budget_in_request_order() {
    // On one shard (the whole long poll runs there) and on two (shards read concurrently and
    // the budget is spent across them on the connection's shard), the same answer.
    for (backend, cores) in backends_under_test()
        .into_iter()
        .flat_map(|b| [(b, "1"), (b, "2")])
    {
        let dir = TempDir::new(&format!("fetch-budget-{backend}-{cores}"));
        let broker = Broker::start_in(&dir, backend, &["--cores", cores]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "budget", 4, &[], false).0, 0);
        let batch = big_batch(3000);
        let len = batch.len() as i64;
        for partition in 1..4 {
            assert_eq!(
                produce(&mut conn, "budget", partition, 1, batch.clone()).0,
                0
            );
        }
        // Partition 0 is empty; 1, 2 and 3 hold one batch each. The first partition with data
        // keeps its batch whole past partition_max_bytes (KIP-74); the next gets at most
        // partition_max_bytes of what is left; the last nothing.
        let mut request = fetch_request("budget", 0, 0, 0);
        let template = request.topics[0].partitions[0].clone();
        request.topics[0].partitions = (0..4)
            .map(|p| {
                let mut partition = template.clone();
                partition.partition = p;
                partition.partition_max_bytes = 1000;
                partition
            })
            .collect();
        request.max_bytes = (len + 500) as i32;
        let response: FetchResponse = conn.call(ApiKey::Fetch, 12, &request).unwrap();
        let sizes: Vec<_> = response.responses[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!(p.error_code, 0);
                (
                    p.partition_index,
                    p.records.as_ref().map_or(0, |r| r.len() as i64),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [(0, 0), (1, len), (2, 500), (3, 0)],
            "{backend} on {cores} cores"
        );
        let whole = &response.responses[0].partitions[1];
        assert_eq!(
            whole.records.as_deref(),
            Some(&stored(batch.clone(), 0)[..])
        );
    }
}

#[test]
fn a_failed_acks_0_produce_closes_the_connection() {
    // Kafka's answer to an acks=0 request that failed: it closes the connection, the only way
    // a client expecting no response learns to refresh its metadata.
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("acks0-{backend}"));
        let broker = start(&dir, backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "fire", 1, &[], false).0, 0);
        // A good acks=0 request gets no answer and leaves the connection open.
        let request = produce_request("fire", 0, 0, records("ok", 2, 1));
        conn.send(ApiKey::Produce, 9, &request).unwrap();
        assert_eq!(list_offset(&mut conn, "fire", 0, -1), (0, 2, -1));
        // One to a partition that doesn't exist closes it.
        let request = produce_request("fire", 7, 0, records("bad", 1, 1));
        conn.send(ApiKey::Produce, 9, &request).unwrap();
        assert!(conn.closed_by_peer(), "{backend}");
        // The broker keeps serving others.
        let mut other = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(list_offset(&mut other, "fire", 0, -1), (0, 2, -1));
    }
}

/// A long poll over partitions on both shards: it waits (min_bytes not met), wakes as soon as
/// one partition gets data from another connection, answers at the deadline when none comes,
/// and the broker logs no warning or error on the way.
#[test]
fn a_long_poll_across_shards_wakes_on_new_data() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("long-poll-shards-{backend}"));
        let mut broker = Broker::start_in(&dir, backend, &["--cores", "2"]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "polled", 2, &[], false).0, 0);
        let mut request = fetch_request("polled", 0, 0, 300);
        let mut second = request.topics[0].partitions[0].clone();
        second.partition = 1;
        request.topics[0].partitions.push(second);

        // Nothing arrives: answered empty at the deadline, without errors.
        let started = Instant::now();
        let response: FetchResponse = conn.call(ApiKey::Fetch, 12, &request).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250), "{backend}");
        for p in &response.responses[0].partitions {
            assert_eq!((p.error_code, p.high_watermark), (0, 0), "{backend}");
        }

        // Data arrives on partition 1 while the poll waits up to 10 s.
        request.max_wait_ms = 10_000;
        let sent = conn.send(ApiKey::Fetch, 12, &request).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let mut producer = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            produce(&mut producer, "polled", 1, 1, records("late", 3, 1)).0,
            0
        );
        let (received, response): (i32, FetchResponse) = conn.receive(ApiKey::Fetch, 12).unwrap();
        assert_eq!(received, sent);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{backend}: the poll was not woken by the append"
        );
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions[0].records.as_ref().map_or(0, |r| r.len()), 0);
        assert_eq!(partitions[1].high_watermark, 3, "{backend}");
        assert!(partitions[1]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty()));

        broker.signal(libc::SIGTERM);
        broker.wait_exit(Duration::from_secs(20)).unwrap();
        let complaints = broker.wait_for_log(" ERROR ", Duration::ZERO);
        assert!(complaints.is_err(), "{backend}: {complaints:?}");
        let warnings = broker.wait_for_log(" WARN ", Duration::ZERO);
        assert!(warnings.is_err(), "{backend}: {warnings:?}");
    }
}

/// SIGTERM answers parked long polls at once (on one shard and across shards), so a clean
/// shutdown doesn't wait out their deadlines or the shards' grace period.
#[test]
fn shutdown_answers_parked_long_polls_at_once() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("long-poll-shutdown-{backend}"));
        let mut broker = Broker::start_in(&dir, backend, &["--cores", "2"]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "parked", 2, &[], false).0, 0);
        let one_shard = fetch_request("parked", 0, 0, 60_000);
        let mut both_shards = one_shard.clone();
        let mut second = both_shards.topics[0].partitions[0].clone();
        second.partition = 1;
        both_shards.topics[0].partitions.push(second);
        let mut polls = Vec::new();
        for request in [one_shard, both_shards] {
            let mut poller = KafkaConn::connect(broker.addr).unwrap();
            let sent = poller.send(ApiKey::Fetch, 12, &request).unwrap();
            polls.push((poller, sent));
        }
        std::thread::sleep(Duration::from_millis(300));
        let stopping = Instant::now();
        broker.signal(libc::SIGTERM);
        for (mut poller, sent) in polls {
            let (received, response): (i32, FetchResponse) =
                poller.receive(ApiKey::Fetch, 12).unwrap();
            assert_eq!(received, sent);
            for p in &response.responses[0].partitions {
                // Answered: empty, or NOT_LEADER_OR_FOLLOWER where the partition's shard had
                // already stopped (a leader going away, which clients retry elsewhere).
                assert!(matches!(p.error_code, 0 | 6), "{backend}: {}", p.error_code);
            }
        }
        let status = broker.wait_exit(Duration::from_secs(20)).unwrap();
        assert!(status.success(), "{backend}");
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "{backend}: shutdown took {:?}",
            stopping.elapsed()
        );
    }
}

/// The error code of each of `topic`'s partitions in Metadata.
fn partition_errors(conn: &mut KafkaConn, topic: &str) -> Vec<i16> {
    let mut metadata = MetadataRequest::default();
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(name(topic));
    metadata.topics = Some(vec![wanted]);
    metadata.allow_auto_topic_creation = false;
    let described: MetadataResponse = conn.call(ApiKey::Metadata, 12, &metadata).unwrap();
    let mut partitions: Vec<_> = described.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    partitions.sort_unstable();
    partitions.into_iter().map(|(_, code)| code).collect()
}

/// A partition whose log can't be opened (here a file sits where its directory goes) is
/// reported: KAFKA_STORAGE_ERROR in CreateTopics, in Metadata and to producers, while the
/// topic's other partitions work. Opening is retried, so once the obstacle is gone the
/// partition comes back by itself; the failure is logged once, not on every retry.
#[test]
fn a_partition_that_cannot_be_opened_is_reported_and_retried() {
    const STORAGE_ERROR: i16 = 56;
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("offline-{backend}"));
        let mut broker = Broker::start_in(&dir, backend, &["--cores", "2"]);
        let obstacle = dir.path().join("data").join("blocked-1");
        std::fs::write(&obstacle, b"not a directory").unwrap();
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let (code, message) = create(&mut conn, "blocked", 2, &[], false);
        assert_eq!(code, STORAGE_ERROR, "{backend}: {message:?}");
        assert!(message.unwrap_or_default().contains("partition 1"));
        assert_eq!(
            partition_errors(&mut conn, "blocked"),
            vec![0, STORAGE_ERROR]
        );
        let batch = || records("offline", 2, 1);
        assert_eq!(produce(&mut conn, "blocked", 0, 1, batch()), (0, 0));
        assert_eq!(
            produce(&mut conn, "blocked", 1, 1, batch()).0,
            STORAGE_ERROR
        );

        std::fs::remove_file(&obstacle).unwrap();
        let back = Instant::now();
        while partition_errors(&mut conn, "blocked") != vec![0, 0] {
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "{backend}: partition 1 did not come back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(produce(&mut conn, "blocked", 1, 1, batch()), (0, 0));
        broker
            .wait_for_log("back online", Duration::from_secs(5))
            .unwrap();
        broker.signal(libc::SIGTERM);
        broker.wait_exit(Duration::from_secs(20)).unwrap();
        let failures = broker
            .log
            .iter()
            .filter(|line| line.contains("cannot open partition"))
            .count();
        assert_eq!(failures, 1, "{backend}: logged once, not on every retry");
    }
}

/// With thousands of partitions, or a short grace period, closing can outlast the shutdown
/// grace; the shards still closing are then dropped, and the broker must not write the
/// clean-shutdown marker (recovery then runs at the next start, and loses nothing).
#[test]
fn a_shutdown_cut_short_is_not_reported_clean() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("unclean-{backend}"));
    let config = dir.path().join("grace.toml");
    std::fs::write(&config, "[shutdown]\ngrace_ms = 1\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut broker = Broker::start_in(&dir, backend, &["--config", &config]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "many", 400, &[], false).0, 0);
    for partition in 0..400 {
        assert_eq!(
            produce(&mut conn, "many", partition, 1, records("c", 1, 1)).0,
            0
        );
    }
    drop(conn);
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();
    broker
        .wait_for_log("grace period over", Duration::ZERO)
        .expect("400 partitions don't close within 1 ms");
    broker
        .wait_for_log("did not finish closing", Duration::ZERO)
        .unwrap();
    let marker = dir.path().join("data").join(".runnel-clean-shutdown");
    assert!(
        !marker.exists(),
        "clean-shutdown marker written after a cut-short shutdown"
    );

    // The next start recovers and has every record.
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    for partition in [0, 199, 399] {
        let (code, high_watermark, batches) = fetch(&mut conn, "many", partition, 0, 0);
        assert_eq!(
            (code, high_watermark, batches.len()),
            (0, 1, 1),
            "partition {partition}"
        );
    }
}
