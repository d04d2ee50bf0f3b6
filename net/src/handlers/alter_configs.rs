//! AlterConfigs (key 33): replaces a topic's whole set of configs, or the broker's dynamic
//! configs at one level (its id, or "" for the cluster-wide defaults); anything left out
//! returns to its default (the legacy API).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{resource_type, topic_change_error};
use crate::kafka::error_code;
use crate::partitions::authority;
use crate::partitions::broker_configs::{self, BrokerResource};
use crate::partitions::shard::{self, ConfigChange, CreateError};
use runnel_engine::rt;

crate::api!(AlterConfigs, 0..=2, |call, request| handle(
    request,
    call.broker.node_id
)
.await);

pub async fn handle(request: AlterConfigsRequest, node_id: i32) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    let duplicates = duplicate_resources(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    for resource in request.resources {
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let configs: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let (name, validate_only) = (resource.resource_name.to_string(), request.validate_only);
        let change = ConfigChange::Replace(configs);
        let outcome = if duplicates.contains(&(resource.resource_type, name.clone())) {
            Ok(Err(CreateError::InvalidRequest(format!(
                "Error due to duplicate resources: {name}"
            ))))
        } else {
            alter(resource.resource_type, name, change, validate_only, node_id).await
        };
        set_outcome(&mut result.error_code, &mut result.error_message, outcome);
        response.responses.push(result);
    }
    response
}

/// Applies `change` to one resource (a topic, or the broker at one level) on shard 0, which
/// serializes every topic and config change.
pub async fn alter(
    kind: i8,
    name: String,
    change: ConfigChange,
    validate_only: bool,
    node_id: i32,
) -> Result<Result<(), CreateError>, rt::ShardStopped> {
    match kind {
        resource_type::TOPIC => {
            rt::run_on(0, move || {
                shard::alter_topic_configs(name, change, validate_only, authority::DEFAULT_TIMEOUT)
            })
            .await
        }
        resource_type::BROKER => match BrokerResource::parse(&name, node_id) {
            Ok(target) => {
                rt::run_on(0, move || {
                    broker_configs::alter_broker_configs(target, change, validate_only)
                })
                .await
            }
            Err(e) => Ok(Err(e)),
        },
        other => Ok(Err(CreateError::InvalidRequest(format!(
            "resource type {other}: only topic (2) and broker (4) configs can be altered"
        )))),
    }
}

/// The (type, name) pairs named more than once in one request (Kafka refuses each).
pub fn duplicate_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, String)> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for (kind, name) in resources {
        if !seen.insert((kind, name.to_owned())) {
            twice.insert((kind, name.to_owned()));
        }
    }
    twice
}

/// Records a topic or broker config change's outcome in a response's error fields.
pub fn set_outcome(
    code: &mut i16,
    message: &mut Option<StrBytes>,
    outcome: Result<Result<(), shard::CreateError>, runnel_engine::rt::ShardStopped>,
) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let (c, m) = topic_change_error(e);
            *code = c;
            *message = Some(StrBytes::from_string(m));
        }
        Err(_) => *code = error_code::NOT_CONTROLLER,
    }
}
