//! Broker hardening against hostile or careless clients, on every backend: the decode memory
//! budget, `queued_max_request_bytes`, `connections_max_idle_ms`, `max_connections_per_ip`,
//! and rate-limited warnings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::{backends_under_test, Broker, TempDir};

/// Starts a broker on `backend` with `config` as its TOML config and the admin port on.
fn start(name: &str, backend: &str, config: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(&format!("{name}-{backend}"));
    let file = dir.path().join("runnel.toml");
    std::fs::write(&file, config).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let broker = Broker::start_in(
        &dir,
        backend,
        &["--config", &file, "--admin-listen", "127.0.0.1:0"],
    );
    (dir, broker)
}

fn api_versions(conn: &mut KafkaConn) -> std::io::Result<ApiVersionsResponse> {
    conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
}

/// A line of `/proc/<pid>/status`, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// A gauge's value on `/metrics`.
fn gauge(admin: &str, name: &str) -> u64 {
    let mut stream = TcpStream::connect(admin).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

/// Reads the broker's log lines that arrived in the next `wait`.
fn drain_log(broker: &mut Broker, wait: Duration) {
    let _ = broker.wait_for_log("a line that is never logged", wait);
}

/// A Metadata v0 request of `frame_size` bytes whose topic count equals its byte count
/// over two: each topic an empty name, 2 bytes on the wire and ~72 in memory.
fn hostile_metadata(frame_size: usize) -> Vec<u8> {
    let header = [0, 3, 0, 0, 0, 0, 0, 7, 0xff, 0xff]; // Metadata v0, correlation 7, no client
    let count = (frame_size - header.len() - 4) / 2;
    let body_len = header.len() + 4 + 2 * count;
    let mut frame = Vec::with_capacity(4 + body_len);
    frame.extend_from_slice(&(body_len as i32).to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&(count as i32).to_be_bytes());
    frame.resize(4 + body_len, 0);
    frame
}

#[test]
fn a_request_that_would_decode_to_gigabytes_is_refused() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("hostile", backend, "");
        let addr = broker.addr;
        // A second client, served throughout.
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let other = {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                let mut conn = KafkaConn::connect(addr).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let response = api_versions(&mut conn).expect("the other client is served");
                    assert_eq!(response.error_code, 0);
                    served.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let frame = hostile_metadata(50 << 20);
        let mut conn = KafkaConn::connect(addr).unwrap();
        let started = Instant::now();
        // The broker may close before it has read everything: a failed write is fine.
        let sent = conn.send_raw(&frame);
        assert!(
            sent.is_err() || conn.closed_by_peer(),
            "{backend}: connection closed"
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{backend}: closed after {took:?}"
        );
        let during = served.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        other.join().unwrap();
        assert!(
            served.load(Ordering::Relaxed) > during,
            "{backend}: served after"
        );
        let mut after = KafkaConn::connect(addr).unwrap();
        assert_eq!(api_versions(&mut after).unwrap().error_code, 0);
        let peak_kib = proc_status_kib(broker.pid(), "VmHWM:");
        assert!(
            peak_kib < 1 << 20,
            "{backend}: the broker's peak RSS reached {peak_kib} KiB"
        );
        eprintln!("{backend}: refused in {took:?}; broker peak RSS {peak_kib} KiB");
    }
}

#[test]
fn queued_request_bytes_stay_under_the_cap() {
    const CAP: u64 = 4 << 20;
    const CONNECTIONS: usize = 16;
    const REQUESTS: usize = 3;
    for backend in backends_under_test() {
        let (_dir, broker) = start(
            "queued",
            backend,
            &format!("queued_max_request_bytes = {CAP}\n"),
        );
        let admin = broker.admin_addr();
        assert_eq!(gauge(&admin, "runnel_queued_request_bytes_cap"), CAP);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_static_str("queued"));
        topic.num_partitions = 4;
        topic.replication_factor = 1;
        let mut create = CreateTopicsRequest::default();
        create.topics = vec![topic];
        let created: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create).unwrap();
        assert_eq!(created.topics[0].error_code, 0);

        // Each request is ~900 kB (under the default max.message.bytes): 16 connections at
        // once would queue 14 MB.
        let mut builder = BatchBuilder::new();
        builder.push(&Record {
            value: Some(vec![9; 900_000]),
            ..Default::default()
        });
        let batch = builder.build();
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                let (addr, batch) = (broker.addr, batch.clone());
                std::thread::spawn(move || {
                    let mut conn = KafkaConn::connect(addr).unwrap();
                    for _ in 0..REQUESTS {
                        let mut partition = PartitionProduceData::default();
                        partition.index = (i % 4) as i32;
                        partition.records = Some(batch.clone().into());
                        let mut data = TopicProduceData::default();
                        data.name = TopicName(StrBytes::from_static_str("queued"));
                        data.partition_data = vec![partition];
                        let mut produce = ProduceRequest::default();
                        produce.acks = 1;
                        produce.timeout_ms = 30_000;
                        produce.topic_data = vec![data];
                        let response: ProduceResponse =
                            conn.call(ApiKey::Produce, 9, &produce).unwrap();
                        let partition = &response.responses[0].partition_responses[0];
                        assert_eq!(partition.error_code, 0);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("every request is answered");
        }
        let peak = gauge(&admin, "runnel_queued_request_bytes_peak");
        assert!(peak <= CAP, "{backend}: {peak} bytes queued, over the cap");
        assert!(peak > 900_000, "{backend}: requests were queued ({peak})");
        assert_eq!(gauge(&admin, "runnel_queued_request_bytes"), 0);
        eprintln!("{backend}: peak queued request bytes {peak} of {CAP}");
    }
}

#[test]
fn idle_connections_are_closed() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("idle", backend, "connections_max_idle_ms = 500\n");
        let addr = broker.addr;
        let idle = std::thread::spawn(move || {
            let mut conn = KafkaConn::connect(addr).unwrap();
            let connected = Instant::now();
            assert!(conn.closed_by_peer(), "the idle connection is closed");
            connected.elapsed()
        });
        let mut active = KafkaConn::connect(addr).unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            assert_eq!(api_versions(&mut active).unwrap().error_code, 0);
            std::thread::sleep(Duration::from_millis(100));
        }
        let idle_for = idle.join().unwrap();
        assert!(
            (Duration::from_millis(450)..Duration::from_secs(3)).contains(&idle_for),
            "{backend}: idle connection closed after {idle_for:?}"
        );
        // The active connection outlived it.
        assert_eq!(api_versions(&mut active).unwrap().error_code, 0);
    }
}

#[test]
fn connections_per_ip_are_limited() {
    for backend in backends_under_test() {
        let (_dir, mut broker) = start("per-ip", backend, "max_connections_per_ip = 3\n");
        let mut open: Vec<KafkaConn> = (0..3)
            .map(|_| {
                let mut conn = KafkaConn::connect(broker.addr).unwrap();
                assert_eq!(api_versions(&mut conn).unwrap().error_code, 0);
                conn
            })
            .collect();
        let mut fourth = KafkaConn::connect(broker.addr).unwrap();
        let refused_at = Instant::now();
        assert!(fourth.closed_by_peer(), "{backend}: the 4th is closed");
        assert!(refused_at.elapsed() < Duration::from_secs(2));
        broker
            .wait_for_log("max_connections_per_ip reached", Duration::from_secs(5))
            .unwrap();
        for conn in &mut open {
            assert_eq!(api_versions(conn).unwrap().error_code, 0, "{backend}");
        }
        drop(open.pop());
        // Once the broker has seen the close, a new connection is accepted.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut conn = KafkaConn::connect(broker.addr).unwrap();
            if api_versions(&mut conn).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: no room after a close"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn warnings_for_bad_connections_are_rate_limited() {
    const BAD: usize = 200;
    for backend in backends_under_test() {
        let (_dir, mut broker) = start("log-limit", backend, "");
        // An unknown API key: each connection is closed with a warning.
        let mut frame = 10i32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        let send_bad = || {
            let mut conn = KafkaConn::connect(broker.addr).unwrap();
            conn.send_raw(&frame).unwrap();
            assert!(conn.closed_by_peer());
        };
        for _ in 0..BAD {
            send_bad();
        }
        // A second later the next one is logged, with the count held back.
        std::thread::sleep(Duration::from_millis(1100));
        send_bad();
        drain_log(&mut broker, Duration::from_millis(500));
        let warnings: Vec<&String> = broker
            .log
            .iter()
            .filter(|l| l.contains("WARN") && l.contains("closing connection"))
            .collect();
        assert!(
            (2..=6).contains(&warnings.len()),
            "{backend}: {} warnings: {warnings:#?}",
            warnings.len()
        );
        let suppressed: usize = warnings
            .iter()
            .filter_map(|l| l.split("suppressed=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(
            warnings.len() + suppressed,
            BAD + 1,
            "{backend}: every bad connection is logged or counted: {warnings:#?}"
        );
        // The broker still serves.
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(api_versions(&mut conn).unwrap().error_code, 0);
    }
}
