//! The admin port: `GET /metrics` in Prometheus text, with the requests, appends, topic
//! counters, high watermarks and connections the broker just served, and the cleaner's
//! figures of compacted partitions.

use std::io::{Read, Write};
use std::net::TcpStream;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::create;
use runnel_tests::{backends_under_test, Broker, TempDir};

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_show_what_the_broker_served() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("metrics-{backend}"));
        let broker = Broker::start_in(&dir, backend, &["--admin-listen", "127.0.0.1:0"]);
        let admin = broker.admin_addr();

        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_static_str("measured"));
        topic.num_partitions = 2;
        topic.replication_factor = 1;
        let mut create = CreateTopicsRequest::default();
        create.topics = vec![topic];
        let _: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create).unwrap();
        let mut builder = BatchBuilder::new();
        for i in 0..5 {
            builder.push(&Record {
                value: Some(vec![i; 100]),
                ..Default::default()
            });
        }
        let batch = builder.build();
        let mut partition = PartitionProduceData::default();
        partition.index = 1;
        partition.records = Some(batch.clone().into());
        let mut data = TopicProduceData::default();
        data.name = TopicName(StrBytes::from_static_str("measured"));
        data.partition_data = vec![partition];
        let mut produce = ProduceRequest::default();
        produce.acks = 1;
        produce.timeout_ms = 5000;
        produce.topic_data = vec![data];
        let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce).unwrap();
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);

        let response = get(&admin, "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        assert!(
            body.contains("runnel_request_latency_seconds_count{api=\"Produce\",version=\"9\"} 1"),
            "{body}"
        );
        assert!(
            body.contains(
                "runnel_request_latency_seconds_count{api=\"CreateTopics\",version=\"7\"} 1"
            ),
            "{body}"
        );
        assert!(
            body.contains("runnel_append_latency_seconds_count 1"),
            "{body}"
        );
        assert!(
            body.contains("runnel_log_write_latency_seconds_count 1"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE runnel_fsync_latency_seconds summary"),
            "{body}"
        );
        // CreateTopics and Produce waited for nothing and were sent (the metrics request itself
        // is on the admin port, not counted).
        assert!(
            body.contains("runnel_request_queueing_seconds_count 2"),
            "{body}"
        );
        assert!(
            body.contains("runnel_response_send_seconds_count 2"),
            "{body}"
        );
        assert!(
            body.contains("runnel_messages_in_total{topic=\"measured\"} 5"),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "runnel_bytes_in_total{{topic=\"measured\"}} {}",
                batch.len()
            )),
            "{body}"
        );
        assert!(
            body.contains("runnel_partition_high_watermark{topic=\"measured\",partition=\"1\"} 5"),
            "{body}"
        );
        assert!(
            body.contains("runnel_partition_high_watermark{topic=\"measured\",partition=\"0\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("runnel_connections 1"),
            "the test's connection: {body}"
        );

        // runnelctl stats: the same figures as a table, latencies in milliseconds.
        let table = runnelctl_stats(&admin);
        let produce = table
            .lines()
            .find(|l| l.starts_with("request_latency{api=\"Produce\",version=\"9\"}"))
            .unwrap_or_else(|| panic!("{table}"));
        assert_eq!(produce.split_whitespace().nth(1), Some("1"), "{table}");
        assert!(
            table.contains("runnel_messages_in_total{topic=\"measured\"} 5"),
            "{table}"
        );
        let unreachable =
            std::process::Command::new(runnel_tests::workspace_binary("runnelctl", "runnel-tools"))
                .args(["stats", "--admin", "127.0.0.1:1"])
                .output()
                .unwrap();
        assert!(!unreachable.status.success());
        assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));

        assert!(get(&admin, "/other").starts_with("HTTP/1.1 404"));
        // A client that sends garbage or nothing is dropped; the port keeps serving.
        let mut junk = TcpStream::connect(&admin).unwrap();
        junk.write_all(&[0xff; 9000]).unwrap();
        let mut rest = Vec::new();
        let _ = junk.read_to_end(&mut rest);
        assert!(get(&admin, "/metrics").starts_with("HTTP/1.1 200 OK"));
    }
}

#[test]
fn compacted_partitions_report_their_cleaner() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("metrics-compacted");
    let broker = Broker::start_in(&dir, backend, &["--admin-listen", "127.0.0.1:0"]);
    let admin = broker.admin_addr();
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let compact = [("cleanup.policy", "compact")];
    assert_eq!(create(&mut conn, "keyed", 2, &compact, false).0, 0);
    assert_eq!(create(&mut conn, "plain", 1, &[], false).0, 0);

    let response = get(&admin, "/metrics");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    for name in [
        "runnel_cleaner_runs_total",
        "runnel_cleaner_bytes_read_total",
        "runnel_cleaner_bytes_written_total",
        "runnel_cleaner_records_removed_total",
    ] {
        assert!(body.contains(&format!("# TYPE {name} counter")), "{body}");
        for partition in 0..2 {
            let sample = format!("{name}{{topic=\"keyed\",partition=\"{partition}\"}} 0\n");
            assert!(
                body.contains(&sample),
                "nothing cleaned yet: {sample} in {body}"
            );
        }
    }
    assert!(
        !body.contains("runnel_cleaner_runs_total{topic=\"plain\""),
        "a topic that isn't compacted has no cleaner figures: {body}"
    );
    assert!(
        !body.contains("runnel_cleaner_seconds_since_last_clean{"),
        "no pass yet: {body}"
    );

    // runnelctl stats: one row per compacted partition.
    let table = runnelctl_stats(&admin);
    let header = table
        .lines()
        .position(|l| l.starts_with("compaction"))
        .unwrap_or_else(|| panic!("{table}"));
    let rows: Vec<&str> = table.lines().skip(header + 1).take(2).collect();
    assert!(
        rows[0].starts_with("topic=\"keyed\",partition=\"0\"")
            && rows[1].starts_with("topic=\"keyed\",partition=\"1\""),
        "{table}"
    );
}

/// What `runnelctl stats --admin ADMIN` prints (it must succeed).
fn runnelctl_stats(admin: &str) -> String {
    let out =
        std::process::Command::new(runnel_tests::workspace_binary("runnelctl", "runnel-tools"))
            .args(["stats", "--admin", admin])
            .output()
            .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}
