//! `runnel-bench`'s load generator against the real broker: a short fixed-rate run must
//! produce a consistent report (every measured message acknowledged and consumed once, rates
//! near the asked rate, percentiles in order).

use runnel_bench::runner;
use runnel_bench::workload::Workload;
use runnel_tests::{backends_under_test, Broker, TempDir};

#[test]
fn a_short_fixed_rate_run_reports_consistently() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("bench-run-{backend}"));
    let broker = Broker::start_in(&dir, backend, &[]);
    let workload = Workload::parse(
        r#"
        name = "short"
        partitions_per_topic = 2
        message_size = 512
        producers_per_topic = 2
        consumers_per_topic = 2
        producer_rate = 2000
        linger_ms = 1
        warmup_seconds = 1
        duration_seconds = 3
        "#,
    )
    .unwrap();
    let report = runner::run(
        &broker.addr.to_string(),
        &workload,
        runner::Generator::DEFAULT,
    )
    .unwrap();
    let expected = 2000.0 * 3.0;
    assert!(
        (report.published as f64 - expected).abs() <= expected * 0.05,
        "published {} of {expected}",
        report.published
    );
    assert_eq!(
        report.consumed, report.published,
        "every measured message consumed once"
    );
    assert_eq!(report.publish_latency_us.count, report.published);
    assert_eq!(report.end_to_end_us.count, report.consumed);
    assert_eq!(report.publish_delay_us.count, report.published);
    for p in [
        &report.publish_latency_us,
        &report.end_to_end_us,
        &report.publish_delay_us,
    ] {
        assert!(p.p50 <= p.p75 && p.p75 <= p.p95 && p.p95 <= p.p99, "{p:?}");
        assert!(
            p.p99 <= p.p999 && p.p999 <= p.p9999 && p.p9999 <= p.max,
            "{p:?}"
        );
    }
    let per_second: u64 = report.publish_per_second.iter().sum();
    assert!(
        per_second >= report.published,
        "the time series counts the warm-up too"
    );
    assert!(
        (report.publish_rate - 2000.0).abs() < 100.0,
        "{}",
        report.publish_rate
    );
    let table = runner::table(&report);
    assert!(
        table.contains("end to end") && table.contains("p99.9"),
        "{table}"
    );
    assert!(
        report.generator_cpu_seconds > 0.0
            && report.generator_wall_seconds >= 3.0
            && table.contains("generator:"),
        "{table}"
    );
    // The records carry the wall-clock time (records stamped near 1970 would be deleted by
    // time retention as soon as their segment rolled): the first record at or after two
    // minutes ago is the first of the run.
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{
        ApiKey, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    };
    let mut conn = runnel_tests::kafka::KafkaConn::connect(broker.addr).unwrap();
    let mut all = MetadataRequest::default();
    all.topics = None; // every topic
    let metadata: MetadataResponse = conn.call(ApiKey::Metadata, 12, &all).unwrap();
    let topic = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.clone())
        .find(|n| n.0.starts_with("short-"))
        .expect("the run's topic");
    let mut partition = ListOffsetsPartition::default();
    partition.partition_index = 0;
    partition.timestamp = runnel_bench::client::now_ms() - 120_000;
    let mut wanted = ListOffsetsTopic::default();
    wanted.name = topic;
    wanted.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    request.topics = vec![wanted];
    let offsets: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &request).unwrap();
    let found = &offsets.topics[0].partitions[0];
    assert_eq!((found.error_code, found.offset), (0, 0), "{found:?}");
}

#[test]
fn a_short_round_trip_run_reports_consistently() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("bench-round-trip-{backend}"));
    let broker = Broker::start_in(&dir, backend, &[]);
    let workload = Workload::parse(
        r#"
        name = "round-trips"
        scenario = "round-trip"
        clients = 5
        messages_per_request = 3
        partitions_per_topic = 2
        message_size = 3072
        consumers_per_topic = 2
        warmup_seconds = 1
        duration_seconds = 2
        "#,
    )
    .unwrap();
    let report = runnel_bench::round_trip::run(
        &broker.addr.to_string(),
        &workload,
        runner::Generator::DEFAULT,
    )
    .unwrap();
    assert_eq!(report.clients, 5);
    assert!(report.requests > 10, "{report:?}");
    assert_eq!(report.round_trip_us.count, report.requests);
    let p = &report.round_trip_us;
    assert!(p.p50 <= p.p99 && p.p99 <= p.max && p.p50 > 0, "{p:?}");
    let table = runnel_bench::round_trip::table(&report);
    assert!(table.contains("round trip"), "{table}");
}

#[test]
fn a_group_run_with_compression_consumes_and_commits_everything() {
    use kafka_protocol::messages::{
        ApiKey, ListGroupsRequest, ListGroupsResponse, OffsetFetchRequest, OffsetFetchResponse,
    };
    use runnel_tests::kafka::KafkaConn;

    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("bench-group-{backend}"));
    let config = dir.path().join("runnel.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 300\n").unwrap();
    let broker = Broker::start_in(&dir, backend, &["--config", config.to_str().unwrap()]);
    // Five members for four partitions: one member is given none and only heartbeats.
    let workload = Workload::parse(
        r#"
        name = "grouped"
        partitions_per_topic = 4
        message_size = 600
        consumers_per_topic = 5
        consumer_group = true
        compression = "zstd"
        producer_rate = 2000
        linger_ms = 2
        warmup_seconds = 1
        duration_seconds = 2
        "#,
    )
    .unwrap();
    let report = runner::run(
        &broker.addr.to_string(),
        &workload,
        runner::Generator::DEFAULT,
    )
    .unwrap();
    assert!(report.published > 0);
    assert_eq!(
        report.consumed, report.published,
        "every measured message consumed once"
    );

    // The group committed, at the end, every partition's end: all that was produced.
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let groups: ListGroupsResponse = conn
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .unwrap();
    let group = groups
        .groups
        .iter()
        .find(|g| g.group_id.0.starts_with("grouped-"))
        .expect("the run's group is listed");
    assert_eq!(group.group_state.as_str(), "Empty", "every member left");
    let mut fetch = OffsetFetchRequest::default();
    fetch.group_id = group.group_id.clone();
    fetch.topics = None; // every topic the group committed
    let committed: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &fetch).unwrap();
    assert_eq!(committed.error_code, 0);
    let partitions: Vec<_> = committed
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .collect();
    assert_eq!(partitions.len(), 4, "{committed:?}");
    let total: i64 = partitions.iter().map(|p| p.committed_offset).sum();
    let produced: u64 = report.publish_per_second.iter().sum();
    assert_eq!(
        total as u64, produced,
        "committed offsets add up to every message"
    );
}

/// The pinned run (Iggy's benchmark shape) counts what the broker holds: every acknowledged
/// message is in its topic's log, and consumers read no more than was produced.
#[test]
fn a_pinned_run_counts_what_the_broker_holds() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use runnel_bench::pinned::{self, PinnedShape};

    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("bench-pinned-{backend}"));
    let broker = Broker::start_in(&dir, backend, &[]);
    let shape = PinnedShape {
        producers: 2,
        consumers: 2,
        message_size: 1000,
        messages_per_batch: 100,
        in_flight: 2,
        acks: 1,
        seconds: std::time::Duration::from_secs(2),
        topic_prefix: "pinned".into(),
        topic_configs: [("flush.policy".to_owned(), "never".to_owned())].into(),
    };
    let report = pinned::run(&broker.addr.to_string(), &shape, Some(broker.pid())).unwrap();
    assert!(report.produced_messages > 0, "{report:?}");
    assert!(
        report.consumed_messages > 0 && report.consumed_messages <= report.produced_messages,
        "{report:?}"
    );
    assert_eq!(report.produced_bytes, report.produced_messages * 1000);
    assert_eq!(
        report.produce_latency_us.count * 100,
        report.produced_messages
    );
    assert!(report.generator_cpu_seconds > 0.0, "{report:?}");
    assert!(
        report.broker_cpu_seconds.is_some_and(|c| c > 0.0),
        "{report:?}"
    );
    assert!(
        report.summary().contains("produce_mb_s="),
        "{}",
        report.summary()
    );

    let mut conn = runnel_tests::kafka::KafkaConn::connect(broker.addr).unwrap();
    let mut request = ListOffsetsRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    for i in 0..2 {
        let mut partition = ListOffsetsPartition::default();
        partition.timestamp = -1; // the log end
        let mut topic = ListOffsetsTopic::default();
        topic.name = TopicName(StrBytes::from_string(format!("pinned-{i}")));
        topic.partitions = vec![partition];
        request.topics.push(topic);
    }
    let offsets: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &request).unwrap();
    let held: i64 = offsets.topics.iter().map(|t| t.partitions[0].offset).sum();
    assert_eq!(held as u64, report.produced_messages, "{offsets:?}");

    // A second run into the same topics is refused before it starts.
    assert!(pinned::run(&broker.addr.to_string(), &shape, None).is_err());
}
