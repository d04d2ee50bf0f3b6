//! `runnel-bench` as scripts run it: every subcommand documents its flags, and a missing or
//! bad flag, an unreadable workload file or an unreachable broker ends in an error message and
//! an exit code (2 for usage errors, 1 for failed measurements), never a panic.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runnel-bench"))
        .args(args)
        .output()
        .expect("runs runnel-bench")
}

/// Exit code `code`, stderr containing `needle`, and no panic.
fn assert_fails(args: &[&str], code: i32, needle: &str) {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

const SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("limits", &["--dir", "--seconds"]),
    (
        "run",
        &[
            "--bootstrap",
            "--workload",
            "--cores",
            "--idle-poll-us",
            "--json",
            "--plots",
        ],
    ),
    ("loopback", &["--seconds"]),
    ("stats", &["--admin"]),
    (
        "rebalance",
        &[
            "--bootstrap",
            "--members",
            "--partitions",
            "--heartbeat-ms",
            "--rounds",
        ],
    ),
    (
        "produce",
        &[
            "--bootstrap",
            "--topic",
            "--seconds",
            "--records-per-batch",
            "--record-bytes",
            "--acks",
            "--in-flight",
        ],
    ),
    (
        "fetch",
        &["--bootstrap", "--topic", "--seconds", "--broker-pid"],
    ),
    (
        "pinned",
        &[
            "--bootstrap",
            "--producers",
            "--consumers",
            "--message-size",
            "--messages-per-batch",
            "--in-flight",
            "--acks",
            "--seconds",
            "--topic-prefix",
            "--topic-config",
            "--broker-pid",
            "--json",
        ],
    ),
];

#[test]
fn every_subcommand_documents_its_flags() {
    let top = bench(&["--help"]);
    assert!(top.status.success());
    let top = String::from_utf8_lossy(&top.stdout);
    for (sub, flags) in SUBCOMMANDS {
        assert!(top.contains(sub), "{sub} missing from --help:\n{top}");
        let out = bench(&[sub, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{sub} --help: {help}");
        for flag in *flags {
            // Each flag on a line of its own, with a description after it.
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{flag} ")))
                .unwrap_or_else(|| panic!("{sub} --help lacks {flag}:\n{help}"));
            assert!(
                line.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2,
                "{sub} {flag} has no description: {line}"
            );
        }
    }
}

#[test]
fn missing_required_flags_are_usage_errors() {
    assert_fails(&[], 2, "Usage");
    assert_fails(&["nonsense"], 2, "unrecognized subcommand");
    assert_fails(&["stats"], 2, "--admin");
    assert_fails(&["run", "--bootstrap", "127.0.0.1:1"], 2, "--workload");
    assert_fails(&["run", "--workload", "w.toml"], 2, "--bootstrap");
    assert_fails(&["rebalance"], 2, "--bootstrap");
    assert_fails(&["produce", "--bootstrap", "127.0.0.1:1"], 2, "--topic");
    assert_fails(&["fetch", "--topic", "t"], 2, "--bootstrap");
    assert_fails(&["pinned", "--producers", "2"], 2, "--bootstrap");
}

#[test]
fn bad_values_are_usage_errors() {
    assert_fails(&["limits", "--seconds", "abc"], 2, "invalid value 'abc'");
    assert_fails(&["loopback", "--seconds", "-3"], 2, "-3");
    let produce = ["produce", "--bootstrap", "127.0.0.1:1", "--topic", "t"];
    for (flag, value) in [
        ("--seconds", "abc"),
        ("--acks", "all"),
        ("--in-flight", "0"),
        ("--record-bytes", "1k"),
    ] {
        let args: Vec<&str> = produce.iter().copied().chain([flag, value]).collect();
        assert_fails(&args, 2, flag);
    }
    assert_fails(
        &[
            "fetch",
            "--bootstrap",
            "b",
            "--topic",
            "t",
            "--broker-pid",
            "me",
        ],
        2,
        "--broker-pid",
    );
    assert_fails(
        &["rebalance", "--bootstrap", "b", "--rounds", "0"],
        2,
        "--rounds",
    );
    // The hand-written parser ignored flags it did not know; a typo is now an error.
    assert_fails(&["limits", "--second", "3"], 2, "unexpected argument");
}

#[test]
fn a_bad_workload_file_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("runnel-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let invalid = dir.join("invalid.toml");
    std::fs::write(
        &invalid,
        "name = \"x\"\nmessage_size = 4\nduration_seconds = 1\n",
    )
    .unwrap();
    let unparsable = dir.join("unparsable.toml");
    std::fs::write(&unparsable, "name = [\n").unwrap();
    // The workload is read before anything connects, so no broker is needed.
    for (file, needle) in [
        (&missing, "cannot read"),
        (&invalid, "message_size must be at least"),
        (&unparsable, "unparsable.toml"),
    ] {
        let file = file.to_str().unwrap();
        assert_fails(
            &["run", "--bootstrap", "127.0.0.1:1", "--workload", file],
            2,
            needle,
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_broker_is_an_error_not_a_panic() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    assert_fails(
        &[
            "produce",
            "--bootstrap",
            &addr,
            "--topic",
            "t",
            "--seconds",
            "1",
        ],
        1,
        "connecting to",
    );
    assert_fails(
        &["pinned", "--bootstrap", &addr, "--seconds", "1"],
        1,
        "connecting to",
    );
    assert_fails(
        &["fetch", "--bootstrap", &addr, "--topic", "t"],
        1,
        "connecting to",
    );
    assert_fails(&["rebalance", "--bootstrap", &addr], 1, "connecting to");
    assert_fails(&["stats", "--admin", &addr], 1, &addr);
}

#[test]
fn a_wrong_broker_pid_is_an_error_not_a_panic() {
    // Any listener will do: the pid is checked before the first request.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert_fails(
        &[
            "fetch",
            "--bootstrap",
            &addr,
            "--topic",
            "t",
            "--broker-pid",
            "4294967295",
        ],
        1,
        "--broker-pid 4294967295",
    );
    // `pinned` checks it before it creates its topics (this listener speaks no Kafka).
    assert_fails(
        &["pinned", "--bootstrap", &addr, "--broker-pid", "4294967295"],
        1,
        "--broker-pid 4294967295",
    );
}
