//! CreatePartitions (key 37): grows topics to a new partition count (placed on the shards with
//! fewest partitions); `validate_only` checks without changing anything.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::topic_change_error;
use crate::kafka::error_code;
use crate::partitions::shard;
use runnel_engine::rt;

crate::api!(CreatePartitions, 0..=3, |call, request| handle(request)
    .await);

pub async fn handle(request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            result.error_code = error_code::INVALID_REQUEST;
            result.error_message = Some(StrBytes::from_static_str(
                "manual replica assignments are not supported",
            ));
            response.results.push(result);
            continue;
        }
        let (name, count, validate_only) =
            (topic.name.0.to_string(), topic.count, request.validate_only);
        match rt::run_on(0, move || {
            shard::create_partitions(name, count, validate_only)
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let (code, message) = topic_change_error(e);
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
            Err(_) => result.error_code = error_code::NOT_CONTROLLER,
        }
        response.results.push(result);
    }
    response
}
