//! Metadata (key 3): the brokers, and the topics asked about.
//!
//! Topics don't exist yet (the topic registry and auto-creation come with Produce): every
//! topic asked about by name answers UNKNOWN_TOPIC_OR_PARTITION, by id UNKNOWN_TOPIC_ID, and a
//! request for all topics gets none.

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use super::error_code;
use crate::kafka::BrokerInfo;

pub fn handle(broker: &BrokerInfo, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let mut me = MetadataResponseBroker::default();
    me.node_id = BrokerId(broker.node_id);
    me.host = StrBytes::from_string(broker.advertised_host.clone());
    me.port = i32::from(broker.advertised_port);
    response.brokers = vec![me];
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    response.controller_id = BrokerId(broker.node_id);
    response.topics = request
        .topics
        .iter()
        .flatten()
        .map(|wanted| {
            let mut topic = MetadataResponseTopic::default();
            match &wanted.name {
                Some(name) => {
                    topic.name = Some(name.clone());
                    topic.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                }
                None => {
                    topic.topic_id = wanted.topic_id;
                    topic.error_code = error_code::UNKNOWN_TOPIC_ID;
                }
            }
            topic
        })
        .collect();
    response
}
