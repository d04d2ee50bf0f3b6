//! `runnelctl` against a real broker: every command, in table and JSON output, and its errors
//! (one line on stderr, exit code 1, never a panic).

use std::process::Output;

use runnel_tests::runnelctl::{against as runnelctl, command, fails, ok};
use runnel_tests::{backends_under_test, Broker, TempDir};

#[test]
fn cluster_info_lists_the_broker_as_controller() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("runnelctl-cluster");
    let broker = Broker::start_in(&dir, backend, &[]);
    let table = ok(runnelctl(&broker, &["cluster", "info"]));
    assert!(table.starts_with("cluster id: "), "{table}");
    let port = broker.addr.port().to_string();
    let row = table.lines().nth(2).expect("a broker row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["0", "127.0.0.1", port.as_str(), "controller"]);
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(
        &broker,
        &["--output", "json", "cluster", "info"],
    )))
    .expect("JSON");
    assert_eq!(json["controller"], 0);
    assert_eq!(json["brokers"][0]["port"], broker.addr.port());
}

/// `runnelctl cluster info` through `bootstrap`, giving up on a broker after 2 s.
fn cluster_info_via(bootstrap: &str) -> Output {
    command()
        .args([
            "--bootstrap",
            bootstrap,
            "--timeout",
            "2",
            "cluster",
            "info",
        ])
        .output()
        .expect("runnelctl runs")
}

#[test]
fn an_unreachable_broker_is_one_line_and_exit_code_1() {
    let error = fails(cluster_info_via("127.0.0.1:1"));
    assert!(error.contains("cannot connect to 127.0.0.1:1"), "{error}");
}

/// `--bootstrap` takes a list, as Kafka's tools do: a broker that is down is skipped.
#[test]
fn a_bootstrap_list_is_tried_in_order() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("runnelctl-bootstrap-list");
    let broker = Broker::start_in(&dir, backend, &[]);
    let table = ok(cluster_info_via(&format!("127.0.0.1:1,{}", broker.addr)));
    assert!(table.starts_with("cluster id: "), "{table}");
    let error = fails(cluster_info_via("127.0.0.1:1,127.0.0.1:2"));
    assert!(
        error.contains("127.0.0.1:1") && error.contains("127.0.0.1:2"),
        "{error}"
    );
}

#[test]
fn probe_names_this_machines_backend() {
    let output = command().arg("probe").output().expect("runnelctl runs");
    let text = ok(output);
    assert!(
        text.contains(&format!("arch: {}", std::env::consts::ARCH)),
        "{text}"
    );
    let backend = text
        .lines()
        .find_map(|l| l.strip_prefix("auto backend: "))
        .expect("an auto backend line");
    assert!(["io_uring", "epoll"].contains(&backend), "{text}");
}

#[test]
fn usage_mistakes_are_one_line_and_exit_code_2() {
    for args in [
        &["topic", "create"][..],
        &["topic", "create", "x", "--partitions", "abc"],
        &["--bogus"],
    ] {
        let output = command().args(args).output().expect("runnelctl runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("runnelctl: ") && stderr.contains("--help"),
            "{stderr}"
        );
    }
}
