//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND or SUBTRACT individual configs of a
//! topic or of the broker (its id, or "" for the cluster-wide defaults), leaving the others as
//! they are (what `kafka-configs.sh --alter` and admin clients use). Kafka refuses a resource
//! named twice, a config named twice in one resource, an unknown operation and a missing value
//! with INVALID_REQUEST; a list operation on a config that isn't a LIST with INVALID_CONFIG.

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{duplicate_resources, set_outcome};
use super::resource_type;
use crate::partitions::broker_configs::{self, BrokerResource};
use crate::partitions::configs::ops::{self, ConfigOp};
use crate::partitions::shard::{self, ConfigChange, CreateError};
use runnel_engine::rt;

crate::api!(IncrementalAlterConfigs, 0..=1, |call, request| handle(
    request,
    call.broker.node_id
)
.await);

pub async fn handle(
    request: IncrementalAlterConfigsRequest,
    node_id: i32,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
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
        let outcome =
            if duplicates.contains(&(resource.resource_type, resource.resource_name.to_string())) {
                Ok(Err(CreateError::InvalidRequest(format!(
                    "Error due to duplicate resources: {}",
                    resource.resource_name.as_str()
                ))))
            } else {
                match changes(&resource) {
                    Err(e) => Ok(Err(e)),
                    Ok(change) => alter(&resource, change, request.validate_only, node_id).await,
                }
            };
        set_outcome(&mut result.error_code, &mut result.error_message, outcome);
        response.responses.push(result);
    }
    response
}

/// The resource's operations, or why the request is invalid.
fn changes(resource: &AlterConfigsResource) -> Result<ConfigChange, CreateError> {
    let changes = resource
        .configs
        .iter()
        .map(|c| ConfigOp::from_wire(c.config_operation, &c.name, c.value.as_deref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CreateError::InvalidRequest)?;
    let duplicates = ops::duplicate_names(&changes);
    if !duplicates.is_empty() {
        return Err(CreateError::InvalidRequest(format!(
            "Error due to duplicate config keys : {}",
            duplicates.join(",")
        )));
    }
    Ok(ConfigChange::Incremental(changes))
}

async fn alter(
    resource: &AlterConfigsResource,
    change: ConfigChange,
    validate_only: bool,
    node_id: i32,
) -> Result<Result<(), CreateError>, rt::ShardStopped> {
    let name = resource.resource_name.to_string();
    match resource.resource_type {
        resource_type::TOPIC => {
            rt::run_on(0, move || {
                shard::alter_topic_configs(name, change, validate_only)
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
