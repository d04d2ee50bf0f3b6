//! The `runnel` binary as a process: start-up, backend choice, listeners, signals, data dir.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::{backends_under_test, broker_binary, Broker, TempDir};

#[test]
fn starts_on_each_backend_accepts_and_shuts_down_cleanly_on_sigterm() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("start-{backend}"));
        let data = dir.path().join("data");
        let mut broker = Broker::start(&[
            "--io-backend",
            backend,
            "--cores",
            "2",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .unwrap();
        let expected = if backend == "uring" {
            "backend=io_uring"
        } else {
            "backend=epoll"
        };
        let line = broker
            .wait_for_log("runnel listening on", Duration::from_secs(1))
            .unwrap();
        assert!(line.contains(expected), "{line}");
        assert!(line.contains("shards=2"), "{line}");
        assert!(data.join(".lock").exists(), "data dir created and locked");

        // Every shard accepts and speaks Kafka: many connections all get an ApiVersions answer.
        for _ in 0..20 {
            let mut conn = KafkaConn::connect(broker.addr).unwrap();
            let response: ApiVersionsResponse = conn
                .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .unwrap();
            assert_eq!(response.error_code, 0);
        }

        broker.signal(libc::SIGTERM);
        let status = broker.wait_exit(Duration::from_secs(15)).unwrap();
        assert!(status.success(), "{status:?}\n{}", broker.log.join("\n"));
        broker
            .wait_for_log("clean shutdown complete", Duration::from_secs(1))
            .unwrap();
        assert!(TcpStream::connect(broker.addr).is_err(), "port released");
    }
}

/// Runs the broker with `args`, checks that it refuses to start, and returns what it logged.
fn refusal(args: &[&str]) -> String {
    let out = Command::new(broker_binary()).args(args).output().unwrap();
    assert!(!out.status.success(), "broker started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let dir = TempDir::new("sigint");
    let mut broker =
        Broker::start(&["--cores", "1", "--data-dir", dir.path().to_str().unwrap()]).unwrap();
    broker.signal(libc::SIGINT);
    assert!(broker.wait_exit(Duration::from_secs(15)).unwrap().success());
}

#[test]
fn second_data_dir_user_is_refused() {
    let dir = TempDir::new("locked");
    let data = dir.path().to_str().unwrap();
    let _first = Broker::start(&["--cores", "1", "--data-dir", data]).unwrap();
    let stderr = refusal(&[
        "--listen",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--data-dir",
        data,
    ]);
    assert!(stderr.contains("in use by another broker"), "{stderr}");
}

#[test]
fn busy_port_is_reported_before_start() {
    let dir = TempDir::new("busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = refusal(&[
        "--listen",
        &addr,
        "--cores",
        "1",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn bad_config_is_refused_with_the_setting_named() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.path().join("runnel.toml");
    std::fs::write(&cfg, "[io]\nbackend = \"kqueue\"\n").unwrap();
    let stderr = refusal(&["--config", cfg.to_str().unwrap()]);
    assert!(stderr.contains("io.backend"), "{stderr}");

    std::fs::write(&cfg, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let stderr = refusal(&["--config", cfg.to_str().unwrap()]);
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn config_file_settings_apply_and_flags_override_them() {
    let dir = TempDir::new("cfg");
    let cfg = dir.path().join("runnel.toml");
    let data = dir.path().join("from-file");
    std::fs::write(
        &cfg,
        format!(
            "cores = 1\ndata_dir = {:?}\n[io]\nbackend = \"epoll\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut broker = Broker::start(&["--config", cfg.to_str().unwrap()]).unwrap();
    let line = broker
        .wait_for_log("runnel listening on", Duration::from_secs(1))
        .unwrap();
    assert!(
        line.contains("backend=epoll") && line.contains("shards=1"),
        "{line}"
    );
    assert!(data.join(".lock").exists());
    drop(broker);

    let mut broker = Broker::start(&["--config", cfg.to_str().unwrap(), "--cores", "2"]).unwrap();
    let line = broker
        .wait_for_log("runnel listening on", Duration::from_secs(1))
        .unwrap();
    assert!(line.contains("shards=2"), "{line}");
}
