//! Topic and broker configs over the wire, against the real binary: IncrementalAlterConfigs'
//! four operations and Kafka's refusals, DescribeConfigs' sources, synonyms, types and
//! documentation, broker-side recompression under a topic's compression.type, and dynamic
//! broker configs applied live to topics without overrides and kept across a restart.

use std::time::Duration;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::batch::{self, BatchHeader, Compression, HEADER_LEN};
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::codec;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{create, fetch, produce, produce_request};
use runnel_tests::{backends_under_test, Broker, TempDir};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const NONE: i16 = 0;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// IncrementalAlterConfigs on one resource; returns its error code and message.
fn alter(
    conn: &mut KafkaConn,
    kind: i8,
    name: &str,
    ops: &[(i8, &str, Option<&str>)],
) -> (i16, String) {
    let mut resource = IncrementalResource::default();
    resource.resource_type = kind;
    resource.resource_name = s(name);
    resource.configs = ops
        .iter()
        .map(|(op, key, value)| {
            let mut c = IncrementalConfig::default();
            c.name = s(key);
            c.config_operation = *op;
            c.value = value.map(s);
            c
        })
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    let response: IncrementalAlterConfigsResponse = conn
        .call(ApiKey::IncrementalAlterConfigs, 1, &request)
        .unwrap();
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// DescribeConfigs v4 (synonyms and documentation asked for) of one resource.
fn describe(
    conn: &mut KafkaConn,
    kind: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> (i16, Vec<DescribeConfigsResourceResult>) {
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = kind;
    resource.resource_name = s(name);
    resource.configuration_keys = keys.map(|keys| keys.iter().map(|k| s(k)).collect());
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    request.include_synonyms = true;
    request.include_documentation = true;
    let response: DescribeConfigsResponse =
        conn.call(ApiKey::DescribeConfigs, 4, &request).unwrap();
    let result = response.results.into_iter().next().unwrap();
    (result.error_code, result.configs)
}

/// One config's (value, source).
fn value_of(conn: &mut KafkaConn, kind: i8, name: &str, key: &str) -> (Option<String>, i8) {
    let (code, configs) = describe(conn, kind, name, Some(&[key]));
    assert_eq!(code, 0, "{name} {key}");
    let c = configs
        .into_iter()
        .find(|c| c.name.as_str() == key)
        .unwrap();
    (c.value.map(|v| v.to_string()), c.config_source)
}

fn synonyms(config: &DescribeConfigsResourceResult) -> Vec<(String, String, i8)> {
    config
        .synonyms
        .iter()
        .map(|s| {
            let value = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (s.name.to_string(), value, s.source)
        })
        .collect()
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn topic_configs_over_the_wire() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("configs-topic-{backend}"));
        let broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(create(&mut conn, "t", 1, &[], false).0, 0);

        // Every Kafka 3.9 topic config (and Runnel's two), with sources, types, synonyms, docs.
        let (code, all) = describe(&mut conn, TOPIC, "t", None);
        assert_eq!(code, 0);
        assert_eq!(
            all.len(),
            38,
            "36 Kafka topic configs and flush.policy, flush.bytes"
        );
        let retention = all
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!((retention.config_source, retention.config_type), (5, 5));
        assert!(!retention.read_only && !retention.is_sensitive);
        assert_eq!(
            synonyms(retention),
            vec![("log.retention.hours".into(), "168".into(), 5)]
        );
        assert!(retention
            .documentation
            .as_ref()
            .is_some_and(|d| !d.is_empty()));
        let policy = all
            .iter()
            .find(|c| c.name.as_str() == "cleanup.policy")
            .unwrap();
        assert_eq!(policy.config_type, 7);

        // SUBTRACT everything: an empty list, set on the topic. APPEND: only what's missing.
        assert_eq!(
            alter(
                &mut conn,
                TOPIC,
                "t",
                &[(SUBTRACT, "cleanup.policy", Some("delete"))]
            )
            .0,
            0
        );
        assert_eq!(
            value_of(&mut conn, TOPIC, "t", "cleanup.policy"),
            (some(""), 1)
        );
        assert_eq!(
            alter(
                &mut conn,
                TOPIC,
                "t",
                &[(APPEND, "cleanup.policy", Some("delete"))]
            )
            .0,
            0
        );
        assert_eq!(
            alter(
                &mut conn,
                TOPIC,
                "t",
                &[(APPEND, "cleanup.policy", Some("delete"))]
            )
            .0,
            0
        );
        assert_eq!(
            value_of(&mut conn, TOPIC, "t", "cleanup.policy"),
            (some("delete"), 1)
        );
        let replicas = "leader.replication.throttled.replicas";
        assert_eq!(
            alter(
                &mut conn,
                TOPIC,
                "t",
                &[(APPEND, replicas, Some("0:0,1:0"))]
            )
            .0,
            0
        );
        assert_eq!(
            alter(
                &mut conn,
                TOPIC,
                "t",
                &[(APPEND, replicas, Some("1:0,2:0"))]
            )
            .0,
            0
        );
        assert_eq!(
            value_of(&mut conn, TOPIC, "t", replicas).0,
            some("0:0,1:0,2:0")
        );
        assert_eq!(
            alter(&mut conn, TOPIC, "t", &[(SUBTRACT, replicas, Some("1:0"))]).0,
            0
        );
        assert_eq!(value_of(&mut conn, TOPIC, "t", replicas).0, some("0:0,2:0"));

        // SET and DELETE in one request.
        let ops = [
            (SET, "retention.ms", Some("1000")),
            (DELETE, replicas, None),
        ];
        assert_eq!(alter(&mut conn, TOPIC, "t", &ops).0, 0);
        let (value, source) = value_of(&mut conn, TOPIC, "t", "retention.ms");
        assert_eq!((value, source), (some("1000"), 1));
        let (_, configs) = describe(&mut conn, TOPIC, "t", Some(&["retention.ms"]));
        assert_eq!(
            synonyms(&configs[0])[0],
            ("retention.ms".into(), "1000".into(), 1)
        );
        assert_eq!(value_of(&mut conn, TOPIC, "t", replicas), (some(""), 5));

        // Kafka's refusals.
        let (code, message) = alter(
            &mut conn,
            TOPIC,
            "t",
            &[(APPEND, "retention.ms", Some("5"))],
        );
        assert_eq!(code, INVALID_CONFIG);
        assert!(message.contains("not LIST"), "{message}");
        for (op, key, value) in [
            (SET, "segment.bytes", Some("13")),
            (SET, "compression.type", Some("brotli")),
            (SET, "compression.zstd.level", Some("23")),
            (SET, "min.cleanable.dirty.ratio", Some("2")),
            (SET, "no.such.config", Some("1")),
            (APPEND, "cleanup.policy", Some("shred")),
            (SET, "max.compaction.lag.ms", Some("0")),
            (SET, "delete.retention.ms", Some("-1")),
        ] {
            let (code, message) = alter(&mut conn, TOPIC, "t", &[(op, key, value)]);
            assert_eq!(code, INVALID_CONFIG, "{key}: {message}");
            assert!(message.contains(key), "{message}");
        }
        let (code, message) = alter(
            &mut conn,
            TOPIC,
            "t",
            &[
                (SET, "min.compaction.lag.ms", Some("10000")),
                (SET, "max.compaction.lag.ms", Some("5000")),
            ],
        );
        assert_eq!(code, INVALID_CONFIG, "{message}");
        assert!(
            message.contains("conflict"),
            "min lag above max lag: {message}"
        );
        let twice = [
            (SET, "retention.ms", Some("1")),
            (DELETE, "retention.ms", None),
        ];
        assert_eq!(alter(&mut conn, TOPIC, "t", &twice).0, INVALID_REQUEST);
        assert_eq!(
            alter(&mut conn, TOPIC, "t", &[(7, "retention.ms", Some("1"))]).0,
            INVALID_REQUEST
        );
        assert_eq!(
            alter(&mut conn, TOPIC, "t", &[(SET, "retention.ms", None)]).0,
            INVALID_REQUEST
        );
        assert_eq!(
            value_of(&mut conn, TOPIC, "t", "retention.ms").0,
            some("1000"),
            "unchanged"
        );
        // Accepted, as Kafka 3.9 accepts them (the deprecated one ignored).
        for (key, value) in [
            ("message.format.version", "2.8"),
            ("message.timestamp.before.max.ms", "3600000"),
            ("min.compaction.lag.ms", "0"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "1000"),
            ("unclean.leader.election.enable", "true"),
        ] {
            assert_eq!(
                alter(&mut conn, TOPIC, "t", &[(SET, key, Some(value))]).0,
                0,
                "{key}"
            );
        }
    }
}

#[test]
fn a_topic_codec_recompresses_what_producers_send() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("configs-recompress");
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(
        create(&mut conn, "gz", 1, &[("compression.type", "gzip")], false).0,
        0
    );
    let mut builder = BatchBuilder::new().producer(77, 2, 0);
    for i in 0..30 {
        builder.push(&Record {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("value {i} ").repeat(20).into_bytes()),
            headers: vec![("h".into(), Some(vec![i as u8]))],
            timestamp: 1_700_000_000_000 + i,
        });
    }
    let sent = builder.build_compressed(Compression::Lz4).unwrap();
    assert_eq!(produce(&mut conn, "gz", 0, -1, sent.clone()), (0, 0));
    let (code, _, batches) = fetch(&mut conn, "gz", 0, 0, 0);
    assert_eq!((code, batches.len()), (0, 1));
    let stored = &batches[0];
    let header = batch::validate_for_append(stored, 1 << 20).expect("a valid batch, CRC and all");
    let original = BatchHeader::parse(&sent).unwrap();
    assert_eq!(header.compression(), Some(Compression::Gzip));
    assert_eq!(
        (
            header.records_count,
            header.max_timestamp,
            header.producer_id,
            header.producer_epoch
        ),
        (30, original.max_timestamp, 77, 2)
    );
    let records = |b: &[u8], c| codec::decompress(c, &b[HEADER_LEN..], 1 << 20).unwrap();
    assert_eq!(
        records(stored, Compression::Gzip),
        records(&sent, Compression::Lz4)
    );

    // Back to `producer`: the batch is stored as sent.
    assert_eq!(
        alter(
            &mut conn,
            TOPIC,
            "gz",
            &[(SET, "compression.type", Some("producer"))]
        )
        .0,
        0
    );
    let mut sent = BatchBuilder::new().producer(77, 2, 30);
    sent.push(&Record {
        value: Some(b"plain".to_vec()),
        timestamp: 5,
        ..Default::default()
    });
    let sent = sent.build_compressed(Compression::Snappy).unwrap();
    assert_eq!(produce(&mut conn, "gz", 0, -1, sent.clone()), (0, 30));
    let (_, _, batches) = fetch(&mut conn, "gz", 0, 30, 0);
    assert_eq!(batches[0][12..], sent[12..]);
}

/// Produces one batch and returns the LogAppendTime the broker stamped (-1: CreateTime).
fn log_append_time(conn: &mut KafkaConn, topic: &str) -> i64 {
    let request = produce_request(topic, 0, -1, runnel_tests::requests::records("x", 1, 5));
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &request).unwrap();
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.log_append_time_ms
}

#[test]
fn broker_configs_apply_live_and_survive_a_restart() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("configs-broker");
    let mut broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "plain", 2, &[], false).0, 0);
    assert_eq!(
        create(&mut conn, "own", 1, &[("retention.ms", "1234")], false).0,
        0
    );

    // The broker resource, as Kafka reports it.
    let (code, all) = describe(&mut conn, BROKER, "0", None);
    assert_eq!(code, 0);
    let find = |name: &str| {
        all.iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .clone()
    };
    let ms = find("log.retention.ms");
    assert_eq!(
        (ms.value.clone(), ms.read_only, ms.config_source),
        (None, false, 5)
    );
    assert_eq!(
        synonyms(&ms),
        vec![("log.retention.hours".into(), "168".into(), 5)]
    );
    assert!(find("log.retention.hours").read_only);
    let partitions = find("num.partitions");
    assert_eq!(
        (partitions.value.as_deref(), partitions.read_only),
        (Some("1"), true)
    );
    assert_eq!(partitions.config_source, 4);
    assert_eq!(describe(&mut conn, BROKER, "", None), (0, vec![]));
    assert_eq!(describe(&mut conn, BROKER, "7", None).0, INVALID_REQUEST);

    // Refusals: static configs, other brokers, unknown names, bad values.
    let (code, message) = alter(&mut conn, BROKER, "", &[(SET, "num.partitions", Some("3"))]);
    assert_eq!(code, INVALID_REQUEST);
    assert!(
        message.contains("Cannot update these configs dynamically"),
        "{message}"
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[(SET, "log.retention.hours", Some("1"))]
        )
        .0,
        INVALID_REQUEST
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "7",
            &[(SET, "log.retention.ms", Some("1"))]
        )
        .0,
        INVALID_REQUEST
    );
    // A name the broker doesn't know is kept (Kafka allows custom broker configs), and then
    // removed again.
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[(SET, "sasl.kerberos.min.time.before.relogin", Some("60000"))]
        )
        .0,
        NONE
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[(DELETE, "sasl.kerberos.min.time.before.relogin", None)]
        )
        .0,
        NONE
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[(SET, "log.retention.ms", Some("-5"))]
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "",
            &[(APPEND, "log.retention.ms", Some("5"))]
        )
        .0,
        INVALID_CONFIG
    );
    // Replication throttles are refused, not kept without effect: what
    // `kafka-reassign-partitions.sh --throttle` sets must not look as if it throttled.
    for name in [
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
    ] {
        let (code, message) = alter(&mut conn, BROKER, "", &[(SET, name, Some("1000000"))]);
        assert_eq!(code, INVALID_CONFIG, "{name}: {message:?}");
        let (code, kept) = describe(&mut conn, BROKER, "0", Some(&[name]));
        assert_eq!(code, 0);
        assert!(kept.is_empty(), "{name} kept: {kept:?}");
    }

    // Cluster-wide and per-broker defaults reach topics without their own setting, at once.
    let cluster = [
        (SET, "log.retention.ms", Some("3600000")),
        (SET, "log.message.timestamp.type", Some("LogAppendTime")),
        (SUBTRACT, "log.cleanup.policy", Some("delete")),
    ];
    assert_eq!(alter(&mut conn, BROKER, "", &cluster).0, 0);
    assert_eq!(
        alter(
            &mut conn,
            BROKER,
            "0",
            &[(SET, "log.segment.bytes", Some("1048576"))]
        )
        .0,
        0
    );
    let check = |conn: &mut KafkaConn| {
        assert_eq!(
            value_of(conn, TOPIC, "plain", "retention.ms"),
            (some("3600000"), 3)
        );
        assert_eq!(
            value_of(conn, TOPIC, "own", "retention.ms"),
            (some("1234"), 1)
        );
        assert_eq!(
            value_of(conn, TOPIC, "plain", "segment.bytes"),
            (some("1048576"), 2)
        );
        assert_eq!(
            value_of(conn, TOPIC, "plain", "cleanup.policy"),
            (some(""), 3)
        );
        assert_eq!(
            value_of(conn, BROKER, "0", "log.retention.ms"),
            (some("3600000"), 3)
        );
        let (_, cluster) = describe(conn, BROKER, "", None);
        let names: Vec<_> = cluster.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "log.cleanup.policy",
                "log.message.timestamp.type",
                "log.retention.ms"
            ]
        );
        assert!(
            log_append_time(conn, "plain") > 0,
            "LogAppendTime applied to the open log"
        );
    };
    check(&mut conn);

    // Kept in the data directory: the same after a restart.
    broker.signal(libc::SIGTERM);
    assert!(broker.wait_exit(Duration::from_secs(15)).unwrap().success());
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    check(&mut conn);

    // Deleted: back to the default, and CreateTime again.
    let ops = [
        (DELETE, "log.retention.ms", None),
        (DELETE, "log.message.timestamp.type", None),
    ];
    assert_eq!(alter(&mut conn, BROKER, "", &ops).0, 0);
    assert_eq!(
        value_of(&mut conn, TOPIC, "plain", "retention.ms"),
        (some("604800000"), 5)
    );
    assert_eq!(log_append_time(&mut conn, "plain"), -1);

    // The legacy AlterConfigs replaces a level's whole set.
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = BROKER;
    resource.resource_name = s("0");
    let mut config = AlterableConfig::default();
    config.name = s("log.retention.bytes");
    config.value = Some(s("1000000"));
    resource.configs = vec![config];
    let mut request = AlterConfigsRequest::default();
    request.resources = vec![resource];
    let response: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, 2, &request).unwrap();
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(
        value_of(&mut conn, TOPIC, "plain", "retention.bytes"),
        (some("1000000"), 2)
    );
    assert_eq!(
        value_of(&mut conn, TOPIC, "plain", "segment.bytes"),
        (some("1073741824"), 5)
    );
}
