//! DeleteTopics (key 20): removes topics (by name; by id from v6) and their data.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::topic_change_error;
use crate::kafka::error_code;
use crate::partitions::authority;
use crate::partitions::internal_topics::is_internal;
use crate::partitions::shard;
use runnel_engine::rt;

crate::api!(DeleteTopics, 1..=6, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let mut response = DeleteTopicsResponse::default();
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or by id.
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let timeout = authority::request_timeout(request.timeout_ms);
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        let topics = shard::current().topics();
        let resolved = match &name {
            Some(name) => Some(name.0.to_string()),
            None => topics.by_id(id).map(|t| t.name.to_string()),
        };
        result.name = name.clone();
        result.topic_id = id;
        match resolved {
            None => {
                result.error_code = error_code::UNKNOWN_TOPIC_ID;
            }
            // The coordinators own them (as Kafka, which refuses to delete internal topics):
            // deleting one would lose every group's offsets or every transaction's state.
            Some(topic) if is_internal(&topic) => {
                result.error_code = error_code::TOPIC_AUTHORIZATION_FAILED;
                result.error_message = Some(StrBytes::from_static_str(
                    "internal topics cannot be deleted",
                ));
            }
            Some(topic) => {
                let outcome = rt::run_on(0, {
                    let topic = topic.clone();
                    move || shard::delete_topic(topic, timeout)
                })
                .await;
                match outcome {
                    Ok(Ok(deleted)) => {
                        forget_committed_offsets(&topic).await;
                        result.name = Some(TopicName(StrBytes::from_string(topic)));
                        result.topic_id = deleted;
                    }
                    Ok(Err(e)) => {
                        let (code, message) = topic_change_error(e);
                        result.error_code = code;
                        result.error_message = Some(StrBytes::from_string(message));
                    }
                    Err(_) => result.error_code = error_code::NOT_CONTROLLER,
                }
            }
        }
        response.responses.push(result);
    }
    response
}

/// Every shard's coordinator drops the groups' committed offsets of a deleted topic.
async fn forget_committed_offsets(topic: &str) {
    for shard in 0..runnel_engine::rt::shard_count() {
        let topic = topic.to_owned();
        let forgotten = rt::run_on(shard, move || {
            crate::groups::coordinator::current().forget_topic(topic)
        })
        .await;
        if let Err(e) = forgotten {
            tracing::debug!(shard, error = %e, "shard stopped before forgetting offsets");
        }
    }
}
