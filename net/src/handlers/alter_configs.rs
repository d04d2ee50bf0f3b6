//! AlterConfigs (key 33): replaces a topic's whole set of configs (the legacy API; anything
//! left out returns to its default).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{resource_type, topic_change_error};
use crate::kafka::error_code;
use crate::partitions::shard::{self, ConfigChange};
use runnel_engine::rt;

crate::api!(AlterConfigs, 0..=2, |call, request| handle(request).await);

pub async fn handle(request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
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
        let configs: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let (name, validate_only) = (resource.resource_name.to_string(), request.validate_only);
        let outcome = rt::run_on(0, move || {
            shard::alter_topic_configs(name, ConfigChange::Replace(configs), validate_only)
        })
        .await;
        set_outcome(&mut result.error_code, &mut result.error_message, outcome);
        response.responses.push(result);
    }
    response
}

/// Records a topic change's outcome in a response's error fields.
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
