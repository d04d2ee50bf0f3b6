//! Dynamic broker configs in a cluster are the metadata's, as in KRaft: the cluster-wide
//! defaults set through any broker reach every broker (a broker-only one too, and one started
//! later), a broker's own configs reach only it, and both outlast restarts.

use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_tests::cluster::{Cluster, NodeRole};

use crate::{conn, eventually, wait_for_brokers};

const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const INVALID_REQUEST: i16 = 42;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const TIMEOUT: Duration = Duration::from_secs(15);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// IncrementalAlterConfigs of broker resource `name` through node `via`: its error code.
fn alter(cluster: &Cluster, via: i32, name: &str, op: i8, key: &str, value: Option<&str>) -> i16 {
    let mut config = AlterableConfig::default();
    config.name = s(key);
    config.config_operation = op;
    config.value = value.map(s);
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = BROKER;
    resource.resource_name = s(name);
    resource.configs = vec![config];
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    let response: IncrementalAlterConfigsResponse = conn(cluster, via)
        .call(ApiKey::IncrementalAlterConfigs, 1, &request)
        .unwrap();
    response.responses[0].error_code
}

/// `key` of broker `id` as that broker describes it: (value, source).
fn seen_by(cluster: &Cluster, id: i32, key: &str) -> (Option<String>, i8) {
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = BROKER;
    resource.resource_name = s(&id.to_string());
    resource.configuration_keys = Some(vec![s(key)]);
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    let response: DescribeConfigsResponse = conn(cluster, id)
        .call(ApiKey::DescribeConfigs, 4, &request)
        .unwrap();
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "describe {key} on {id}");
    let config = &result.configs[0];
    (
        config.value.as_ref().map(|v| v.to_string()),
        config.config_source,
    )
}

fn shows(cluster: &Cluster, id: i32, key: &str, value: &str, source: i8) -> Result<(), String> {
    match seen_by(cluster, id, key) {
        (Some(v), s) if v == value && s == source => Ok(()),
        other => Err(format!("broker {id}: {key} is {other:?}")),
    }
}

#[test]
fn broker_configs_are_the_clusters() {
    use NodeRole::{Broker, Combined};
    let mut cluster = Cluster::start_roles(
        "cluster-broker-configs",
        &[Combined, Combined, Combined, Broker],
    );
    let all = [1, 2, 3, 4];
    cluster.wait_for_controller(&[1, 2, 3], TIMEOUT).unwrap();
    wait_for_brokers(
        &cluster,
        &all,
        &[(1, false), (2, false), (3, false), (4, false)],
    );

    // The cluster-wide default, set through one broker, is every broker's.
    assert_eq!(
        alter(&cluster, 2, "", SET, "log.retention.ms", Some("7200000")),
        0
    );
    // The broker that was asked shows it when it answers.
    shows(
        &cluster,
        2,
        "log.retention.ms",
        "7200000",
        DYNAMIC_DEFAULT_BROKER_CONFIG,
    )
    .unwrap();
    for id in all {
        eventually(TIMEOUT, || {
            shows(
                &cluster,
                id,
                "log.retention.ms",
                "7200000",
                DYNAMIC_DEFAULT_BROKER_CONFIG,
            )
        });
    }
    // A broker's own config is its alone, and wins over the default.
    assert_eq!(
        alter(&cluster, 4, "4", SET, "log.retention.ms", Some("3600000")),
        0
    );
    shows(
        &cluster,
        4,
        "log.retention.ms",
        "3600000",
        DYNAMIC_BROKER_CONFIG,
    )
    .unwrap();
    for id in [1, 2, 3] {
        shows(
            &cluster,
            id,
            "log.retention.ms",
            "7200000",
            DYNAMIC_DEFAULT_BROKER_CONFIG,
        )
        .unwrap();
    }
    // Another broker's configs are altered through that broker, as Kafka's admin clients do.
    assert_eq!(
        alter(&cluster, 1, "4", SET, "log.retention.ms", Some("1")),
        INVALID_REQUEST
    );

    // Both outlast restarts: a voter's, which replays its log, and the broker-only node's,
    // which takes the leader's image.
    cluster.kill(3);
    cluster.kill(4);
    cluster.start_node(3);
    cluster.start_node(4);
    wait_for_brokers(
        &cluster,
        &all,
        &[(1, false), (2, false), (3, false), (4, false)],
    );
    eventually(TIMEOUT, || {
        shows(
            &cluster,
            3,
            "log.retention.ms",
            "7200000",
            DYNAMIC_DEFAULT_BROKER_CONFIG,
        )?;
        shows(
            &cluster,
            4,
            "log.retention.ms",
            "3600000",
            DYNAMIC_BROKER_CONFIG,
        )
    });

    // Deleting the default leaves the static one (Kafka's: none, retention in hours) where a
    // broker has none of its own.
    assert_eq!(alter(&cluster, 3, "", DELETE, "log.retention.ms", None), 0);
    for id in [1, 2, 3] {
        eventually(TIMEOUT, || {
            match seen_by(&cluster, id, "log.retention.ms") {
                (_, DEFAULT_CONFIG | STATIC_BROKER_CONFIG) => Ok(()),
                other => Err(format!("broker {id}: {other:?}")),
            }
        });
    }
    shows(
        &cluster,
        4,
        "log.retention.ms",
        "3600000",
        DYNAMIC_BROKER_CONFIG,
    )
    .unwrap();
}
