//! InitProducerId (key 22): producer ids for idempotent producers (what Kafka 3.x clients and
//! kafka-python ask for by default).
//!
//! As in Kafka, a request without a transactional id always gets a fresh id with epoch 0,
//! also when it names its current id and epoch (KIP-360's epoch bump of an idempotent
//! producer): the new id starts clean sequences on every partition. Ids come from
//! [`producer_ids`](crate::producer_ids), unique across restarts.
//!
//! Transactions are not served (there is no transaction coordinator): a transactional id is
//! refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients don't retry.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::error_code;
use crate::producer_ids::{self, Unavailable};

crate::api!(InitProducerId, 0..=4, |call, request| handle(&request));

pub fn handle(request: &InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        // No transaction coordinator: refuse clearly rather than let the client retry forever.
        response.error_code = error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return response;
    }
    let next = producer_ids::global()
        .ok_or(Unavailable::Failed)
        .and_then(|ids| ids.next());
    match next {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        // Retriable: clients ask again after their backoff.
        Err(Unavailable::Extending) => {
            response.error_code = error_code::COORDINATOR_LOAD_IN_PROGRESS
        }
        Err(Unavailable::Failed) => response.error_code = error_code::COORDINATOR_NOT_AVAILABLE,
    }
    response
}
