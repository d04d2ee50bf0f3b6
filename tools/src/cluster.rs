//! `runnelctl cluster info`: the cluster's id, its brokers and listeners (fenced ones too),
//! the controller, as DescribeCluster reports them; and the controller quorum's voters with
//! how far each lags the leader, as DescribeQuorum reports them.

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    describe_quorum_response, ApiKey, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use crate::client::{kafka_error, Client};
use crate::output::{Format, Report};
use crate::Global;

/// The metadata log's topic-partition, the only one DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// UNSUPPORTED_VERSION: what a broker without a controller quorum answers DescribeQuorum.
const UNSUPPORTED_VERSION: i16 = 35;
/// DescribeCluster v2 lists fenced brokers when asked; DescribeQuorum v1 has the timestamps,
/// v2 the voters' endpoints (neither shown, but the newest is what Kafka's tools send).
const DESCRIBE_CLUSTER_VERSION: i16 = 2;
const DESCRIBE_QUORUM_VERSION: i16 = 2;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// The cluster id, the controller, every broker with its listener (fenced ones
    /// marked), and the controller quorum's voters with their lag behind the leader.
    Info,
}

pub fn run(command: ClusterCommand, global: &Global) -> Result<(), String> {
    match command {
        ClusterCommand::Info => info(global),
    }
}

fn info(global: &Global) -> Result<(), String> {
    let mut client = global.connect()?;
    let mut request = DescribeClusterRequest::default();
    request.include_fenced_brokers = true;
    let response: DescribeClusterResponse =
        client.call(ApiKey::DescribeCluster, DESCRIBE_CLUSTER_VERSION, &request)?;
    if response.error_code != 0 {
        return Err(kafka_error(
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let quorum = describe_quorum(&mut client)?;
    let controller = response.controller_id.0;
    let mut report = Report::new(&["broker", "host", "port", "rack", "role", "fenced"]);
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
            // Blank rather than "no", so the common case stays quiet.
            if broker.is_fenced { "yes" } else { "" }.to_owned(),
        ]);
        brokers.push(json!({
            "id": id, "host": broker.host.as_str(), "port": broker.port, "rack": rack,
            "controller": id == controller, "fenced": broker.is_fenced,
        }));
    }
    match global.output {
        Format::Json => {
            report.json = Some(json!({
                "cluster_id": response.cluster_id.as_str(),
                "controller": controller,
                "brokers": brokers,
                "quorum": quorum.to_json(),
            }));
            report.print(global.output);
        }
        Format::Table => {
            println!("cluster id: {}", response.cluster_id.as_str());
            report.print(global.output);
            println!();
            println!("{}", quorum.headline());
            if let Quorum::Described { voters, .. } = &quorum {
                voters_report(voters).print(global.output);
            }
        }
    }
    Ok(())
}

/// The quorum as DescribeQuorum tells it.
#[derive(Debug, Clone, PartialEq)]
enum Quorum {
    /// The leader's description.
    Described {
        leader: i32,
        epoch: i32,
        high_watermark: i64,
        voters: Vec<VoterRow>,
    },
    /// The broker runs alone, without a quorum.
    None,
    /// The quorum exists but could not be described now (no leader elected, say).
    Unavailable(String),
}

/// One voter: its log end offset and lag as raft indexes; `None` where the leader doesn't
/// know them yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VoterRow {
    id: i32,
    leader: bool,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
}

fn describe_quorum(client: &mut Client) -> Result<Quorum, String> {
    let mut partition = PartitionData::default();
    partition.partition_index = METADATA_PARTITION;
    let mut topic = TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![topic];
    let response: DescribeQuorumResponse =
        client.call(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSION, &request)?;
    quorum_of(&response)
}

/// Reads a DescribeQuorum answer: an error for one that makes no sense, otherwise what it
/// says of the quorum (a quorum without a leader is still worth showing the brokers for).
fn quorum_of(response: &DescribeQuorumResponse) -> Result<Quorum, String> {
    match response.error_code {
        0 => {}
        UNSUPPORTED_VERSION => return Ok(Quorum::None),
        code => return Err(kafka_error(code, response.error_message.as_deref())),
    }
    let partition = response
        .topics
        .iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == METADATA_PARTITION)
        .ok_or("DescribeQuorum's answer does not describe the metadata partition")?;
    if partition.error_code != 0 {
        return Ok(Quorum::Unavailable(kafka_error(
            partition.error_code,
            partition.error_message.as_deref(),
        )));
    }
    Ok(Quorum::Described {
        leader: partition.leader_id.0,
        epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: voter_rows(partition),
    })
}

/// Each voter's lag: the leader's log end offset minus its own (0 at most for the leader; a
/// follower briefly ahead of the leader's flushed end counts as 0, not negative).
fn voter_rows(partition: &describe_quorum_response::PartitionData) -> Vec<VoterRow> {
    let known = |offset: i64| (offset >= 0).then_some(offset);
    let leader_end = partition
        .current_voters
        .iter()
        .find(|v| v.replica_id == partition.leader_id)
        .and_then(|v| known(v.log_end_offset));
    partition
        .current_voters
        .iter()
        .map(|v| {
            let log_end_offset = known(v.log_end_offset);
            let lag = leader_end
                .zip(log_end_offset)
                .map(|(leader, own)| leader.saturating_sub(own).max(0));
            VoterRow {
                id: v.replica_id.0,
                leader: v.replica_id == partition.leader_id,
                log_end_offset,
                lag,
            }
        })
        .collect()
}

impl Quorum {
    /// The line above the voters' table.
    fn headline(&self) -> String {
        match self {
            Quorum::Described {
                leader,
                epoch,
                high_watermark,
                ..
            } => format!(
                "controller quorum: leader {leader}, epoch {epoch}, high watermark {high_watermark}"
            ),
            Quorum::None => "controller quorum: none (a single broker)".to_owned(),
            Quorum::Unavailable(why) => format!("controller quorum: not described now ({why})"),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Quorum::Described {
                leader,
                epoch,
                high_watermark,
                voters,
            } => json!({
                "leader": leader, "epoch": epoch, "high_watermark": high_watermark,
                "voters": voters.iter().map(|v| json!({
                    "id": v.id, "role": role(v), "log_end_offset": v.log_end_offset, "lag": v.lag,
                })).collect::<Vec<_>>(),
            }),
            Quorum::None => Value::Null,
            Quorum::Unavailable(why) => json!({ "error": why }),
        }
    }
}

fn role(voter: &VoterRow) -> &'static str {
    if voter.leader {
        "leader"
    } else {
        "follower"
    }
}

fn voters_report(voters: &[VoterRow]) -> Report {
    let unknown = |n: Option<i64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let mut report = Report::new(&["voter", "role", "log end offset", "lag"]);
    for voter in voters {
        report.row(vec![
            voter.id.to_string(),
            role(voter).to_owned(),
            unknown(voter.log_end_offset),
            unknown(voter.lag),
        ]);
    }
    report
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_quorum_response::{ReplicaState, TopicData};
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn answer(leader: i32, ends: &[(i32, i64)]) -> DescribeQuorumResponse {
        let mut partition = describe_quorum_response::PartitionData::default();
        partition.leader_id = BrokerId(leader);
        partition.leader_epoch = 4;
        partition.high_watermark = 50;
        partition.current_voters = ends
            .iter()
            .map(|&(id, end)| {
                let mut voter = ReplicaState::default();
                voter.replica_id = BrokerId(id);
                voter.log_end_offset = end;
                voter
            })
            .collect();
        let mut topic = TopicData::default();
        topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = vec![partition];
        let mut response = DescribeQuorumResponse::default();
        response.topics = vec![topic];
        response
    }

    fn row(id: i32, leader: bool, end: Option<i64>, lag: Option<i64>) -> VoterRow {
        VoterRow {
            id,
            leader,
            log_end_offset: end,
            lag,
        }
    }

    #[test]
    fn lag_is_the_leader_s_end_minus_each_voter_s() {
        let quorum = quorum_of(&answer(2, &[(1, 48), (2, 51), (3, 52), (4, -1)])).unwrap();
        let Quorum::Described { voters, leader, .. } = &quorum else {
            panic!("{quorum:?}")
        };
        assert_eq!(*leader, 2);
        assert_eq!(
            voters,
            &[
                row(1, false, Some(48), Some(3)),
                row(2, true, Some(51), Some(0)),
                // Ahead of the leader's flushed end: not behind, so 0.
                row(3, false, Some(52), Some(0)),
                row(4, false, None, None),
            ]
        );
        let table = voters_report(voters).table();
        assert!(
            table.contains("1      follower  48              3"),
            "{table}"
        );
        assert!(
            table.contains("4      follower  ?               ?"),
            "{table}"
        );
        assert_eq!(quorum.to_json()["voters"][0]["lag"], 3);
        assert_eq!(quorum.to_json()["voters"][3]["lag"], Value::Null);
    }

    #[test]
    fn no_leader_entry_leaves_every_lag_unknown() {
        let quorum = quorum_of(&answer(9, &[(1, 48)])).unwrap();
        let Quorum::Described { voters, .. } = quorum else {
            panic!()
        };
        assert_eq!(voters, [row(1, false, Some(48), None)]);
    }

    #[test]
    fn a_single_broker_has_no_quorum_and_errors_are_reported() {
        let mut alone = DescribeQuorumResponse::default();
        alone.error_code = UNSUPPORTED_VERSION;
        assert_eq!(quorum_of(&alone), Ok(Quorum::None));
        assert_eq!(Quorum::None.to_json(), Value::Null);

        let mut no_leader = answer(-1, &[]);
        no_leader.topics[0].partitions[0].error_code = 6;
        let Ok(Quorum::Unavailable(why)) = quorum_of(&no_leader) else {
            panic!()
        };
        assert!(why.contains("NotLeaderOrFollower"), "{why}");

        let mut refused = DescribeQuorumResponse::default();
        refused.error_code = 42; // INVALID_REQUEST
        assert!(quorum_of(&refused).is_err());
        assert!(quorum_of(&DescribeQuorumResponse::default()).is_err());
    }
}
