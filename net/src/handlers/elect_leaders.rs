//! ElectLeaders (key 43, KIP-460): moves partition leadership to the preferred replica
//! (PREFERRED), or elects an out-of-sync replica of a leaderless partition (UNCLEAN), for
//! `kafka-leader-election.sh` and the admin client's `electLeaders`.
//!
//! In a cluster the broker forwards the request to the active controller, which decides every
//! partition (`controller::metadata::preferred`) and answers once the new leaders are
//! committed. A lone broker leads every partition it has and is their only replica, so each
//! named partition it knows needs no election (Kafka has no lone mode to copy).

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::controller::metadata::{ElectLeadersReply, ElectionType};
use crate::kafka::error_code;
use crate::partitions::{authority, shard};

crate::api!(ElectLeaders, 0..=2, |call, request| handle(
    call.broker.in_cluster,
    request,
    call.version
)
.await);

pub async fn handle(
    in_cluster: bool,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let mut response = if in_cluster {
        let timeout = authority::request_timeout(request.timeout_ms);
        match crate::controller::node::to_controller(request.clone(), timeout).await {
            Ok(response) => response,
            Err((code, message)) => refused(&request, code, Some(message)),
        }
    } else {
        alone(&request)
    };
    if version < 1 {
        // v0 has no top-level error: the partitions carry it.
        response.error_code = error_code::NONE;
    }
    response
}

/// The partitions a request names, by topic, or `None` for all of them.
pub fn named_partitions(request: &ElectLeadersRequest) -> Option<Vec<(String, Vec<i32>)>> {
    request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    })
}

/// The response to a decided request.
pub fn response(reply: ElectLeadersReply) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    response.replica_election_results = reply
        .into_iter()
        .map(|(topic, partitions)| {
            let mut result = ReplicaElectionResult::default();
            result.topic = TopicName(StrBytes::from_string(topic));
            result.partition_result = partitions
                .into_iter()
                .map(|(partition, code)| {
                    let mut p = PartitionResult::default();
                    p.partition_id = partition;
                    p.error_code = code;
                    p
                })
                .collect();
            result
        })
        .collect();
    response
}

/// The response to a request refused as a whole: `code` at the top and on every partition
/// named (v0 clients read only those).
pub fn refused(
    request: &ElectLeadersRequest,
    code: i16,
    message: Option<String>,
) -> ElectLeadersResponse {
    let reply = named_partitions(request)
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| (topic, partitions.into_iter().map(|p| (p, code)).collect()))
        .collect();
    let mut response = response(reply);
    response.error_code = code;
    if let Some(message) = message {
        let message = StrBytes::from_string(message);
        for p in response
            .replica_election_results
            .iter_mut()
            .flat_map(|t| t.partition_result.iter_mut())
        {
            p.error_message = Some(message.clone());
        }
    }
    response
}

/// A lone broker's answer: nothing to elect anywhere.
fn alone(request: &ElectLeadersRequest) -> ElectLeadersResponse {
    if ElectionType::from_code(request.election_type).is_none() {
        return refused(request, error_code::INVALID_REQUEST, None);
    }
    let topics = shard::current().topics();
    let mut reply: ElectLeadersReply = Vec::new();
    // Everything needs no election, and such partitions are left out of an answer about all.
    for (topic, partitions) in named_partitions(request).unwrap_or_default() {
        let count = topics.get(&topic).map_or(0, |t| t.shards.len());
        let results = partitions
            .into_iter()
            .map(|p| {
                let known = usize::try_from(p).is_ok_and(|i| i < count);
                let code = if known {
                    error_code::ELECTION_NOT_NEEDED
                } else {
                    error_code::UNKNOWN_TOPIC_OR_PARTITION
                };
                (p, code)
            })
            .collect();
        reply.push((topic, results));
    }
    response(reply)
}
