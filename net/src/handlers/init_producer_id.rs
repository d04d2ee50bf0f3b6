//! InitProducerId (key 22): producer ids for idempotent and transactional producers.
//!
//! Without a transactional id, as in Kafka, a request always gets a fresh id with epoch 0,
//! also when it names its current id and epoch (KIP-360's epoch bump of an idempotent
//! producer): the new id starts clean sequences on every partition. Ids come from
//! [`producer_ids`](crate::producer_ids), unique across restarts.
//!
//! With a transactional id the transaction coordinator answers: the id's producer id with its
//! epoch bumped (fencing any older instance and aborting its open transaction), a new producer
//! id when the epochs are used up, and KIP-360's checks of the id and epoch the producer had.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::error_code as ec;
use crate::kafka::BrokerInfo;
use crate::txn::coordinator::{allocate_producer_id, on_coordinator};
use crate::txn::state_machine::{error_for_version, INIT_PRODUCER_ID_FENCED_SINCE};

crate::api!(InitProducerId, 0..=4, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let Some(transactional_id) = request.transactional_id else {
        match allocate_producer_id() {
            Ok(id) => {
                response.producer_id = ProducerId(id);
                response.producer_epoch = 0;
            }
            Err(error) => response.error_code = error,
        }
        return response;
    };
    // v3+ (KIP-360): the id and epoch the producer had, both -1 when it had none.
    let expected = match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => None,
        (id, epoch) if id >= 0 && epoch >= 0 => Some((id, epoch)),
        _ => {
            response.error_code = ec::INVALID_REQUEST;
            return response;
        }
    };
    let id = transactional_id.to_string();
    let timeout_ms = request.transaction_timeout_ms;
    let answered = on_coordinator(&broker.transactions, &id.clone(), move |c| async move {
        let answer = c.with_machine(|machine, now| {
            let mut allocate = allocate_producer_id;
            machine.init_producer_id(&id, timeout_ms, expected, now, &mut allocate)
        });
        answer.get().await
    })
    .await;
    match answered {
        Ok(Some(result)) => {
            response.error_code =
                error_for_version(result.error, version, INIT_PRODUCER_ID_FENCED_SINCE);
            if result.error == ec::NONE {
                response.producer_id = ProducerId(result.producer_id);
                response.producer_epoch = result.producer_epoch;
            }
        }
        Ok(None) => response.error_code = ec::COORDINATOR_NOT_AVAILABLE,
        Err(error) => response.error_code = error,
    }
    response
}
