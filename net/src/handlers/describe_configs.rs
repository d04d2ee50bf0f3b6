//! DescribeConfigs (key 32): a topic's configs (set on the topic, or the broker's defaults);
//! a broker resource answers with no configs.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::resource_type;
use crate::kafka::error_code;
use crate::partitions::shard;
use crate::partitions::topic_config::DEFAULTS;

/// Where a config value comes from (Kafka's ConfigSource).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

crate::api!(DescribeConfigs, 1..=4, |call, request| handle(
    request,
    call.version
));

pub fn handle(request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let state = shard::current();
    let topics = state.topics();
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        // No keys (null, or an empty list, as Kafka reads it) means every config.
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .filter(|keys| !keys.is_empty())
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
        };
        match resource.resource_type {
            resource_type::TOPIC => match topics.get(resource.resource_name.as_str()) {
                Some(meta) => {
                    result.configs = DEFAULTS
                        .iter()
                        .filter(|(key, _, _)| wanted(key))
                        .map(|&(key, default, config_type)| {
                            let (value, source) =
                                match (meta.configs.get(key), state.defaults.configs.get(key)) {
                                    (Some(set), _) => (set.clone(), SOURCE_TOPIC),
                                    (None, Some(broker)) => (broker.clone(), SOURCE_BROKER),
                                    (None, None) => (default.to_owned(), SOURCE_DEFAULT),
                                };
                            let mut config = DescribeConfigsResourceResult::default();
                            config.name = StrBytes::from_static_str(key);
                            config.value = Some(StrBytes::from_string(value));
                            config.config_source = source;
                            if version >= 3 {
                                config.config_type = config_type;
                            }
                            config
                        })
                        .collect();
                }
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(StrBytes::from_static_str("no such topic"));
                }
            },
            resource_type::BROKER => {}
            _ => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message =
                    Some(StrBytes::from_static_str("only topic and broker resources"));
            }
        }
        response.results.push(result);
    }
    response
}
