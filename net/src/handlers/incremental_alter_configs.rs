//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND or SUBTRACT individual configs of a
//! topic or of the broker (its id, or "" for the cluster-wide defaults), leaving the others as
//! they are (what `kafka-configs.sh --alter` and admin clients use). Kafka refuses a resource
//! named twice, a config named twice in one resource, an unknown operation and a missing value
//! with INVALID_REQUEST; a list operation on a config that isn't a LIST with INVALID_CONFIG.

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{alter, duplicate_resources, set_outcome};
use crate::partitions::configs::ops::{self, ConfigOp};
use crate::partitions::shard::{ConfigChange, CreateError};

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
                    Ok(change) => {
                        let name = resource.resource_name.to_string();
                        let kind = resource.resource_type;
                        alter(kind, name, change, request.validate_only, node_id).await
                    }
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
