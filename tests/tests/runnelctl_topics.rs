//! `runnelctl topic ...` and `runnelctl config ...` against a real broker: every command in
//! table and JSON output, checked against what the broker then reports, and their errors (one
//! line naming the Kafka error on stderr, exit code 1, never a panic).

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{self, name};
use runnel_tests::runnelctl::{against as runnelctl, command as runnelctl_bin, fails, ok};
use runnel_tests::{backends_under_test, Broker, TempDir};
use serde_json::Value;

/// The JSON a command that must succeed prints (`--output json` is added).
fn json(broker: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(runnelctl(broker, &all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A table's rows (after the headings), split into cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn start(name: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(name);
    let broker = Broker::start_in(&dir, backends_under_test()[0], &[]);
    (dir, broker)
}

/// The JSON object of `name` in a `topic describe` / `topic list` array.
fn topic<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("an array")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

/// A config's value in a JSON config list, if listed.
fn config_value<'a>(configs: &'a Value, name: &str) -> Option<&'a Value> {
    configs
        .as_array()
        .expect("a config array")
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| &c["value"])
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let (_dir, broker) = start("ctl-topics");

    // Create: table, then JSON with configs.
    let table = ok(runnelctl(
        &broker,
        &["topic", "create", "orders", "--partitions", "3"],
    ));
    assert_eq!(rows(&table), [["orders", "3", "1", "created"]], "{table}");
    let created = json(
        &broker,
        &[
            "topic",
            "create",
            "events",
            "-p",
            "2",
            "--replicas",
            "1",
            "--config",
            "retention.ms=3600000",
            "-c",
            "segment.bytes=1048576",
        ],
    );
    assert_eq!(created["partitions"], 2);
    assert_eq!(created["replicas"], 1);
    assert_eq!(created["dry_run"], false);
    assert_eq!(created["configs"]["retention.ms"], "3600000");
    assert_eq!(created["id"].as_str().map(str::len), Some(36), "{created}");

    // A replica assignment gives the partition count; a dry run creates nothing.
    let assigned = json(
        &broker,
        &[
            "topic",
            "create",
            "placed",
            "--replica-assignment",
            "0,0,0,0",
        ],
    );
    assert_eq!(assigned["partitions"], 4);
    let dry = ok(runnelctl(
        &broker,
        &["topic", "create", "ghost", "-p", "5", "--dry-run"],
    ));
    assert!(dry.contains("dry run"), "{dry}");
    let dry = json(&broker, &["topic", "create", "ghost", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["id"], Value::Null);

    // Records make a high watermark and a size.
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let (code, _) = requests::produce(&mut conn, "orders", 1, -1, requests::records("a", 5, 1));
    assert_eq!(code, 0);

    // List: table and JSON; ghost was never created.
    let table = ok(runnelctl(&broker, &["topic", "list"]));
    assert_eq!(
        rows(&table),
        [
            ["events", "2", "1"],
            ["orders", "3", "1"],
            ["placed", "4", "1"]
        ],
        "{table}"
    );
    let list = json(&broker, &["topic", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert_eq!(topic(&list, "orders")["partitions"], 3);
    assert_eq!(topic(&list, "orders")["internal"], false);

    // Describe: per partition offsets and sizes; the topic's own configs.
    let table = ok(runnelctl(&broker, &["topic", "describe", "orders"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("topic: orders  id: "), "{table}");
    assert!(lines[0].ends_with("partitions: 3  replicas: 1"), "{table}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "ISR",
            "LOG-START",
            "HIGH-WATERMARK",
            "SIZE"
        ]
    );
    let p1: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(p1[..6], ["1", "0", "0", "0", "0", "5"], "{table}");
    assert!(p1[6].parse::<u64>().unwrap() > 0, "{table}");
    assert_eq!(lines[2].split_whitespace().nth(5), Some("0"), "{table}");
    assert_eq!(lines.len(), 5, "no configs set: no config table\n{table}");

    let table = ok(runnelctl(
        &broker,
        &["topic", "describe", "events", "orders"],
    ));
    assert!(table.contains("topic: events"), "{table}");
    assert!(table.contains("topic: orders"), "{table}");
    let config_rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("CONFIG"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        config_rows,
        [
            ["retention.ms", "3600000", "DYNAMIC_TOPIC_CONFIG"],
            ["segment.bytes", "1048576", "DYNAMIC_TOPIC_CONFIG"]
        ],
        "{table}"
    );

    let described = json(&broker, &["topic", "describe"]);
    assert_eq!(described.as_array().unwrap().len(), 3, "{described}");
    let orders = topic(&described, "orders");
    assert_eq!(orders["partitions"].as_array().unwrap().len(), 3);
    let p = &orders["partitions"][1];
    assert_eq!(p["partition"], 1);
    assert_eq!(p["leader"], 0);
    assert_eq!(p["replicas"], serde_json::json!([0]));
    assert_eq!(p["isr"], serde_json::json!([0]));
    assert_eq!(p["log_start"], 0);
    assert_eq!(p["high_watermark"], 5);
    assert!(p["size"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(orders["partitions"][0]["size"], 0);
    assert_eq!(orders["configs"], serde_json::json!([]));
    let events = topic(&described, "events");
    let retention = &events["configs"][0];
    assert_eq!(retention["name"], "retention.ms");
    assert_eq!(retention["value"], "3600000");
    assert_eq!(retention["source"], "DYNAMIC_TOPIC_CONFIG");

    // Delete: table, then JSON; the topics are gone.
    let table = ok(runnelctl(&broker, &["topic", "delete", "placed"]));
    assert_eq!(rows(&table), [["placed", "deleted"]]);
    let deleted = json(&broker, &["topic", "delete", "events", "orders"]);
    assert_eq!(
        deleted,
        serde_json::json!([{"name": "events"}, {"name": "orders"}])
    );
    assert_eq!(json(&broker, &["topic", "list"]), serde_json::json!([]));
}

#[test]
fn internal_topics_are_listed_only_when_asked() {
    let (_dir, broker) = start("ctl-internal");
    ok(runnelctl(&broker, &["topic", "create", "plain"]));
    // Naming __consumer_offsets in Metadata makes the broker create it.
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let mut request = MetadataRequest::default();
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(name("__consumer_offsets"));
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = true;
    let response: MetadataResponse = conn.call(ApiKey::Metadata, 12, &request).unwrap();
    assert_eq!(response.topics[0].error_code, 0);

    let table = ok(runnelctl(&broker, &["topic", "list"]));
    assert_eq!(rows(&table), [["plain", "1", "1"]], "{table}");
    let list = json(&broker, &["topic", "list", "--internal"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(topic(&list, "__consumer_offsets")["internal"], true);
    let table = ok(runnelctl(&broker, &["topic", "list", "--internal"]));
    assert!(table.contains("__consumer_offsets"), "{table}");
    // Describing every topic leaves it out too; naming it describes it.
    let all = json(&broker, &["topic", "describe"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let offsets = json(&broker, &["topic", "describe", "__consumer_offsets"]);
    assert_eq!(offsets[0]["internal"], true);
    // And the broker refuses to delete it.
    let error = fails(runnelctl(
        &broker,
        &["topic", "delete", "__consumer_offsets"],
    ));
    assert!(error.contains("TopicAuthorizationFailed"), "{error}");
}

#[test]
fn topic_errors_are_one_line_with_the_kafka_error() {
    let (_dir, broker) = start("ctl-topic-errors");
    ok(runnelctl(&broker, &["topic", "create", "orders"]));

    let error = fails(runnelctl(&broker, &["topic", "create", "orders"]));
    assert!(error.contains("TopicAlreadyExists"), "{error}");
    assert!(error.contains("orders"), "{error}");

    let error = fails(runnelctl(
        &broker,
        &["topic", "create", "bad", "--config", "retention.ms=soon"],
    ));
    assert!(error.contains("InvalidConfig"), "{error}");
    assert!(error.contains("retention.ms"), "{error}");
    assert!(error.contains("soon"), "{error}");

    let error = fails(runnelctl(&broker, &["topic", "create", "wide", "-r", "3"]));
    assert!(error.contains("InvalidReplicationFactor"), "{error}");
    let error = fails(runnelctl(
        &broker,
        &["topic", "create", "far", "--replica-assignment", "7"],
    ));
    assert!(error.contains("InvalidReplicaAssignment"), "{error}");
    // A failed dry run is an error too.
    let error = fails(runnelctl(
        &broker,
        &["topic", "create", "orders", "--dry-run"],
    ));
    assert!(error.contains("TopicAlreadyExists"), "{error}");

    for args in [
        &["topic", "describe", "nosuch"][..],
        &["topic", "describe", "orders", "nosuch"],
        &["topic", "delete", "nosuch"],
        &["topic", "alter-config", "nosuch", "--set", "retention.ms=1"],
        &["topic", "add-partitions", "nosuch", "--to", "3"],
    ] {
        let error = fails(runnelctl(&broker, args));
        assert!(
            error.contains("UnknownTopicOrPartition"),
            "{args:?}: {error}"
        );
        assert!(error.contains("nosuch"), "{args:?}: {error}");
    }
    // Nothing was made by describing an unknown topic.
    let list = json(&broker, &["topic", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // Deleting a known and an unknown topic deletes the known one and fails on the other.
    ok(runnelctl(&broker, &["topic", "create", "doomed"]));
    let output = runnelctl(&broker, &["topic", "delete", "doomed", "nosuch"]);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let error = fails(output);
    assert!(error.contains("nosuch"), "{error}");
    assert_eq!(rows(&stdout), [["doomed", "deleted"]]);

    // Bad arguments never reach the broker (clap's usage errors).
    let output = runnelctl(
        &broker,
        &["topic", "create", "x", "--replica-assignment", "0:a"],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = runnelctl(&broker, &["topic", "alter-config", "orders"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = runnelctl(&broker, &["topic", "create", "x", "--config", "novalue"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn topic_configs_are_altered_and_partitions_added() {
    let (_dir, broker) = start("ctl-alter");
    ok(runnelctl(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "2",
            "-c",
            "segment.bytes=1048576",
        ],
    ));
    let configs =
        |broker: &Broker| json(broker, &["topic", "describe", "orders"])[0]["configs"].clone();

    // SET, DELETE and APPEND in one request; the table lists them.
    let table = ok(runnelctl(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=60000",
            "--delete",
            "segment.bytes",
            "--append",
            "cleanup.policy=delete",
        ],
    ));
    assert!(table.starts_with("topic orders: changed\n"), "{table}");
    assert_eq!(
        rows(&table)[1..],
        [
            vec!["retention.ms", "set", "60000"],
            vec!["segment.bytes", "delete"],
            vec!["cleanup.policy", "append", "delete"]
        ],
        "{table}"
    );
    let now = configs(&broker);
    assert_eq!(config_value(&now, "retention.ms"), Some(&"60000".into()));
    assert_eq!(config_value(&now, "segment.bytes"), None, "{now}");
    assert_eq!(config_value(&now, "cleanup.policy"), Some(&"delete".into()));

    // SUBTRACT, in JSON.
    let changed = json(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--subtract",
            "cleanup.policy=delete",
        ],
    );
    assert_eq!(changed["resource"], "topic");
    assert_eq!(changed["name"], "orders");
    assert_eq!(changed["changes"][0]["operation"], "subtract");
    assert_eq!(
        config_value(&configs(&broker), "cleanup.policy"),
        Some(&"".into())
    );

    // A dry run changes nothing; a bad value changes nothing either.
    let dry = json(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=1",
            "--dry-run",
        ],
    );
    assert_eq!(dry["dry_run"], true);
    let error = fails(runnelctl(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=1",
            "--set",
            "retention.bytes=lots",
        ],
    ));
    assert!(error.contains("InvalidConfig"), "{error}");
    assert!(error.contains("retention.bytes"), "{error}");
    assert_eq!(
        config_value(&configs(&broker), "retention.ms"),
        Some(&"60000".into())
    );
    let error = fails(runnelctl(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--append",
            "retention.ms=5",
        ],
    ));
    assert!(error.contains("InvalidConfig"), "{error}");

    // Partitions: to a total, as Kafka counts them.
    let table = ok(runnelctl(
        &broker,
        &["topic", "add-partitions", "orders", "--to", "5"],
    ));
    assert_eq!(rows(&table), [["orders", "5", "done"]], "{table}");
    let dry = json(
        &broker,
        &[
            "topic",
            "add-partitions",
            "orders",
            "--to",
            "9",
            "--dry-run",
        ],
    );
    assert_eq!(
        dry,
        serde_json::json!({"name": "orders", "partitions": 9, "dry_run": true})
    );
    let added = json(&broker, &["topic", "add-partitions", "orders", "--to", "6"]);
    assert_eq!(added["partitions"], 6);
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described[0]["partitions"].as_array().unwrap().len(), 6);
    assert_eq!(described[0]["partitions"][5]["high_watermark"], 0);
    let error = fails(runnelctl(
        &broker,
        &["topic", "add-partitions", "orders", "--to", "3"],
    ));
    assert!(error.contains("InvalidPartitions"), "{error}");
}

#[test]
fn broker_and_cluster_configs_are_read_and_changed() {
    let (_dir, broker) = start("ctl-config");

    // Without --all, only configs not at their built-in default.
    let table = ok(runnelctl(&broker, &["config", "get"]));
    let heading: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(heading, ["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
    assert!(!table.contains("DEFAULT_CONFIG"), "{table}");
    let node_id = rows(&table)
        .into_iter()
        .find(|r| r[0] == "node.id")
        .expect("node.id listed");
    assert_eq!(node_id, ["node.id", "0", "STATIC_BROKER_CONFIG", "true"]);
    let all = json(&broker, &["config", "get", "--all"]);
    let retention = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "log.retention.hours")
        .expect("defaults listed with --all");
    assert_eq!(retention["source"], "DEFAULT_CONFIG");
    assert_eq!(retention["value"], "168");
    assert_eq!(retention["read_only"], true);
    let some = json(
        &broker,
        &[
            "config",
            "get",
            "--broker",
            "0",
            "log.retention.ms",
            "num.partitions",
        ],
    );
    let names: Vec<&str> = some
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["log.retention.ms", "num.partitions"]);
    assert_eq!(some[0]["source"], "DEFAULT_CONFIG");
    assert_eq!(some[0]["synonyms"][0]["name"], "log.retention.hours");
    assert_eq!(
        json(&broker, &["config", "get", "--cluster"]),
        serde_json::json!([])
    );

    // Set the cluster-wide default and this broker's own value.
    let table = ok(runnelctl(
        &broker,
        &[
            "config",
            "set",
            "--cluster",
            "--set",
            "log.retention.ms=7200000",
        ],
    ));
    assert!(
        table.starts_with("the cluster-wide defaults: changed"),
        "{table}"
    );
    let changed = json(
        &broker,
        &[
            "config",
            "set",
            "--broker",
            "0",
            "--set",
            "log.segment.bytes=2097152",
        ],
    );
    assert_eq!(changed["resource"], "broker");
    assert_eq!(changed["name"], 0);
    let table = ok(runnelctl(
        &broker,
        &["config", "get", "log.retention.ms", "log.segment.bytes"],
    ));
    assert_eq!(
        rows(&table),
        [
            [
                "log.retention.ms",
                "7200000",
                "DYNAMIC_DEFAULT_BROKER_CONFIG",
                "false"
            ],
            [
                "log.segment.bytes",
                "2097152",
                "DYNAMIC_BROKER_CONFIG",
                "false"
            ]
        ],
        "{table}"
    );
    let cluster = json(&broker, &["config", "get", "--cluster"]);
    assert_eq!(cluster[0]["name"], "log.retention.ms");
    assert_eq!(cluster[0]["value"], "7200000");
    // Topics without their own value follow.
    ok(runnelctl(&broker, &["topic", "create", "t"]));
    let all = json(&broker, &["topic", "describe", "t"]);
    assert_eq!(
        config_value(&all[0]["configs"], "segment.bytes"),
        Some(&"2097152".into()),
        "{all}"
    );

    // Delete, dry run first.
    let dry = json(
        &broker,
        &[
            "config",
            "set",
            "--cluster",
            "--delete",
            "log.retention.ms",
            "--dry-run",
        ],
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["resource"], "cluster");
    assert_eq!(
        json(&broker, &["config", "get", "--cluster"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ok(runnelctl(
        &broker,
        &["config", "set", "--cluster", "--delete", "log.retention.ms"],
    ));
    assert_eq!(
        json(&broker, &["config", "get", "--cluster"]),
        serde_json::json!([])
    );

    // Errors.
    let error = fails(runnelctl(
        &broker,
        &[
            "config",
            "set",
            "--broker",
            "0",
            "--set",
            "log.retention.ms=-5",
        ],
    ));
    assert!(error.contains("InvalidConfig"), "{error}");
    assert!(error.contains("log.retention.ms"), "{error}");
    let error = fails(runnelctl(
        &broker,
        &["config", "set", "--cluster", "--set", "num.partitions=3"],
    ));
    assert!(error.contains("InvalidRequest"), "{error}");
    assert!(error.contains("num.partitions"), "{error}");
    let error = fails(runnelctl(&broker, &["config", "get", "--broker", "7"]));
    assert!(error.contains("InvalidRequest"), "{error}");
    assert!(error.contains("broker 7"), "{error}");
    let error = fails(runnelctl(&broker, &["config", "get", "no.such.config"]));
    assert!(error.contains("no config named no.such.config"), "{error}");
    let output = runnelctl(&broker, &["config", "set", "--set", "a=b"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a target is required: {output:?}"
    );
    let output = runnelctl(
        &broker,
        &[
            "config",
            "set",
            "--broker",
            "0",
            "--cluster",
            "--set",
            "a=b",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "one target: {output:?}");
}

#[test]
fn every_command_has_help() {
    for (args, expect) in [
        (&["topic", "--help"][..], "add-partitions"),
        (&["topic", "create", "--help"], "--replica-assignment"),
        (&["topic", "list", "--help"], "--internal"),
        (&["topic", "describe", "--help"], "high watermark"),
        (&["topic", "alter-config", "--help"], "--subtract"),
        (&["topic", "delete", "--help"], "Delete topics"),
        (
            &["topic", "add-partitions", "--help"],
            "total partition count",
        ),
        (&["config", "--help"], "set"),
        (&["config", "get", "--help"], "--all"),
        (&["config", "set", "--help"], "--cluster"),
    ] {
        let output = runnelctl_bin().args(args).output().expect("runnelctl runs");
        assert!(output.status.success(), "{args:?}: {output:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains(expect), "{args:?}: {help}");
        assert!(help.contains("--bootstrap"), "{args:?}: {help}");
    }
}
