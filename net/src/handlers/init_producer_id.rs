//! InitProducerId (key 22): producer ids for idempotent producers (what Kafka 3.x clients and
//! kafka-python 3 ask for by default).
//!
//! Ids are unique for the life of the data directory's clock: they start from the current
//! time in milliseconds shifted left by 16 bits, so a restarted broker never hands out an id
//! again. Transactions are not served (there is no transaction coordinator): a transactional
//! id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients don't retry.
//!
//! Not yet: per-partition sequence checks (DUPLICATE_SEQUENCE_NUMBER /
//! OUT_OF_ORDER_SEQUENCE_NUMBER). Batches from idempotent producers are appended as sent, so
//! a retried batch may be stored twice.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::error_code;

static NEXT_PRODUCER_ID: OnceLock<AtomicI64> = OnceLock::new();

fn next_producer_id() -> i64 {
    NEXT_PRODUCER_ID
        .get_or_init(|| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_millis() as i64);
            AtomicI64::new(now_ms << 16)
        })
        .fetch_add(1, Ordering::Relaxed)
}

crate::api!(InitProducerId, 0..=4, |call, request| handle(&request));

pub fn handle(request: &InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        // No transaction coordinator: refuse clearly rather than let the client retry forever.
        response.error_code = error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        return response;
    }
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        // KIP-360: an idempotent producer resetting its epoch keeps its id.
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch.checked_add(1).unwrap_or(0);
        if response.producer_epoch == 0 {
            response.producer_id = ProducerId(next_producer_id());
        }
        return response;
    }
    response.producer_id = ProducerId(next_producer_id());
    response.producer_epoch = 0;
    response
}
