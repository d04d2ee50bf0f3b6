//! `runnelctl produce` / `consume` / `group` against a real broker: lines in and records out
//! with every --from form and --format, consuming in a group, group list / describe (lag) /
//! reset-offsets (every --to form, --dry-run, refused while the group has members) / seek /
//! delete, and reset offsets honored by librdkafka's own consumer.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::runnelctl::{against as runnelctl, fails, ok, with_stdin as runnelctl_with};
use runnel_tests::{backends_under_test, requests, workspace_binary, Broker, TempDir};
use serde_json::Value;

fn json(output: Output) -> Value {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let (code, message) = requests::create(&mut conn, topic, partitions, &[], false);
    assert_eq!(code, 0, "create {topic}: {message:?}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `ms` as ISO 8601 in UTC (civil_from_days, Howard Hinnant's algorithm).
fn iso8601(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Lines `k{i}:v{i}` for i in `range`.
fn lines(range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .map(|i| format!("k{i}:v{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Values consumed (one a line, the default format) with `extra` arguments.
fn consume(broker: &Broker, topic: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["consume", topic];
    args.extend_from_slice(extra);
    ok(runnelctl(broker, &args))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("v{i}")).collect()
}

#[test]
fn produced_lines_come_back_from_every_start_and_in_every_format() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("runnelctl-data-lines");
    let broker = Broker::start_in(&dir, backend, &[]);
    create_topic(&broker, "lines", 1);

    let before = now_ms();
    let table = ok(runnelctl_with(
        &broker,
        &[
            "produce",
            "lines",
            "--key-separator",
            ":",
            "--header",
            "src=test",
            "-H",
            "n=1",
        ],
        &lines(0..3),
    ));
    assert!(table.starts_with("3 records written to lines\n"), "{table}");
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row, ["0", "3", "0", "2"], "{table}");
    std::thread::sleep(Duration::from_millis(20));
    let middle = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    let produced = json(runnelctl_with(
        &broker,
        &[
            "--output", "json", "produce", "lines", "-K", ":", "-H", "src=test", "-H", "n=1",
        ],
        &lines(3..6),
    ));
    assert_eq!(produced["records"], 3, "{produced}");
    assert_eq!(produced["partitions"][0]["first_offset"], 3, "{produced}");
    assert_eq!(produced["partitions"][0]["last_offset"], 5, "{produced}");
    let after = now_ms();

    // Every --from form (and --offset / --timestamp), exiting at the end.
    assert_eq!(consume(&broker, "lines", &["-e"]), values(0..6));
    assert_eq!(
        consume(&broker, "lines", &["--from", "earliest", "-e"]),
        values(0..6)
    );
    assert_eq!(
        consume(&broker, "lines", &["--from", "latest", "-e"]),
        values(0..0)
    );
    assert_eq!(
        consume(&broker, "lines", &["--from", "4", "-e"]),
        values(4..6)
    );
    assert_eq!(
        consume(&broker, "lines", &["--from", "-2", "-e"]),
        values(4..6)
    );
    let at_middle = format!("@{middle}");
    assert_eq!(
        consume(&broker, "lines", &["--from", &at_middle, "-e"]),
        values(3..6)
    );
    assert_eq!(
        consume(&broker, "lines", &["--offset", "1", "-e"]),
        values(1..6)
    );
    let middle_ms = middle.to_string();
    assert_eq!(
        consume(&broker, "lines", &["--timestamp", &middle_ms, "-e"]),
        values(3..6)
    );
    let future = format!("@{}", after + 3_600_000);
    assert_eq!(
        consume(&broker, "lines", &["--from", &future, "-e"]),
        values(0..0)
    );
    // --num stops without --exit-at-end.
    assert_eq!(consume(&broker, "lines", &["--num", "2"]), values(0..2));
    assert_eq!(
        consume(&broker, "lines", &["--from", "3", "-n", "1"]),
        values(3..4)
    );

    // --format: every field and escape.
    let formatted = consume(
        &broker,
        "lines",
        &["-e", "--format", "%t|%p|%o|%k|%s|%h|%K|%S|100%%\\t%T\\n"],
    );
    assert_eq!(formatted.len(), 6, "{formatted:?}");
    for (i, line) in formatted.iter().enumerate() {
        let (fields, timestamp) = line.split_once('\t').expect("a tab");
        assert_eq!(
            fields,
            format!("lines|0|{i}|k{i}|v{i}|src=test,n=1|2|2|100%")
        );
        let timestamp: i64 = timestamp.parse().unwrap();
        assert!(
            (before..=after).contains(&timestamp),
            "{timestamp} {before} {after}"
        );
    }
    // JSON lines.
    let out = ok(runnelctl(
        &broker,
        &["--output", "json", "consume", "lines", "--from", "5", "-e"],
    ));
    let record: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(record["topic"], "lines");
    assert_eq!(record["offset"], 5);
    assert_eq!(record["key"], "k5");
    assert_eq!(record["value"], "v5");
    assert_eq!(record["headers"][0]["key"], "src");
    assert_eq!(record["headers"][1]["value"], "1");

    // Lines without the separator have no key; no separator at all: the line is the value.
    ok(runnelctl_with(
        &broker,
        &["produce", "lines", "-K", ":"],
        b"plain\n",
    ));
    ok(runnelctl_with(&broker, &["produce", "lines"], b"a:b\n"));
    assert_eq!(
        consume(
            &broker,
            "lines",
            &["--from", "6", "-e", "-f", "%K %k|%s\\n"]
        ),
        ["-1 |plain", "-1 |a:b"]
    );

    // A partition, every codec and acks value.
    create_topic(&broker, "three", 3);
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let acks = ["all", "1", "-1", "1", "all"][i];
        let input = format!("{codec}-a\n{codec}-b\n");
        ok(runnelctl_with(
            &broker,
            &[
                "produce",
                "three",
                "--partition",
                "1",
                "--compression",
                codec,
                "--acks",
                acks,
            ],
            input.as_bytes(),
        ));
    }
    let table = ok(runnelctl_with(
        &broker,
        &["produce", "three", "--partition", "2", "--acks", "0"],
        b"fire-and-forget\n",
    ));
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row, ["2", "1", "-", "-"], "{table}");
    let got = consume(&broker, "three", &["--partition", "1", "-e"]);
    assert_eq!(got.len(), 10, "{got:?}");
    assert_eq!(got[2], "gzip-a");
    assert_eq!(got[9], "zstd-b");
    assert_eq!(
        consume(&broker, "three", &["--partition", "0", "-e"]),
        values(0..0)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = consume(&broker, "three", &["-e", "-f", "%p:%s\\n"]);
        if all.len() == 11 {
            assert!(all.contains(&"2:fire-and-forget".to_owned()), "{all:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=0 record never arrived: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Errors: one line, exit code 1.
    assert!(
        fails(runnelctl(&broker, &["consume", "nosuch", "-e"])).contains("unknown topic nosuch")
    );
    assert!(
        fails(runnelctl(&broker, &["consume", "lines", "-p", "7", "-e"]))
            .contains("no partition 7")
    );
    assert!(fails(runnelctl(&broker, &["produce", "three", "-p", "3"])).contains("no partition 3"));
    assert!(fails(runnelctl(&broker, &["consume", "lines", "--from", "soon"])).contains("--from"));
    assert!(fails(runnelctl(&broker, &["consume", "lines", "-f", "%q"])).contains("%q"));
    assert!(
        fails(runnelctl(&broker, &["produce", "lines", "-H", "novalue"])).contains("KEY=VALUE")
    );
    assert!(fails(runnelctl(
        &broker,
        &["consume", "lines", "-G", "g", "--from", "3"]
    ))
    .contains("reset-offsets"));
}

/// The group's committed offset of `topic` partition 0 (`None` when it has none).
fn committed(broker: &Broker, group: &str, topic: &str) -> Option<i64> {
    let described = json(runnelctl(
        broker,
        &["--output", "json", "group", "describe", group],
    ));
    described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == 0)
        .and_then(|p| p["committed_offset"].as_i64())
}

/// Resets `group` on `topic` with `to`; returns (old, new) of partition 0 as printed.
fn reset(broker: &Broker, group: &str, topic: &str, to: &[&str]) -> (Option<i64>, i64) {
    let mut args = vec![
        "--output",
        "json",
        "group",
        "reset-offsets",
        group,
        "--topic",
        topic,
    ];
    args.extend_from_slice(to);
    let result = json(runnelctl(broker, &args));
    let partition = &result["partitions"][0];
    assert_eq!(partition["partition"], 0, "{result}");
    (
        partition["old_offset"].as_i64(),
        partition["new_offset"].as_i64().unwrap(),
    )
}

/// The first record librdkafka's own consumer gets in `group` (it commits nothing, and
/// would start at the earliest offset if the group had none).
fn first_seen_by_librdkafka(broker: &Broker, group: &str, topic: &str) -> (i64, String) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr.to_string())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value = String::from_utf8_lossy(message.payload().unwrap()).into_owned();
                return (message.offset(), value);
            }
            Some(Err(e)) => eprintln!("librdkafka: {e}"),
            None => {}
        }
    }
    panic!("librdkafka's consumer got nothing in group {group}");
}

#[test]
fn groups_consume_describe_reset_seek_and_delete() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new("runnelctl-data-groups");
    let broker = Broker::start_in(&dir, backend, &[]);
    create_topic(&broker, "events", 1);
    ok(runnelctl_with(
        &broker,
        &["produce", "events", "-K", ":"],
        &lines(0..5),
    ));
    std::thread::sleep(Duration::from_millis(20));
    let middle = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    ok(runnelctl_with(
        &broker,
        &["produce", "events", "-K", ":"],
        &lines(5..10),
    ));

    // Consume part in a group: it commits exactly what it printed, and leaves.
    assert_eq!(
        consume(&broker, "events", &["--group", "g", "--num", "4"]),
        values(0..4)
    );
    let listed = json(runnelctl(&broker, &["--output", "json", "group", "list"]));
    let g = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "g")
        .unwrap_or_else(|| panic!("g not listed: {listed}"));
    assert_eq!(g["state"], "Empty");
    assert_eq!(g["protocol_type"], "consumer");
    let table = ok(runnelctl(&broker, &["group", "list"]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["g", "Empty", "consumer"])),
        "{table}"
    );

    let described = json(runnelctl(
        &broker,
        &["--output", "json", "group", "describe", "g"],
    ));
    assert_eq!(described["state"], "Empty", "{described}");
    assert_eq!(described["total_lag"], 6, "{described}");
    assert_eq!(described["partitions"][0]["committed_offset"], 4);
    assert_eq!(described["partitions"][0]["log_end_offset"], 10);
    assert_eq!(described["partitions"][0]["lag"], 6);
    let table = ok(runnelctl(&broker, &["group", "describe", "g"]));
    assert!(table.starts_with("group g: Empty, 0 member(s)"), "{table}");
    assert!(table.contains("total lag 6"), "{table}");
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row[..5], ["events", "0", "4", "10", "6"], "{table}");
    // Consuming on continues from the commit.
    assert_eq!(
        consume(&broker, "events", &["-G", "g", "-n", "2"]),
        values(4..6)
    );
    assert_eq!(committed(&broker, "g", "events"), Some(6));

    // A group with a member: described with its assignment; its offsets cannot be reset.
    let bootstrap = broker.addr.to_string();
    let member = Command::new(workspace_binary("runnelctl", "runnel-tools"))
        .args([
            "--bootstrap",
            &bootstrap,
            "consume",
            "events",
            "-G",
            "busy",
            "-n",
            "12",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        // Not there yet ("does not exist"), or still forming.
        let output = runnelctl(&broker, &["--output", "json", "group", "describe", "busy"]);
        let described = match output.status.success() {
            true => json(output),
            false => Value::Null,
        };
        if described["state"] == "Stable" {
            break described;
        }
        assert!(
            Instant::now() < deadline,
            "busy never became Stable: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(described["protocol_type"], "consumer", "{described}");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(members[0]["client_id"], "runnelctl");
    assert_eq!(
        members[0]["assignment"][0]["topic"], "events",
        "{described}"
    );
    assert_eq!(
        members[0]["assignment"][0]["partitions"],
        serde_json::json!([0])
    );
    assert_eq!(
        described["partitions"][0]["member_id"], members[0]["member_id"],
        "{described}"
    );
    let refused = fails(runnelctl(
        &broker,
        &[
            "group",
            "reset-offsets",
            "busy",
            "--topic",
            "events",
            "--to-earliest",
        ],
    ));
    assert!(
        refused.contains("busy is Stable with 1 member"),
        "{refused}"
    );
    // Two more records and the member has its 12: it commits, leaves, and the group is Empty.
    ok(runnelctl_with(
        &broker,
        &["produce", "events", "-K", ":"],
        &lines(10..12),
    ));
    let output = member.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().lines().count(),
        12
    );
    assert_eq!(committed(&broker, "busy", "events"), Some(12));
    assert_eq!(
        reset(&broker, "busy", "events", &["--to-earliest"]),
        (Some(12), 0)
    );

    // Every --to form on g (committed 6; the log holds 0..12).
    assert_eq!(
        reset(&broker, "g", "events", &["--to-earliest", "--dry-run"]),
        (Some(6), 0)
    );
    assert_eq!(
        committed(&broker, "g", "events"),
        Some(6),
        "--dry-run changed nothing"
    );
    let table = ok(runnelctl(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--shift-by",
            "-1",
            "--dry-run",
        ],
    ));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["events", "0", "6", "5"], "{table}");
    assert!(table.contains("dry run: nothing committed"), "{table}");
    assert_eq!(
        committed(&broker, "g", "events"),
        Some(6),
        "--dry-run changed nothing"
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--to-earliest"]),
        (Some(6), 0)
    );
    assert_eq!(committed(&broker, "g", "events"), Some(0));
    assert_eq!(
        reset(&broker, "g", "events", &["--to-latest"]),
        (Some(0), 12)
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--shift-by", "-3"]),
        (Some(12), 9)
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--shift-by", "100"]),
        (Some(9), 12)
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--to-offset", "2"]),
        (Some(12), 2)
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--to-offset", "99"]),
        (Some(2), 12)
    );
    let datetime = iso8601(middle);
    assert_eq!(
        reset(&broker, "g", "events", &["--to-datetime", &datetime]),
        (Some(12), 5)
    );
    assert_eq!(committed(&broker, "g", "events"), Some(5));
    assert_eq!(
        reset(
            &broker,
            "g",
            "events",
            &["--to-datetime", "2100-01-01T00:00:00Z"]
        ),
        (Some(5), 12)
    );
    assert_eq!(
        reset(
            &broker,
            "g",
            "events",
            &[
                "--partition",
                "0",
                "--to-datetime",
                "2000-01-01T00:00:00+02:00"
            ]
        ),
        (Some(12), 0)
    );
    // A group that never existed gets offsets too (as in Kafka).
    assert_eq!(reset(&broker, "g", "events", &["--to-offset", "3"]).1, 3);
    assert_eq!(
        reset(&broker, "fresh", "events", &["--to-offset", "4"]),
        (None, 4)
    );
    assert!(fails(runnelctl(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "nosuch",
            "--to-earliest"
        ]
    ))
    .contains("unknown topic nosuch"));
    assert!(fails(runnelctl(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-datetime",
            "noon"
        ]
    ))
    .contains("--to-datetime"));

    // librdkafka's own consumer in the group starts where reset-offsets put it.
    assert_eq!(reset(&broker, "g", "events", &["--to-offset", "7"]).1, 7);
    assert_eq!(
        first_seen_by_librdkafka(&broker, "g", "events"),
        (7, "v7".into())
    );
    assert_eq!(
        reset(&broker, "g", "events", &["--to-datetime", &datetime]).1,
        5
    );
    assert_eq!(
        first_seen_by_librdkafka(&broker, "g", "events"),
        (5, "v5".into())
    );

    // seek: by timestamp in ms.
    let seek = |ms: &str| {
        let result = json(runnelctl(
            &broker,
            &[
                "--output",
                "json",
                "group",
                "seek",
                "g",
                "--topic",
                "events",
                "--to-timestamp",
                ms,
            ],
        ));
        result["partitions"][0]["new_offset"].as_i64().unwrap()
    };
    assert_eq!(seek("0"), 0);
    assert_eq!(seek(&middle.to_string()), 5);
    assert_eq!(committed(&broker, "g", "events"), Some(5));
    assert_eq!(
        first_seen_by_librdkafka(&broker, "g", "events"),
        (5, "v5".into())
    );
    assert_eq!(seek(&(now_ms() + 3_600_000).to_string()), 12);

    // delete.
    let table = ok(runnelctl(&broker, &["group", "delete", "g", "busy"]));
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["g", "deleted"])),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["busy", "deleted"])),
        "{table}"
    );
    let listed = json(runnelctl(&broker, &["--output", "json", "group", "list"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"g") && !names.contains(&"busy"),
        "{names:?}"
    );
    assert!(names.contains(&"fresh"), "{names:?}");
    assert!(fails(runnelctl(&broker, &["group", "describe", "g"])).contains("does not exist"));
    let error = fails(runnelctl(&broker, &["group", "delete", "g"]));
    assert!(error.contains("1 of 1 group(s) not deleted"), "{error}");
}

#[test]
fn every_data_command_has_help() {
    for command in [
        &["produce", "--help"][..],
        &["consume", "--help"],
        &["group", "--help"],
        &["group", "list", "--help"],
        &["group", "describe", "--help"],
        &["group", "delete", "--help"],
        &["group", "reset-offsets", "--help"],
        &["group", "seek", "--help"],
    ] {
        let output = Command::new(workspace_binary("runnelctl", "runnel-tools"))
            .args(command)
            .output()
            .unwrap();
        assert!(output.status.success(), "{command:?}: {output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("Usage: runnelctl"), "{command:?}: {text}");
    }
}
