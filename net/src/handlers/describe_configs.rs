//! DescribeConfigs (key 32): every config of a topic, or of the broker (named by its id: every
//! broker config; named "": the cluster-wide dynamic defaults that are set), with its source,
//! read-only flag, type, synonyms (v1+, when asked) and documentation (v3+, when asked), as
//! Kafka reports them (see [`describe`]).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{resource_type, topic_change_error};
use crate::kafka::error_code;
use crate::partitions::broker_configs::BrokerResource;
use crate::partitions::configs::describe::{self, Entry};
use crate::partitions::shard;

crate::api!(DescribeConfigs, 1..=4, |call, request| handle(
    request,
    call.version,
    call.broker.node_id
));

pub fn handle(
    request: DescribeConfigsRequest,
    version: i16,
    node_id: i32,
) -> DescribeConfigsResponse {
    let state = shard::current();
    let topics = state.topics();
    let defaults = state.defaults();
    let mut response = DescribeConfigsResponse::default();
    let include = (request.include_synonyms, request.include_documentation);
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let entries = match resource.resource_type {
            resource_type::TOPIC => match topics.get(resource.resource_name.as_str()) {
                Some(meta) => Ok(describe::topic_entries(&meta.configs, &defaults.broker)),
                None => Err((
                    error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    "no such topic".to_string(),
                )),
            },
            resource_type::BROKER => BrokerResource::parse(&resource.resource_name, node_id)
                .map(|target| {
                    describe::broker_entries(&defaults.broker, target == BrokerResource::Cluster)
                })
                .map_err(topic_change_error),
            _ => Err((
                error_code::INVALID_REQUEST,
                "only topic and broker resources".to_string(),
            )),
        };
        match entries {
            Ok(entries) => {
                // No keys (null, or an empty list, as Kafka reads it) means every config.
                let wanted = |key: &str| {
                    resource
                        .configuration_keys
                        .as_ref()
                        .filter(|keys| !keys.is_empty())
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
                };
                result.configs = entries
                    .into_iter()
                    .filter(|e| wanted(&e.name))
                    .map(|e| encode(e, include, version))
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        response.results.push(result);
    }
    response
}

/// One config for the response; `include` is (synonyms, documentation) as the request asks.
fn encode(entry: Entry, include: (bool, bool), version: i16) -> DescribeConfigsResourceResult {
    let mut config = DescribeConfigsResourceResult::default();
    config.name = StrBytes::from_string(entry.name);
    config.value = entry.value.map(StrBytes::from_string);
    config.read_only = entry.read_only;
    config.config_source = entry.source;
    config.is_sensitive = false;
    if include.0 {
        config.synonyms = entry
            .synonyms
            .into_iter()
            .map(|s| {
                let mut synonym = DescribeConfigsSynonym::default();
                synonym.name = StrBytes::from_string(s.name);
                synonym.value = Some(StrBytes::from_string(s.value));
                synonym.source = s.source;
                synonym
            })
            .collect();
    }
    if version >= 3 {
        config.config_type = entry.config_type;
        if include.1 {
            config.documentation = Some(StrBytes::from_static_str(entry.doc));
        }
    }
    config
}
