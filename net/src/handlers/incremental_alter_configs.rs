//! IncrementalAlterConfigs (key 44): sets or deletes individual topic configs, leaving the
//! others as they are (what `kafka-configs.sh --alter` and admin clients use).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::alter_configs::set_outcome;
use super::resource_type;
use crate::kafka::error_code;
use crate::partitions::shard::{self, ConfigChange, CreateError};
use runnel_engine::rt;

const SET: i8 = 0;
const DELETE: i8 = 1;

crate::api!(IncrementalAlterConfigs, 0..=1, |call, request| handle(
    request
)
.await);

pub async fn handle(request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if resource.resource_type != resource_type::TOPIC {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(StrBytes::from_static_str(
                "only topic configs can be altered",
            ));
            response.responses.push(result);
            continue;
        }
        let name = resource.resource_name.to_string();
        let mut changes = Vec::with_capacity(resource.configs.len());
        let mut refused = None;
        for change in &resource.configs {
            match (change.config_operation, &change.value) {
                (SET, Some(value)) => {
                    changes.push((change.name.to_string(), Some(value.to_string())))
                }
                (DELETE, _) => changes.push((change.name.to_string(), None)),
                (op, _) => {
                    refused = Some(format!(
                        "operation {op} on {} is not supported (SET with a value, or DELETE)",
                        change.name.as_str()
                    ));
                }
            }
        }
        let validate_only = request.validate_only;
        let outcome = match refused {
            Some(reason) => Ok(Err(CreateError::InvalidConfig(reason))),
            None => {
                let change = ConfigChange::Incremental(changes);
                rt::run_on(0, move || {
                    shard::alter_topic_configs(name, change, validate_only)
                })
                .await
            }
        };
        set_outcome(&mut result.error_code, &mut result.error_message, outcome);
        response.responses.push(result);
    }
    response
}
