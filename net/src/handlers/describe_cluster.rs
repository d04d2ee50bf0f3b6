//! DescribeCluster (key 60): the cluster id, its brokers (fenced ones too when v2 asks) and
//! the active controller; this broker alone, as its own controller, when it runs without a
//! quorum; the cluster's authorized operations when asked.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::controller::view;
use crate::kafka::authorized_operations::{authorized, Resource};
use crate::kafka::error_code;
use crate::kafka::BrokerInfo;

/// DescribeCluster's endpoint types (v1+): brokers, or controllers.
const ENDPOINT_BROKERS: i8 = 1;

crate::api!(DescribeCluster, 0..=2, |call, request| handle(
    &call.broker,
    &request,
    call.version
));

pub fn handle(
    broker: &BrokerInfo,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        response.error_code = error_code::UNSUPPORTED_ENDPOINT_TYPE;
        response.error_message = Some(StrBytes::from_static_str("only broker endpoints"));
        return response;
    }
    response.endpoint_type = ENDPOINT_BROKERS;
    response.cluster_id = StrBytes::from_string(view::cluster_id(&broker.cluster_id));
    match view::current() {
        Some(cluster) => {
            // -1 while no controller is elected, as Kafka reports it.
            response.controller_id = BrokerId(cluster.controller.unwrap_or(-1));
            let include_fenced = version >= 2 && request.include_fenced_brokers;
            response.brokers = cluster
                .brokers
                .iter()
                .filter(|b| include_fenced || !b.fenced)
                .map(|b| {
                    let mut entry = DescribeClusterBroker::default();
                    entry.broker_id = BrokerId(b.id);
                    entry.host = StrBytes::from_string(b.host.clone());
                    entry.port = b.port;
                    entry.rack = b.rack.clone().map(StrBytes::from_string);
                    entry.is_fenced = b.fenced;
                    entry
                })
                .collect();
        }
        None => {
            response.controller_id = BrokerId(broker.node_id);
            let mut me = DescribeClusterBroker::default();
            me.broker_id = BrokerId(broker.node_id);
            me.host = StrBytes::from_string(broker.advertised_host.clone());
            me.port = i32::from(broker.advertised_port);
            response.brokers = vec![me];
        }
    }
    response.cluster_authorized_operations = authorized(
        Resource::Cluster,
        request.include_cluster_authorized_operations,
    );
    response
}
