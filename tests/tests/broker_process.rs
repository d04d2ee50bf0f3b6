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

/// `(rt_priority, policy)` of each of `pid`'s threads whose name starts with `prefix`, from
/// /proc (fields 40 and 41 of a thread's stat; policy 0 is normal, 1 SCHED_FIFO).
fn thread_scheduling(pid: u32, prefix: &str) -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the parenthesised name start at field 3.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        found.push((
            fields[40 - 3].parse().unwrap(),
            fields[41 - 3].parse().unwrap(),
        ));
    }
    found
}

/// CAP_SYS_NICE among this process's effective capabilities (root has it unless a container
/// dropped it); the broker it starts inherits them.
fn may_use_sched_fifo() -> bool {
    const CAP_SYS_NICE: u32 = 23;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << CAP_SYS_NICE) != 0
}

#[test]
fn the_realtime_profile_runs_shards_under_sched_fifo_and_serves_kafka() {
    use runnel_tests::requests;
    let dir = TempDir::new("realtime");
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/../tuning/realtime.toml");
    let data = dir.path().join("data");
    let args = [
        "--profile",
        profile,
        "--cores",
        "2",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    if !may_use_sched_fifo() {
        // Without the privilege the broker must refuse to start, naming why.
        let stderr = refusal(&[&["--listen", "127.0.0.1:0"], &args[..]].concat());
        assert!(stderr.contains("SCHED_FIFO priority 10"), "{stderr}");
        return;
    }
    let broker = Broker::start(&args).unwrap();
    assert_eq!(
        thread_scheduling(broker.pid(), "runnel-shard-"),
        vec![(10, 1); 2],
        "both shard threads run under SCHED_FIFO 10"
    );
    for other in ["runnel-blocking", "runnel\n"] {
        let threads = thread_scheduling(broker.pid(), other);
        assert!(
            !threads.is_empty() && threads.iter().all(|&t| t == (0, 0)),
            "{other:?} threads keep normal scheduling: {threads:?}"
        );
    }

    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(requests::create(&mut conn, "rt", 2, &[], false).0, 0);
    for partition in 0..2 {
        let (error, base) = requests::produce(
            &mut conn,
            "rt",
            partition,
            -1,
            requests::records("rt", 10, 1_700_000_000_000),
        );
        assert_eq!((error, base), (0, 0));
        let (error, high_watermark, batches) = requests::fetch(&mut conn, "rt", partition, 0, 100);
        assert_eq!((error, high_watermark, batches.len()), (0, 10, 1));
    }
}
