//! Admin APIs as Kafka 3.9 answers them, with raw requests: CreateTopics and CreatePartitions
//! with explicit replica assignments and validate_only, authorized operations (Metadata,
//! DescribeCluster, DescribeGroups), and ListOffsets MAX_TIMESTAMP naming the record that
//! holds the largest timestamp. The broker runs as node 3, so broker 0 is "unknown".

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::batch::Compression;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{list_offset, name, produce};
use runnel_tests::{backends_under_test, Broker, TempDir};

const NODE: i32 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_PROVIDED: i32 = i32::MIN;
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC_OPS: i32 = 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPS: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
/// READ, DELETE, DESCRIBE.
const GROUP_OPS: i32 = 1 << 3 | 1 << 6 | 1 << 8;

fn start(name: &str, backend: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(&format!("{name}-{backend}"));
    let config = dir.path().join("runnel.toml");
    std::fs::write(&config, format!("node_id = {NODE}\n")).unwrap();
    let broker = Broker::start_in(&dir, backend, &["--config", config.to_str().unwrap()]);
    (dir, broker)
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// A CreateTopics topic with explicit `assignments` (partition, replicas).
fn topic(
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, &[i32])],
) -> CreatableTopic {
    let mut creatable = CreatableTopic::default();
    creatable.name = name(topic);
    creatable.num_partitions = partitions;
    creatable.replication_factor = replication_factor;
    creatable.assignments = assignments
        .iter()
        .map(|&(partition, replicas)| {
            let mut a = CreatableReplicaAssignment::default();
            a.partition_index = partition;
            a.broker_ids = replicas.iter().map(|&id| BrokerId(id)).collect();
            a
        })
        .collect();
    creatable
}

fn create_topics(
    conn: &mut KafkaConn,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Vec<CreatableTopicResult> {
    let mut request = CreateTopicsRequest::default();
    request.topics = topics;
    request.timeout_ms = 10_000;
    request.validate_only = validate_only;
    let response: CreateTopicsResponse =
        conn.call(ApiKey::CreateTopics, version, &request).unwrap();
    response.topics
}

fn create_one(
    conn: &mut KafkaConn,
    creatable: CreatableTopic,
    validate_only: bool,
) -> CreatableTopicResult {
    create_topics(conn, 7, vec![creatable], validate_only).remove(0)
}

/// Partition count of `topic`, or the topic's error code.
fn partitions(conn: &mut KafkaConn, topic: &str) -> Result<usize, i16> {
    let t = metadata(conn, 12, Some(topic), false, false)
        .topics
        .remove(0);
    match t.error_code {
        0 => Ok(t.partitions.len()),
        code => Err(code),
    }
}

fn metadata(
    conn: &mut KafkaConn,
    version: i16,
    topic: Option<&str>,
    cluster_ops: bool,
    topic_ops: bool,
) -> MetadataResponse {
    let mut request = MetadataRequest::default();
    request.topics = topic.map(|t| {
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(name(t));
        vec![wanted]
    });
    request.allow_auto_topic_creation = false;
    // The field exists in v8-v10 only (the encoder refuses it elsewhere).
    request.include_cluster_authorized_operations = cluster_ops && (8..=10).contains(&version);
    request.include_topic_authorized_operations = topic_ops;
    conn.call(ApiKey::Metadata, version, &request).unwrap()
}

/// A CreatePartitions topic: name, new count, the new partitions' replicas if given.
type Growth<'a> = (&'a str, i32, Option<&'a [&'a [i32]]>);

fn grow(
    conn: &mut KafkaConn,
    topics: &[Growth],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let mut request = CreatePartitionsRequest::default();
    request.topics = topics
        .iter()
        .map(|&(topic, count, assignments)| {
            let mut t = CreatePartitionsTopic::default();
            t.name = name(topic);
            t.count = count;
            t.assignments = assignments.map(|list| {
                list.iter()
                    .map(|replicas| {
                        let mut a = CreatePartitionsAssignment::default();
                        a.broker_ids = replicas.iter().map(|&id| BrokerId(id)).collect();
                        a
                    })
                    .collect()
            });
            t
        })
        .collect();
    request.timeout_ms = 10_000;
    request.validate_only = validate_only;
    let response: CreatePartitionsResponse =
        conn.call(ApiKey::CreatePartitions, 3, &request).unwrap();
    response
        .results
        .into_iter()
        .map(|r| (r.error_code, r.error_message.map(|m| m.to_string())))
        .collect()
}

#[test]
fn create_topics_with_replica_assignments() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("assign", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();

        // Well formed: every replica this broker, partitions 0..3 in any order.
        let good = topic(
            "assigned",
            -1,
            -1,
            &[(1, &[NODE]), (0, &[NODE]), (2, &[NODE])],
        );
        let result = create_one(&mut conn, good, false);
        assert_eq!(result.error_code, 0, "{:?}", result.error_message);
        assert_eq!((result.num_partitions, result.replication_factor), (3, 1));
        assert!(!result.topic_id.is_nil());
        assert_eq!(partitions(&mut conn, "assigned"), Ok(3));
        let batch = runnel_tests::requests::records("a", 1, 0);
        assert_eq!(produce(&mut conn, "assigned", 2, 1, batch), (0, 0));

        // Refused, and nothing created, for each way an assignment can be wrong.
        let bad: &[(&str, CreatableTopic, i16, &str)] = &[
            (
                "unknown broker",
                topic("t1", -1, -1, &[(0, &[0])]),
                INVALID_REPLICA_ASSIGNMENT,
                "broker 0, but no such broker",
            ),
            (
                "replica twice",
                topic("t2", -1, -1, &[(0, &[NODE, NODE])]),
                INVALID_REPLICA_ASSIGNMENT,
                "more than once",
            ),
            (
                "empty replicas",
                topic("t3", -1, -1, &[(0, &[])]),
                INVALID_REPLICA_ASSIGNMENT,
                "empty replica list",
            ),
            (
                "gap",
                topic("t4", -1, -1, &[(0, &[NODE]), (2, &[NODE])]),
                INVALID_REPLICA_ASSIGNMENT,
                "consecutive 0-based",
            ),
            (
                "not from 0",
                topic("t5", -1, -1, &[(1, &[NODE])]),
                INVALID_REPLICA_ASSIGNMENT,
                "consecutive 0-based",
            ),
            (
                "partition twice",
                topic("t6", -1, -1, &[(0, &[NODE]), (0, &[NODE])]),
                INVALID_REPLICA_ASSIGNMENT,
                "multiple manual partition assignments",
            ),
            (
                "uneven",
                topic("t7", -1, -1, &[(0, &[NODE]), (1, &[NODE, 0])]),
                INVALID_REPLICA_ASSIGNMENT,
                "broker 0",
            ),
            (
                "count given",
                topic("t8", 1, -1, &[(0, &[NODE])]),
                INVALID_REQUEST,
                "numPartitions was not set to -1",
            ),
            (
                "factor given",
                topic("t9", -1, 1, &[(0, &[NODE])]),
                INVALID_REQUEST,
                "replication factor was not set to -1",
            ),
            (
                "factor above brokers",
                topic("t10", 1, 2, &[]),
                INVALID_REPLICATION_FACTOR,
                "only 1 broker(s)",
            ),
            (
                "factor zero",
                topic("t11", 1, 0, &[]),
                INVALID_REPLICATION_FACTOR,
                "larger than 0",
            ),
            (
                "partitions zero",
                topic("t12", 0, 1, &[]),
                INVALID_PARTITIONS,
                "non-positive",
            ),
        ];
        for (what, creatable, code, message) in bad {
            for validate_only in [false, true] {
                let result = create_one(&mut conn, creatable.clone(), validate_only);
                assert_eq!(
                    result.error_code, *code,
                    "{what}: {:?}",
                    result.error_message
                );
                let text = result
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                assert!(text.contains(message), "{what}: {text}");
                assert_eq!((result.num_partitions, result.replication_factor), (-1, -1));
            }
            let name = creatable.name.0.to_string();
            assert_eq!(
                partitions(&mut conn, &name),
                Err(UNKNOWN_TOPIC_OR_PARTITION),
                "{what}"
            );
        }

        // Duplicate names in one request: both refused.
        let results = create_topics(
            &mut conn,
            7,
            vec![topic("dup", 1, 1, &[]), topic("dup", 1, 1, &[])],
            false,
        );
        assert!(
            results.iter().all(|r| r.error_code == INVALID_REQUEST),
            "{results:?}"
        );
        assert_eq!(
            partitions(&mut conn, "dup"),
            Err(UNKNOWN_TOPIC_OR_PARTITION)
        );
    }
}

#[test]
fn validate_only_creates_nothing_and_answers_what_would_be() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("validate", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let mut creatable = topic("later", -1, -1, &[(0, &[NODE]), (1, &[NODE])]);
        let mut config = CreatableTopicConfig::default();
        config.name = s("retention.ms");
        config.value = Some(s("3600000"));
        creatable.configs = vec![config];

        for version in [5, 7] {
            let result = create_topics(&mut conn, version, vec![creatable.clone()], true).remove(0);
            assert_eq!(
                result.error_code, 0,
                "v{version} {:?}",
                result.error_message
            );
            assert_eq!(
                (result.num_partitions, result.replication_factor),
                (2, 1),
                "v{version}"
            );
            assert!(result.topic_id.is_nil(), "nothing created, so no id");
            let configs = result.configs.expect("configs from v5");
            let retention = configs
                .iter()
                .find(|c| c.name.as_str() == "retention.ms")
                .unwrap();
            assert_eq!(retention.value.as_deref(), Some("3600000"));
            assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
            let segment = configs
                .iter()
                .find(|c| c.name.as_str() == "segment.bytes")
                .unwrap();
            assert_eq!(segment.value.as_deref(), Some("1073741824"));
            assert_eq!(segment.config_source, 5, "DEFAULT_CONFIG");
            let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {names:?}");
            assert_eq!(
                partitions(&mut conn, "later"),
                Err(UNKNOWN_TOPIC_OR_PARTITION)
            );
        }
        // Without an assignment, -1 asks for the defaults.
        let result = create_one(&mut conn, topic("defaults", -1, -1, &[]), true);
        assert_eq!(
            (
                result.error_code,
                result.num_partitions,
                result.replication_factor
            ),
            (0, 1, 1)
        );
        assert_eq!(
            partitions(&mut conn, "defaults"),
            Err(UNKNOWN_TOPIC_OR_PARTITION)
        );

        // Created for real afterwards, as validated; validating an existing name is refused.
        let result = create_one(&mut conn, creatable.clone(), false);
        assert_eq!((result.error_code, result.num_partitions), (0, 2));
        assert!(result.configs.is_some_and(|c| !c.is_empty()));
        assert_eq!(partitions(&mut conn, "later"), Ok(2));
        assert_eq!(
            create_one(&mut conn, creatable, true).error_code,
            36,
            "TOPIC_ALREADY_EXISTS"
        );
        // Kafka checks names and existence before layouts: those errors come first.
        let exists_and_bad = topic("later", -1, -1, &[(0, &[0])]);
        assert_eq!(create_one(&mut conn, exists_and_bad, false).error_code, 36);
        let bad_name_and_layout = topic("bad name!", 1, 9, &[]);
        assert_eq!(
            create_one(&mut conn, bad_name_and_layout, true).error_code,
            17
        );
    }
}

#[test]
fn create_partitions_with_replica_assignments() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("grow", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            create_one(&mut conn, topic("grow", 1, 1, &[]), false).error_code,
            0
        );

        let two: &[&[i32]] = &[&[NODE], &[NODE]];
        assert_eq!(
            grow(&mut conn, &[("grow", 3, Some(two))], true),
            [(0, None)]
        );
        assert_eq!(
            partitions(&mut conn, "grow"),
            Ok(1),
            "validate_only adds nothing"
        );
        // An empty list is no assignment (encoders default the nullable array to empty).
        assert_eq!(
            grow(&mut conn, &[("grow", 2, Some(&[]))], true),
            [(0, None)]
        );

        let bad: &[(&str, i32, &[&[i32]], &str)] = &[
            (
                "too few",
                3,
                &[&[NODE]],
                "add 2 additional partition(s), but only 1",
            ),
            (
                "too many",
                2,
                &[&[NODE], &[NODE]],
                "add 1 additional partition(s), but only 2",
            ),
            ("unknown broker", 2, &[&[0]], "broker 0, but no such broker"),
            ("replica twice", 2, &[&[NODE, NODE]], "more than once"),
            ("empty", 2, &[&[]], "empty replica list"),
        ];
        for &(what, count, assignments, message) in bad {
            for validate_only in [true, false] {
                let (code, text) = grow(
                    &mut conn,
                    &[("grow", count, Some(assignments))],
                    validate_only,
                )
                .remove(0);
                assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "{what}: {text:?}");
                assert!(text.unwrap_or_default().contains(message), "{what}");
            }
        }
        assert_eq!(partitions(&mut conn, "grow"), Ok(1));
        let (code, text) = grow(&mut conn, &[("grow", 1, Some(&[]))], false).remove(0);
        assert_eq!(code, INVALID_PARTITIONS);
        assert!(text
            .unwrap_or_default()
            .contains("already has 1 partition(s)"));
        let both = grow(&mut conn, &[("grow", 2, None), ("grow", 3, None)], false);
        assert!(
            both.iter().all(|(code, _)| *code == INVALID_REQUEST),
            "{both:?}"
        );

        assert_eq!(
            grow(&mut conn, &[("grow", 3, Some(two))], false),
            [(0, None)]
        );
        assert_eq!(partitions(&mut conn, "grow"), Ok(3));
        let batch = runnel_tests::requests::records("g", 1, 0);
        assert_eq!(produce(&mut conn, "grow", 2, 1, batch), (0, 0));
        assert_eq!(grow(&mut conn, &[("grow", 4, None)], false), [(0, None)]);
        assert_eq!(partitions(&mut conn, "grow"), Ok(4));
    }
}

fn commit_offset(conn: &mut KafkaConn, group: &str, topic: &str) {
    let mut partition = OffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = 1;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = vec![partition];
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(s(group));
    request.generation_id_or_member_epoch = -1;
    request.retention_time_ms = -1;
    request.topics = vec![t];
    let response: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &request).unwrap();
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

fn describe_groups(
    conn: &mut KafkaConn,
    version: i16,
    groups: &[&str],
    ops: bool,
) -> DescribeGroupsResponse {
    let mut request = DescribeGroupsRequest::default();
    request.groups = groups.iter().map(|g| GroupId(s(g))).collect();
    request.include_authorized_operations = ops;
    conn.call(ApiKey::DescribeGroups, version, &request)
        .unwrap()
}

#[test]
fn authorized_operations_are_reported_when_asked() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("authops", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            create_one(&mut conn, topic("seen", 1, 1, &[]), false).error_code,
            0
        );

        for version in 8..=12 {
            let asked = metadata(&mut conn, version, Some("seen"), true, true);
            // Cluster operations left Metadata at v11 (KIP-700): DescribeCluster has them.
            let cluster = if version <= 10 {
                CLUSTER_OPS
            } else {
                NOT_PROVIDED
            };
            assert_eq!(asked.cluster_authorized_operations, cluster, "v{version}");
            assert_eq!(
                asked.topics[0].topic_authorized_operations, TOPIC_OPS,
                "v{version}"
            );
            let all = metadata(&mut conn, version, None, false, true);
            assert!(all
                .topics
                .iter()
                .all(|t| t.topic_authorized_operations == TOPIC_OPS));
            let unknown = metadata(&mut conn, version, Some("nope"), false, true);
            assert_eq!(unknown.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
            assert_eq!(
                unknown.topics[0].topic_authorized_operations, TOPIC_OPS,
                "named, so reported"
            );
            let plain = metadata(&mut conn, version, Some("seen"), false, false);
            assert_eq!(
                plain.cluster_authorized_operations, NOT_PROVIDED,
                "v{version}"
            );
            assert_eq!(
                plain.topics[0].topic_authorized_operations, NOT_PROVIDED,
                "v{version}"
            );
        }

        for (version, include, expected) in [
            (0, true, CLUSTER_OPS),
            (2, true, CLUSTER_OPS),
            (2, false, NOT_PROVIDED),
        ] {
            let mut request = DescribeClusterRequest::default();
            request.include_cluster_authorized_operations = include;
            let response: DescribeClusterResponse = conn
                .call(ApiKey::DescribeCluster, version, &request)
                .unwrap();
            assert_eq!(response.error_code, 0);
            assert_eq!(
                response.cluster_authorized_operations, expected,
                "v{version} {include}"
            );
        }

        commit_offset(&mut conn, "readers", "seen");
        for version in 3..=5 {
            let asked = describe_groups(&mut conn, version, &["readers", "nobody"], true);
            // An unknown group is Dead without error before v6, so it is reported too.
            for group in &asked.groups {
                assert_eq!(group.error_code, 0);
                assert_eq!(group.authorized_operations, GROUP_OPS, "v{version}");
            }
            let plain = describe_groups(&mut conn, version, &["readers"], false);
            assert_eq!(plain.groups[0].authorized_operations, NOT_PROVIDED);
        }
        let v6 = describe_groups(&mut conn, 6, &["readers", "nobody"], true);
        assert_eq!(
            (v6.groups[0].error_code, v6.groups[0].authorized_operations),
            (0, GROUP_OPS)
        );
        assert_eq!(v6.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");
        assert_eq!(
            v6.groups[1].authorized_operations, NOT_PROVIDED,
            "not for a failed group"
        );
    }
}

fn batch(timestamps: &[i64]) -> BatchBuilder {
    let mut builder = BatchBuilder::new();
    for (i, &timestamp) in timestamps.iter().enumerate() {
        builder.push(&Record {
            value: Some(format!("value-{i}").into_bytes()),
            timestamp,
            ..Record::default()
        });
    }
    builder
}

#[test]
fn max_timestamp_names_the_record_holding_it() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("maxts", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            create_one(&mut conn, topic("times", 1, 1, &[]), false).error_code,
            0
        );
        const MAX_TIMESTAMP: i64 = -3;
        assert_eq!(
            list_offset(&mut conn, "times", 0, MAX_TIMESTAMP),
            (0, -1, -1),
            "empty"
        );

        // Offsets 0..5; the largest timestamp is the second record's (and the fourth's).
        assert_eq!(
            produce(
                &mut conn,
                "times",
                0,
                1,
                batch(&[10, 500, 20, 500, 30]).build()
            ),
            (0, 0)
        );
        assert_eq!(
            list_offset(&mut conn, "times", 0, MAX_TIMESTAMP),
            (0, 1, 500)
        );
        // Later records with smaller (or equal) timestamps change nothing.
        assert_eq!(
            produce(&mut conn, "times", 0, 1, batch(&[100, 500, 200]).build()),
            (0, 5)
        );
        assert_eq!(
            list_offset(&mut conn, "times", 0, MAX_TIMESTAMP),
            (0, 1, 500)
        );
        // A compressed batch (offsets 8..11) with a new maximum in its middle.
        let compressed = batch(&[1, 9_000, 2])
            .build_compressed(Compression::Gzip)
            .unwrap();
        assert_eq!(produce(&mut conn, "times", 0, 1, compressed), (0, 8));
        assert_eq!(
            list_offset(&mut conn, "times", 0, MAX_TIMESTAMP),
            (0, 9, 9_000)
        );
        // Still the last offset for LATEST.
        assert_eq!(list_offset(&mut conn, "times", 0, -1), (0, 11, -1));
    }
}

/// A lone broker is every partition's only replica: moving a partition to itself needs
/// nothing, any other broker is unknown, and nothing is ever in progress to cancel or list.
#[test]
fn reassignments_on_a_lone_broker() {
    use runnel_tests::requests::{reassign, reassignments};
    const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    for backend in backends_under_test() {
        let (_dir, broker) = start("reassign", backend);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        assert_eq!(
            create_one(&mut conn, topic("stays", 2, 1, &[]), false).error_code,
            0
        );
        let answered = reassign(
            &mut conn,
            &[
                ("stays", 0, Some(&[NODE])),
                ("stays", 1, Some(&[NODE, 0])),
                ("stays", 1, None),
                ("stays", 2, Some(&[NODE])),
                ("missing", 0, Some(&[NODE])),
            ],
        )
        .unwrap();
        let codes: Vec<i16> = answered.unwrap().iter().map(|a| a.2).collect();
        assert_eq!(
            codes,
            [
                0,
                INVALID_REPLICA_ASSIGNMENT,
                NO_REASSIGNMENT_IN_PROGRESS,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION
            ],
            "{backend}"
        );
        assert_eq!(reassignments(&mut conn, None).unwrap(), Ok(vec![]));
        let named: &[(&str, &[i32])] = &[("stays", &[0, 1])];
        assert_eq!(reassignments(&mut conn, Some(named)).unwrap(), Ok(vec![]));
        // Still the only replica, and the data directory untouched.
        assert_eq!(partitions(&mut conn, "stays"), Ok(2));
    }
}
