//! `runnelctl log dump|verify` on the data a real broker wrote and then left at SIGTERM, and
//! the same with damage (a flipped byte in a `.log`, a bad `.index` entry), which verify must
//! name by file and position; `runnelctl tune check` prints every item and its JSON parses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{create, produce, records};
use runnel_tests::runnelctl::{fails_with_stdout as fails, ok};
use runnel_tests::{backends_under_test, workspace_binary, Broker, TempDir};

fn runnelctl(args: &[&str]) -> Output {
    Command::new(workspace_binary("runnelctl", "runnel-tools"))
        .args(args)
        .output()
        .expect("runnelctl runs")
}

const BATCHES: usize = 20;
const PER_BATCH: usize = 50;

/// A broker writes `BATCHES` batches to `ops-0` and is stopped with SIGTERM; returns the
/// data dir.
fn stopped_broker_data(dir: &TempDir) -> PathBuf {
    let backend = backends_under_test()[0];
    let mut broker = Broker::start_in(dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).expect("connect");
    assert_eq!(create(&mut conn, "ops", 1, &[], false).0, 0);
    for i in 0..BATCHES {
        let (error, base) = produce(
            &mut conn,
            "ops",
            0,
            -1,
            records(&format!("b{i}"), PER_BATCH, 1_700_000_000_000 + i as i64),
        );
        assert_eq!((error, base), (0, (i * PER_BATCH) as i64));
    }
    // A second topic rolls a segment every few batches.
    assert_eq!(
        create(&mut conn, "rolled", 1, &[("segment.bytes", "8192")], false).0,
        0
    );
    for i in 0..BATCHES {
        let batch = records(&format!("r{i}"), PER_BATCH, 1_700_000_000_000);
        assert_eq!(produce(&mut conn, "rolled", 0, -1, batch).0, 0);
    }
    drop(conn);
    broker.signal(libc::SIGTERM);
    let status = broker.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
    dir.path().join("data")
}

fn segment(data: &Path, suffix: &str) -> PathBuf {
    data.join("ops-0")
        .join(format!("{:020}.{suffix}", 0))
        .to_path_buf()
}

/// Runs `f` on a copy of `file`'s bytes, writes them back, and returns a guard restoring them.
fn damage(file: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let original = std::fs::read(file).expect("read");
    let mut bytes = original.clone();
    f(&mut bytes);
    std::fs::write(file, &bytes).expect("write");
    original
}

#[test]
fn verify_and_dump_a_stopped_brokers_log_and_name_the_damage() {
    let dir = TempDir::new("ctl-ops-log");
    let data = stopped_broker_data(&dir);
    let data_str = data.to_str().unwrap();
    let log = segment(&data, "log");
    let index = segment(&data, "index");

    // Healthy: verify passes on the data dir, the partition dir and the segment file.
    let summary = ok(runnelctl(&["log", "verify", data_str]));
    let row = summary
        .lines()
        .find(|l| l.starts_with("ops-0 "))
        .unwrap_or_else(|| panic!("a row for ops-0: {summary}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let last = BATCHES * PER_BATCH - 1;
    assert_eq!(
        cells[1..4],
        ["1", &BATCHES.to_string(), &format!("0..{last}")]
    );
    assert_eq!(cells.last(), Some(&"0"), "no problems: {row}");
    ok(runnelctl(&[
        "log",
        "verify",
        data.join("ops-0").to_str().unwrap(),
    ]));
    ok(runnelctl(&["log", "verify", log.to_str().unwrap()]));
    let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(&[
        "--output", "json", "log", "verify", data_str,
    ])))
    .expect("JSON");
    assert_eq!(json["ok"], true);

    // Dump: one line per batch, CRCs ok, index entries at batch boundaries, records.
    let dump = ok(runnelctl(&[
        "log",
        "dump",
        "--indexes",
        "--records",
        log.to_str().unwrap(),
    ]));
    let batches: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("position: "))
        .collect();
    assert_eq!(batches.len(), BATCHES, "{dump}");
    assert!(
        batches[0].contains("offsets: 0..49 count: 50"),
        "{}",
        batches[0]
    );
    assert!(batches[1].starts_with("position: "), "{}", batches[1]);
    assert!(batches.iter().all(|b| b.ends_with(" ok")), "{dump}");
    assert!(dump.contains("producer: -1 epoch: -1 seq: -1"), "{dump}");
    assert!(
        dump.contains("key: \"b3-key-7\" value: \"b3-value-7\""),
        "{dump}"
    );
    let entries: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("index entry "))
        .collect();
    assert!(entries.len() > 1, "several index entries: {dump}");
    assert!(entries.iter().all(|e| e.ends_with(" ok")), "{dump}");
    assert!(dump.contains("timeindex entry 0: "), "{dump}");
    let lines = ok(runnelctl(&[
        "--output",
        "json",
        "log",
        "dump",
        "--indexes",
        "--records",
        data_str,
    ]));
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let kinds = |kind: &str| objects.iter().filter(|o| o["type"] == kind).count();
    assert!(kinds("batch") >= BATCHES);
    assert!(kinds("record") >= BATCHES * PER_BATCH);
    assert!(objects
        .iter()
        .filter(|o| o["type"] == "batch")
        .all(|o| o["crc_ok"] == true));

    // A flipped byte inside the third batch's records: verify names the file and the batch's
    // position; dump shows the CRC as BAD.
    let third: u64 = batches[2]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let original = damage(&log, |b| b[third as usize + 80] ^= 0x01);
    let (stdout, stderr) = fails(runnelctl(&["log", "verify", data_str]));
    let log_name = log.display().to_string();
    assert!(
        stderr.contains(&format!("{log_name} at position {third}: CRC mismatch")),
        "{stderr}"
    );
    assert!(stdout.contains("CORRUPT "), "{stdout}");
    let dump = ok(runnelctl(&["log", "dump", log.to_str().unwrap()]));
    assert_eq!(dump.matches(" BAD").count(), 1, "{dump}");
    std::fs::write(&log, original).unwrap();
    ok(runnelctl(&["log", "verify", data_str]));

    // An index entry pointing inside a batch.
    let original = damage(&index, |b| {
        let pos = u32::from_be_bytes(b[12..16].try_into().unwrap()) + 3;
        b[12..16].copy_from_slice(&pos.to_be_bytes());
    });
    let (_, stderr) = fails(runnelctl(&["log", "verify", data_str]));
    let index_name = index.display().to_string();
    assert!(
        stderr.contains(&format!("{index_name} at entry 1: position ")),
        "{stderr}"
    );
    assert!(stderr.contains("is not the start of a batch"), "{stderr}");
    std::fs::write(&index, original).unwrap();

    // A torn tail: half a batch appended.
    let original = damage(&log, |b| {
        let head = b[..40].to_vec();
        b.extend_from_slice(&head);
    });
    let len = original.len();
    let (_, stderr) = fails(runnelctl(&["log", "verify", log.to_str().unwrap()]));
    assert!(
        stderr.contains(&format!("at position {len}: ")) && stderr.contains("torn"),
        "{stderr}"
    );
    std::fs::write(&log, original).unwrap();
}

#[test]
fn verify_checks_offsets_continue_across_segments() {
    let dir = TempDir::new("ctl-ops-segments");
    let data = stopped_broker_data(&dir);
    let partition = data.join("rolled-0");
    let summary = ok(runnelctl(&["log", "verify", partition.to_str().unwrap()]));
    let row: Vec<&str> = summary.lines().nth(1).unwrap().split_whitespace().collect();
    let segments: usize = row[1].parse().unwrap();
    assert!(segments >= 3, "several segments: {summary}");
    let last = BATCHES * PER_BATCH - 1;
    assert_eq!(row[3], format!("0..{last}"), "{summary}");
    // Remove a middle segment: the next one no longer continues where the previous ended.
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    std::fs::remove_file(&logs[1]).unwrap();
    let (_, stderr) = fails(runnelctl(&["log", "verify", partition.to_str().unwrap()]));
    assert!(
        stderr.contains(&format!(
            "{} at position 0: segment starts at offset",
            logs[2].display()
        )) && stderr.contains("but the previous segment ends before offset"),
        "{stderr}"
    );
}

#[test]
fn log_tools_refuse_bad_paths_in_one_line() {
    let dir = TempDir::new("ctl-ops-paths");
    let (_, e) = fails(runnelctl(&["log", "verify", "/nonexistent/runnel"]));
    assert!(e.contains("cannot read /nonexistent/runnel"), "{e}");
    let (_, e) = fails(runnelctl(&["log", "dump", dir.path().to_str().unwrap()]));
    assert!(e.contains("no segments"), "{e}");
    let junk = dir.path().join("00000000000000000000.log");
    std::fs::write(&junk, b"not a batch at all, just text of some length").unwrap();
    let (stdout, e) = fails(runnelctl(&["log", "verify", junk.to_str().unwrap()]));
    assert!(e.contains("at position 0: "), "{e} {stdout}");
    // Dump shows what it can and stops there; it is not a check, so it succeeds.
    let dump = ok(runnelctl(&["log", "dump", junk.to_str().unwrap()]));
    assert!(dump.contains("position: 0 STOP: "), "{dump}");
    for args in [
        &["log", "--help"][..],
        &["log", "verify", "--help"],
        &["tune", "check", "--help"],
    ] {
        ok(runnelctl(args));
    }
}

#[test]
fn tune_check_reports_every_item_and_json_parses() {
    const ITEMS: [&str; 16] = [
        "kernel",
        "io_uring",
        "cores",
        "smt",
        "numa",
        "nic irq affinity",
        "transparent hugepages",
        "vm.dirty_ratio",
        "vm.dirty_expire_centisecs",
        "unbound workqueues",
        "free page reporting",
        "real-time shards",
        "data dir file system",
        "fs.pipe-max-size",
        "open files",
        "page size",
    ];
    let dir = TempDir::new("ctl-ops-tune");
    let data = dir.path().to_str().unwrap();
    for profile in ["low-latency", "realtime", "throughput", "durable"] {
        let table = ok(runnelctl(&[
            "tune",
            "check",
            "--profile",
            profile,
            "--data-dir",
            data,
        ]));
        assert!(
            table.starts_with(&format!("profile: {profile}\n")),
            "{table}"
        );
        for item in ITEMS {
            assert!(
                table.lines().any(|l| l.starts_with(item)),
                "{item} missing: {table}"
            );
        }
        let json: serde_json::Value = serde_json::from_str(&ok(runnelctl(&[
            "--output",
            "json",
            "tune",
            "check",
            "--profile",
            profile,
            "--data-dir",
            data,
        ])))
        .expect("JSON");
        let checks = json["checks"].as_array().expect("checks");
        assert_eq!(checks.len(), ITEMS.len());
        // Only `always` waits on the kernel's unbound workqueues, so only durable says why.
        let workqueues = checks
            .iter()
            .find(|c| c["item"] == "unbound workqueues")
            .expect("the workqueue item");
        assert_eq!(
            workqueues["advice"].as_str().unwrap().contains("cpumask"),
            profile == "durable",
            "{workqueues}"
        );
        for check in checks {
            assert!(["ok", "warn", "info"].contains(&check["status"].as_str().unwrap()));
        }
        // --strict fails exactly when something warns.
        let strict = runnelctl(&[
            "tune",
            "check",
            "--profile",
            profile,
            "--data-dir",
            data,
            "--strict",
        ]);
        if json["warnings"] == 0 {
            assert!(strict.status.success());
        } else {
            let (_, e) = fails(strict);
            assert!(e.contains("warning(s) (--strict)"), "{e}");
        }
    }
    let (_, e) = fails(runnelctl(&[
        "tune",
        "check",
        "--profile",
        "no-such-profile",
    ]));
    assert!(e.contains("no profile \"no-such-profile\""), "{e}");
}
