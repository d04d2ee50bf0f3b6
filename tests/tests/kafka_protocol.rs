//! The broker's Kafka framing and its first APIs, spoken to with an independent encoder (the
//! kafka-protocol crate's client side) and with kcat (librdkafka), on every backend.

use std::process::Command;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeAclsRequest, MetadataRequest,
    MetadataResponse, RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::{backends_under_test, Broker, TempDir};

fn start(name: &str, backend: &str, extra: &[&str]) -> (TempDir, Broker) {
    let dir = TempDir::new(&format!("{name}-{backend}"));
    let broker = Broker::start_in(&dir, backend, extra);
    (dir, broker)
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = StrBytes::from_static_str("runnel-tests");
        request.client_software_version = StrBytes::from_static_str("1");
    }
    request
}

#[test]
fn api_versions_at_every_version_and_beyond() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("apiversions", backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        for version in 0..=4 {
            let response: ApiVersionsResponse = conn
                .call(ApiKey::ApiVersions, version, &api_versions_request(version))
                .unwrap();
            assert_eq!(response.error_code, 0, "v{version}");
            let metadata = response
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::Metadata as i16)
                .expect("Metadata advertised");
            assert_eq!((metadata.min_version, metadata.max_version), (0, 12));
        }
        // A version from the future: answered in v0 with UNSUPPORTED_VERSION (KIP-511).
        let (_, mut frame) = conn.frame(ApiKey::ApiVersions, 4, &api_versions_request(4));
        frame[6..8].copy_from_slice(&99i16.to_be_bytes());
        conn.send_raw(&frame).unwrap();
        let (_, response): (i32, ApiVersionsResponse) =
            conn.receive(ApiKey::ApiVersions, 0).unwrap();
        assert_eq!(response.error_code, 35);
        assert!(!response.api_keys.is_empty());
    }
}

#[test]
fn metadata_names_this_broker_at_every_version() {
    for backend in backends_under_test() {
        let config_dir = TempDir::new(&format!("metadata-config-{backend}"));
        let config = config_dir.path().join("runnel.toml");
        std::fs::write(&config, "auto_create_topics = false\n").unwrap();
        let (_dir, broker) = start("metadata", backend, &["--config", config.to_str().unwrap()]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let mut cluster_ids = Vec::new();
        for version in 0..=12 {
            let mut request = MetadataRequest::default();
            let mut topic = MetadataRequestTopic::default();
            topic.name = Some(TopicName(StrBytes::from_static_str("no-such-topic")));
            request.topics = Some(vec![topic]);
            let response: MetadataResponse =
                conn.call(ApiKey::Metadata, version, &request).unwrap();
            assert_eq!(response.brokers.len(), 1, "v{version}");
            let me = &response.brokers[0];
            assert_eq!(me.host.as_str(), broker.addr.ip().to_string());
            assert_eq!(me.port, i32::from(broker.addr.port()));
            assert_eq!(response.topics.len(), 1);
            assert_eq!(
                response.topics[0].error_code, 3,
                "UNKNOWN_TOPIC_OR_PARTITION"
            );
            if version >= 2 {
                cluster_ids.push(response.cluster_id.expect("cluster id").to_string());
            }
        }
        cluster_ids.dedup();
        assert_eq!(cluster_ids.len(), 1, "one cluster id");
        assert_eq!(cluster_ids[0].len(), 22);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("pipeline", backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let mut frames = Vec::new();
        let mut ids = Vec::new();
        for i in 0..20 {
            let (id, frame) = if i % 2 == 0 {
                conn.frame(ApiKey::ApiVersions, 3, &api_versions_request(3))
            } else {
                conn.frame(ApiKey::Metadata, 9, &MetadataRequest::default())
            };
            ids.push(id);
            frames.extend(frame);
        }
        conn.send_raw(&frames).unwrap();
        for (i, id) in ids.into_iter().enumerate() {
            let received = if i % 2 == 0 {
                conn.receive::<ApiVersionsResponse>(ApiKey::ApiVersions, 3)
                    .unwrap()
                    .0
            } else {
                conn.receive::<MetadataResponse>(ApiKey::Metadata, 9)
                    .unwrap()
                    .0
            };
            assert_eq!(received, id);
        }
    }
}

#[test]
fn bad_requests_close_only_their_connection() {
    for backend in backends_under_test() {
        let max: i32 = 1 << 20;
        let config_dir = TempDir::new(&format!("bad-config-{backend}"));
        let config = config_dir.path().join("runnel.toml");
        std::fs::write(&config, format!("socket_request_max_bytes = {max}\n")).unwrap();
        let (_dir, broker) = start("bad", backend, &["--config", config.to_str().unwrap()]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("oversized frame", (max + 1).to_be_bytes().to_vec()),
            ("negative size", (-5i32).to_be_bytes().to_vec()),
            ("unknown api key", {
                let mut frame = 10i32.to_be_bytes().to_vec();
                frame.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
                frame
            }),
            ("an array claiming 2^31 elements", {
                // Metadata v0: header, then a topic count of i32::MAX with no topics after it.
                let mut frame = 14i32.to_be_bytes().to_vec();
                frame.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
                frame.extend_from_slice(&i32::MAX.to_be_bytes());
                frame
            }),
            ("shorter than a header", {
                let mut frame = 3i32.to_be_bytes().to_vec();
                frame.extend_from_slice(&[0, 18, 0]);
                frame
            }),
            ("truncated body", {
                let mut conn = KafkaConn::connect(broker.addr).unwrap();
                let (_, mut frame) = conn.frame(ApiKey::Metadata, 12, &MetadataRequest::default());
                let len = frame.len() - 4 - 3;
                frame.truncate(frame.len() - 3);
                frame[..4].copy_from_slice(&(len as i32).to_be_bytes());
                frame
            }),
            ("an API not served", {
                let mut conn = KafkaConn::connect(broker.addr).unwrap();
                conn.frame(ApiKey::DescribeAcls, 1, &DescribeAclsRequest::default())
                    .1
            }),
        ];
        for (what, bytes) in cases {
            let mut conn = KafkaConn::connect(broker.addr).unwrap();
            conn.send_raw(&bytes).unwrap();
            assert!(conn.closed_by_peer(), "{what}: connection closed");
            // Everyone else is still served.
            let mut other = KafkaConn::connect(broker.addr).unwrap();
            let response: ApiVersionsResponse = other
                .call(ApiKey::ApiVersions, 3, &api_versions_request(3))
                .unwrap();
            assert_eq!(response.error_code, 0, "after {what}");
        }
    }
}

#[test]
fn kcat_lists_the_broker() {
    let Ok(kcat) = which_kcat() else {
        panic!("kcat is missing: scripts/setup.sh installs it");
    };
    for backend in backends_under_test() {
        let (_dir, broker) = start("kcat", backend, &[]);
        let out = Command::new(&kcat)
            .args(["-L", "-J", "-m", "10", "-b", &broker.addr.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = format!("\"name\":\"{}\"", broker.addr);
        assert!(stdout.contains(&name), "{stdout}");
    }
}

fn which_kcat() -> Result<String, ()> {
    for candidate in ["kcat", "kafkacat"] {
        if Command::new(candidate).arg("-V").output().is_ok() {
            return Ok(candidate.to_owned());
        }
    }
    Err(())
}

/// A default (mostly empty) request of `key`'s API: enough for the broker to decode, dispatch
/// and answer it. An API the broker starts advertising must be added here.
fn default_request(key: ApiKey) -> RequestKind {
    use kafka_protocol::messages::*;
    match key {
        ApiKey::Produce => {
            let mut request = ProduceRequest::default();
            request.acks = 1; // acks=0 gets no response
            request.timeout_ms = 1000;
            RequestKind::Produce(request)
        }
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default())
        }
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default())
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()),
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(DescribeTransactionsRequest::default())
        }
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        other => panic!("the broker advertises {other:?}: add a default request for it here"),
    }
}

/// The dispatch table end to end: every API and version the broker advertises is decoded,
/// reaches a handler and is answered with a response of that API at that version, on one
/// connection that stays open throughout (a refused request would close it).
#[test]
fn every_advertised_version_decodes_dispatches_and_answers() {
    for backend in backends_under_test() {
        let (_dir, broker) = start("dispatch", backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let advertised: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 3, &api_versions_request(3))
            .unwrap();
        assert!(advertised.api_keys.len() >= 26, "{backend}");
        let mut answered = 0;
        for api in &advertised.api_keys {
            let key = ApiKey::try_from(api.api_key).expect("a key Kafka knows");
            for version in api.min_version..=api.max_version {
                let request = default_request(key);
                // Decoded as this API's response at this version, every byte used.
                if let Err(e) = conn.call_kind(key, version, &request) {
                    panic!("{backend}: {key:?} v{version}: {e}");
                }
                answered += 1;
            }
        }
        let listed: i32 = advertised
            .api_keys
            .iter()
            .map(|api| i32::from(api.max_version - api.min_version) + 1)
            .sum();
        assert_eq!(answered, listed, "{backend}");
        // Still the same connection: nothing on the way closed it.
        let again: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 3, &api_versions_request(3))
            .unwrap();
        assert_eq!(again.api_keys.len(), advertised.api_keys.len(), "{backend}");
    }
}
