//! The group APIs at every version the broker advertises, spoken with an independent encoder
//! (the kafka-protocol crate's client side), and the error codes clients act on; plus the
//! expiry of committed offsets. Every backend.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolSubscription, CreateTopicsRequest, CreateTopicsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::{backends_under_test, Broker, TempDir};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// A broker whose groups form at once (no initial rebalance delay), with `extra` settings in
/// its `[groups]` table.
fn start(name: &str, backend: &str, extra: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(&format!("{name}-{backend}"));
    let config = dir.path().join("groups.toml");
    std::fs::write(
        &config,
        format!("[groups]\ninitial_rebalance_delay_ms = 0\n{extra}"),
    )
    .unwrap();
    let broker = Broker::start_in(&dir, backend, &["--config", config.to_str().unwrap()]);
    (dir, broker)
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn group_id(name: &str) -> GroupId {
    GroupId(s(name))
}

fn create_topic(conn: &mut KafkaConn, name: &str) {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(s(name));
    topic.num_partitions = 2;
    topic.replication_factor = 1;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &request).unwrap();
    assert_eq!(response.topics[0].error_code, 0);
}

/// Consumer-protocol subscription metadata for `topic`.
fn subscription(topic: &str) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = vec![s(topic)];
    let mut out = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut out, 0);
    subscription.encode(&mut out, 0).unwrap();
    out.freeze()
}

fn join_request(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    let mut request = JoinGroupRequest::default();
    request.group_id = group_id(group);
    request.session_timeout_ms = session_ms;
    request.rebalance_timeout_ms = 10_000;
    request.member_id = s(member);
    request.protocol_type = s("consumer");
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = s("range");
    protocol.metadata = subscription("t");
    request.protocols = vec![protocol];
    request
}

/// Joins `group` alone (answering MEMBER_ID_REQUIRED from v4); returns the member id and
/// generation.
fn join_alone(conn: &mut KafkaConn, group: &str, version: i16) -> (String, i32) {
    let request = join_request(group, "", 10_000);
    let mut response: JoinGroupResponse = conn.call(ApiKey::JoinGroup, version, &request).unwrap();
    if version >= 4 {
        assert_eq!(
            response.error_code, MEMBER_ID_REQUIRED,
            "v{version}: KIP-394"
        );
        assert!(!response.member_id.is_empty());
        let request = join_request(group, &response.member_id, 10_000);
        response = conn.call(ApiKey::JoinGroup, version, &request).unwrap();
    }
    assert_eq!(response.error_code, 0, "v{version}: join");
    assert_eq!(
        response.leader, response.member_id,
        "v{version}: the only member leads"
    );
    assert_eq!(response.members.len(), 1);
    assert_eq!(response.members[0].metadata, subscription("t"));
    if version >= 7 {
        assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
    }
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    (response.member_id.to_string(), response.generation_id)
}

fn sync(
    conn: &mut KafkaConn,
    group: &str,
    member: &str,
    generation: i32,
    version: i16,
) -> SyncGroupResponse {
    let mut request = SyncGroupRequest::default();
    request.group_id = group_id(group);
    request.generation_id = generation;
    request.member_id = s(member);
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = Some(s("range"));
    }
    let mut assignment = SyncGroupRequestAssignment::default();
    assignment.member_id = s(member);
    assignment.assignment = Bytes::from_static(b"the assignment");
    request.assignments = vec![assignment];
    conn.call(ApiKey::SyncGroup, version, &request).unwrap()
}

fn heartbeat(
    conn: &mut KafkaConn,
    group: &str,
    member: &str,
    generation: i32,
    version: i16,
) -> i16 {
    let mut request = HeartbeatRequest::default();
    request.group_id = group_id(group);
    request.generation_id = generation;
    request.member_id = s(member);
    let response: HeartbeatResponse = conn.call(ApiKey::Heartbeat, version, &request).unwrap();
    response.error_code
}

fn commit(
    conn: &mut KafkaConn,
    group: &str,
    member: &str,
    generation: i32,
    version: i16,
    entries: &[(&str, i32, i64, &str)],
) -> Vec<i16> {
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    request.generation_id_or_member_epoch = generation;
    request.member_id = s(member);
    request.retention_time_ms = -1;
    for (topic, partition, offset, metadata) in entries {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = Some(s(metadata));
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(s(topic));
        t.partitions = vec![p];
        request.topics.push(t);
    }
    let response: OffsetCommitResponse =
        conn.call(ApiKey::OffsetCommit, version, &request).unwrap();
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// The committed offset and metadata of `topic` partition 0.
fn fetch_offset(conn: &mut KafkaConn, group: &str, version: i16, topic: &str) -> (i64, String) {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let mut t = OffsetFetchRequestTopics::default();
        t.name = TopicName(s(topic));
        t.partition_indexes = vec![0];
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = group_id(group);
        g.topics = Some(vec![t]);
        request.groups = vec![g];
        let response: OffsetFetchResponse =
            conn.call(ApiKey::OffsetFetch, version, &request).unwrap();
        let group = &response.groups[0];
        assert_eq!(group.error_code, 0);
        let p = &group.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        return (
            p.committed_offset,
            p.metadata.as_deref().unwrap_or("").to_owned(),
        );
    }
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(s(topic));
    t.partition_indexes = vec![0];
    request.group_id = group_id(group);
    request.topics = Some(vec![t]);
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, version, &request).unwrap();
    assert_eq!(response.error_code, 0);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.committed_offset,
        p.metadata.as_deref().unwrap_or("").to_owned(),
    )
}

fn describe(
    conn: &mut KafkaConn,
    group: &str,
    version: i16,
) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let mut response: DescribeGroupsResponse = conn
        .call(ApiKey::DescribeGroups, version, &request)
        .unwrap();
    response.groups.remove(0)
}

fn leave(conn: &mut KafkaConn, group: &str, member: &str, version: i16) -> (i16, Vec<i16>) {
    let mut request = LeaveGroupRequest::default();
    request.group_id = group_id(group);
    if version >= 3 {
        let mut me = MemberIdentity::default();
        me.member_id = s(member);
        request.members = vec![me];
    } else {
        request.member_id = s(member);
    }
    let response: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, version, &request).unwrap();
    (
        response.error_code,
        response.members.iter().map(|m| m.error_code).collect(),
    )
}

fn delete_group(conn: &mut KafkaConn, group: &str, version: i16) -> i16 {
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![group_id(group)];
    let response: DeleteGroupsResponse =
        conn.call(ApiKey::DeleteGroups, version, &request).unwrap();
    response.results[0].error_code
}

/// One member's life in a group, with every group API at the versions derived from `i`
/// (0..=9), so that together the rounds use every advertised version of each.
fn member_life(conn: &mut KafkaConn, i: i16) {
    let group = format!("every-version-{i}");
    let find_version = i.min(6);
    let mut find = FindCoordinatorRequest::default();
    if find_version >= 4 {
        find.coordinator_keys = vec![s(&group)];
    } else {
        find.key = s(&group);
    }
    let found: FindCoordinatorResponse = conn
        .call(ApiKey::FindCoordinator, find_version, &find)
        .unwrap();
    if find_version >= 4 {
        assert_eq!(found.coordinators[0].error_code, 0);
        assert!(found.coordinators[0].port > 0);
    } else {
        assert_eq!(found.error_code, 0);
        assert!(found.port > 0);
    }

    let (member, generation) = join_alone(conn, &group, i);
    assert_eq!(generation, 1);
    let synced = sync(conn, &group, &member, generation, i.min(5));
    assert_eq!(synced.error_code, 0, "sync v{}", i.min(5));
    assert_eq!(synced.assignment, Bytes::from_static(b"the assignment"));
    assert_eq!(heartbeat(conn, &group, &member, generation, i.min(4)), 0);

    let commit_version = i.clamp(2, 9);
    let codes = commit(
        conn,
        &group,
        &member,
        generation,
        commit_version,
        &[("t", 0, 5 + i64::from(i), "meta")],
    );
    assert_eq!(codes, vec![0], "commit v{commit_version}");
    let fetch_version = i.clamp(1, 9);
    assert_eq!(
        fetch_offset(conn, &group, fetch_version, "t"),
        (5 + i64::from(i), "meta".to_owned()),
        "fetch v{fetch_version}"
    );

    let described = describe(conn, &group, i.min(6));
    assert_eq!(described.error_code, 0);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_data.as_str(), "range");
    assert_eq!(described.members.len(), 1);
    assert_eq!(
        described.members[0].member_assignment,
        Bytes::from_static(b"the assignment")
    );
    assert!(described.members[0].client_host.starts_with('/'));

    let list_version = i.min(5);
    let mut list = ListGroupsRequest::default();
    if list_version >= 4 {
        list.states_filter = vec![s("stable")];
    }
    let listed: ListGroupsResponse = conn.call(ApiKey::ListGroups, list_version, &list).unwrap();
    assert!(
        listed.groups.iter().any(|g| g.group_id.as_str() == group),
        "list v{list_version}"
    );
    if list_version >= 4 {
        assert!(listed
            .groups
            .iter()
            .all(|g| g.group_state.as_str() == "Stable"));
    }

    let leave_version = i.min(5);
    let (code, members) = leave(conn, &group, &member, leave_version);
    assert_eq!(code, 0);
    if leave_version >= 3 {
        assert_eq!(members, vec![0]);
    }
    assert_eq!(
        describe(conn, &group, i.min(6)).group_state.as_str(),
        "Empty"
    );
    assert_eq!(delete_group(conn, &group, i.min(2)), 0);
    let gone = describe(conn, &group, i.min(6));
    assert_eq!(gone.group_state.as_str(), "Dead");
    let expected = if i >= 6 { GROUP_ID_NOT_FOUND } else { 0 };
    assert_eq!(gone.error_code, expected);
}

#[test]
fn every_group_api_at_every_advertised_version() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("group-versions", backend, "");
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        create_topic(&mut conn, "t");
        for i in 0..=9 {
            member_life(&mut conn, i);
        }
    }
}

#[test]
fn the_error_codes_clients_act_on() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("group-errors", backend, "");
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        create_topic(&mut conn, "t");
        let group = "errors";

        let too_short = join_request(group, "", 1000);
        let response: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 9, &too_short).unwrap();
        assert_eq!(response.error_code, INVALID_SESSION_TIMEOUT);
        let unknown = join_request(group, "nobody", 10_000);
        let response: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 9, &unknown).unwrap();
        assert_eq!(
            response.error_code, UNKNOWN_MEMBER_ID,
            "a member id the group never gave"
        );

        let (member, generation) = join_alone(&mut conn, group, 9);
        let mut other = join_request(group, "", 10_000);
        other.protocol_type = s("connect");
        let response: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 9, &other).unwrap();
        assert_eq!(response.error_code, INCONSISTENT_GROUP_PROTOCOL);

        assert_eq!(
            sync(&mut conn, group, &member, generation + 1, 5).error_code,
            ILLEGAL_GENERATION
        );
        assert_eq!(
            sync(&mut conn, group, "nobody", generation, 5).error_code,
            UNKNOWN_MEMBER_ID
        );
        assert_eq!(sync(&mut conn, group, &member, generation, 5).error_code, 0);
        assert_eq!(
            heartbeat(&mut conn, group, &member, generation - 1, 4),
            ILLEGAL_GENERATION
        );
        assert_eq!(
            heartbeat(&mut conn, group, "nobody", generation, 4),
            UNKNOWN_MEMBER_ID
        );

        let long = "x".repeat(5000);
        let codes = commit(
            &mut conn,
            group,
            &member,
            generation,
            9,
            &[
                ("t", 0, 1, ""),
                ("missing", 0, 1, ""),
                ("t", 7, 1, ""),
                ("t", 1, 1, &long),
            ],
        );
        assert_eq!(
            codes,
            vec![
                0,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION,
                OFFSET_METADATA_TOO_LARGE
            ]
        );
        assert_eq!(
            commit(
                &mut conn,
                group,
                &member,
                generation + 5,
                9,
                &[("t", 0, 1, "")]
            ),
            vec![ILLEGAL_GENERATION]
        );
        assert_eq!(
            commit(&mut conn, group, "", -1, 9, &[("t", 0, 1, "")]),
            vec![UNKNOWN_MEMBER_ID],
            "the group has members"
        );

        // The group consumes "t": its offsets can't be deleted; a live group can't be deleted.
        let mut delete = OffsetDeleteRequest::default();
        delete.group_id = group_id(group);
        let mut t = OffsetDeleteRequestTopic::default();
        t.name = TopicName(s("t"));
        let mut p = OffsetDeleteRequestPartition::default();
        p.partition_index = 0;
        t.partitions = vec![p];
        delete.topics = vec![t];
        let response: OffsetDeleteResponse = conn.call(ApiKey::OffsetDelete, 0, &delete).unwrap();
        assert_eq!(response.error_code, 0);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            GROUP_SUBSCRIBED_TO_TOPIC
        );
        assert_eq!(delete_group(&mut conn, group, 2), NON_EMPTY_GROUP);
        assert_eq!(
            delete_group(&mut conn, "never-existed", 2),
            GROUP_ID_NOT_FOUND
        );

        // Once empty, its offsets can be deleted.
        assert_eq!(leave(&mut conn, group, &member, 5).0, 0);
        let response: OffsetDeleteResponse = conn.call(ApiKey::OffsetDelete, 0, &delete).unwrap();
        assert_eq!(response.topics[0].partitions[0].error_code, 0);
        assert_eq!(fetch_offset(&mut conn, group, 9, "t").0, -1);
        let response: OffsetDeleteResponse = {
            let mut unknown = delete.clone();
            unknown.group_id = group_id("never-existed");
            conn.call(ApiKey::OffsetDelete, 0, &unknown).unwrap()
        };
        assert_eq!(response.error_code, GROUP_ID_NOT_FOUND);
    }
}

#[test]
fn offsets_of_empty_groups_expire() {
    for backend in backends_under_test() {
        // offsets.retention.minutes = 0: an empty group's offsets expire at the next check.
        let (_dir, broker) = start(
            "group-expiry",
            backend,
            "offsets_retention_minutes = 0\noffsets_retention_check_interval_ms = 200\n",
        );
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        create_topic(&mut conn, "t");
        // A commit outside group management (generation -1) makes an empty group.
        assert_eq!(
            commit(&mut conn, "simple", "", -1, 9, &[("t", 0, 42, "")]),
            vec![0]
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (offset, _) = fetch_offset(&mut conn, "simple", 9, "t");
            if offset == -1 {
                break;
            }
            assert_eq!(offset, 42);
            assert!(
                std::time::Instant::now() < deadline,
                "the offset never expired"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let gone = describe(&mut conn, "simple", 6);
        assert_eq!(
            gone.error_code, GROUP_ID_NOT_FOUND,
            "an empty group without offsets is removed"
        );
    }
}

#[test]
fn the_offsets_topic_is_the_coordinators_and_deleted_topics_take_their_offsets() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse,
        ProduceRequest, ProduceResponse,
    };
    for backend in backends_under_test() {
        let (_dir, broker) = start(
            "group-internal",
            backend,
            "offsets_topic_num_partitions = 7\n",
        );
        let mut conn = KafkaConn::connect(broker.addr).unwrap();

        // A client asking Metadata for it gets it made as the coordinators need it.
        let mut metadata = MetadataRequest::default();
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(TopicName(s("__consumer_offsets")));
        metadata.topics = Some(vec![wanted]);
        metadata.allow_auto_topic_creation = true;
        let response: MetadataResponse = conn.call(ApiKey::Metadata, 12, &metadata).unwrap();
        let topic = &response.topics[0];
        assert_eq!(topic.error_code, 0);
        assert!(topic.is_internal);
        assert_eq!(topic.partitions.len(), 7, "offsets_topic_num_partitions");

        // Nobody else writes, creates or deletes it.
        let mut partition = PartitionProduceData::default();
        partition.index = 0;
        partition.records = Some(Bytes::from_static(b"whatever"));
        let mut data = TopicProduceData::default();
        data.name = TopicName(s("__consumer_offsets"));
        data.partition_data = vec![partition];
        let mut produce = ProduceRequest::default();
        produce.acks = 1;
        produce.timeout_ms = 1000;
        produce.topic_data = vec![data];
        let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce).unwrap();
        assert_eq!(
            response.responses[0].partition_responses[0].error_code, 17,
            "INVALID_TOPIC_EXCEPTION"
        );
        let mut create = CreateTopicsRequest::default();
        let mut creatable = CreatableTopic::default();
        creatable.name = TopicName(s("__consumer_offsets"));
        creatable.num_partitions = 3;
        creatable.replication_factor = 1;
        create.topics = vec![creatable];
        let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create).unwrap();
        assert_ne!(response.topics[0].error_code, 0);
        let mut delete = DeleteTopicsRequest::default();
        delete.topic_names = vec![TopicName(s("__consumer_offsets"))];
        let response: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 5, &delete).unwrap();
        assert_eq!(
            response.responses[0].error_code, 29,
            "TOPIC_AUTHORIZATION_FAILED"
        );

        // Offsets of a deleted topic go with it: the same name created again starts afresh.
        create_topic(&mut conn, "short-lived");
        assert_eq!(
            commit(&mut conn, "keeper", "", -1, 9, &[("short-lived", 0, 9, "")]),
            vec![0]
        );
        assert_eq!(
            commit(&mut conn, "", "", -1, 9, &[("short-lived", 1, 3, "")]),
            vec![0],
            "an empty group id is allowed for offsets"
        );
        assert_eq!(fetch_offset(&mut conn, "keeper", 9, "short-lived").0, 9);
        let mut delete = DeleteTopicsRequest::default();
        delete.topic_names = vec![TopicName(s("short-lived"))];
        let response: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 5, &delete).unwrap();
        assert_eq!(response.responses[0].error_code, 0);
        create_topic(&mut conn, "short-lived");
        assert_eq!(fetch_offset(&mut conn, "keeper", 9, "short-lived").0, -1);

        // Leaving a group that doesn't exist: per member, as Kafka answers from v3.
        let (code, members) = leave(&mut conn, "no-such-group", "someone", 5);
        assert_eq!((code, members), (0, vec![UNKNOWN_MEMBER_ID]));
        let (code, _) = leave(&mut conn, "no-such-group", "someone", 2);
        assert_eq!(code, UNKNOWN_MEMBER_ID);
    }
}
