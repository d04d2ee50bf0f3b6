//! `runnelctl cluster info`: the cluster's id, its brokers and listeners, and the controller,
//! as DescribeCluster reports them.

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};
use serde_json::json;

use crate::client::kafka_error;
use crate::output::Report;
use crate::Global;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// The cluster id, the controller and every broker with its listener.
    Info,
}

pub fn run(command: ClusterCommand, global: &Global) -> Result<(), String> {
    match command {
        ClusterCommand::Info => info(global),
    }
}

fn info(global: &Global) -> Result<(), String> {
    let mut client = global.connect()?;
    let response: DescribeClusterResponse = client.call(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    )?;
    if response.error_code != 0 {
        return Err(kafka_error(
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let controller = response.controller_id.0;
    let mut report = Report::new(&["broker", "host", "port", "rack", "role"]);
    let mut brokers = Vec::new();
    for broker in &response.brokers {
        let id = broker.broker_id.0;
        let role = if id == controller { "controller" } else { "" };
        let rack = broker.rack.as_deref().unwrap_or("").to_owned();
        report.row(vec![
            id.to_string(),
            broker.host.to_string(),
            broker.port.to_string(),
            rack.clone(),
            role.to_owned(),
        ]);
        brokers.push(json!({
            "id": id, "host": broker.host.as_str(), "port": broker.port, "rack": rack,
            "controller": id == controller,
        }));
    }
    report.json = Some(json!({
        "cluster_id": response.cluster_id.as_str(),
        "controller": controller,
        "brokers": brokers,
    }));
    if global.output == crate::output::Format::Table {
        println!("cluster id: {}", response.cluster_id.as_str());
    }
    report.print(global.output);
    Ok(())
}
