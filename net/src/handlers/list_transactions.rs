//! ListTransactions (key 66): the transactional ids this broker coordinates
//! (kafka-transactions.sh list), filtered by state, producer id and (v1) by how long the
//! transaction has been running. Every shard answers for the partitions it coordinates.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt;

use crate::kafka::error_code as ec;
use crate::txn::coordinator;
use crate::txn::state_machine::{ListFilter, ListResult};

crate::api!(ListTransactions, 0..=1, |call, request| handle(
    request,
    call.version
)
.await);

pub async fn handle(request: ListTransactionsRequest, version: i16) -> ListTransactionsResponse {
    let filter = ListFilter {
        states: request
            .state_filters
            .iter()
            .map(|s| s.to_string())
            .collect(),
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: if version >= 1 {
            request.duration_filter
        } else {
            -1
        },
    };
    let mut response = ListTransactionsResponse::default();
    let mut listed = Vec::new();
    for shard in 0..rt::shard_count() {
        let filter = filter.clone();
        let answer = rt::run_on(shard, move || async move {
            coordinator::current().with_machine(|machine, now| machine.list(&filter, now))
        })
        .await;
        let result: ListResult = match answer {
            Ok(result) => result,
            Err(_) => {
                response.error_code = ec::COORDINATOR_NOT_AVAILABLE;
                continue;
            }
        };
        if result.error != ec::NONE {
            response.error_code = result.error;
        }
        // Every shard reports the same unknown names; keep one copy.
        if response.unknown_state_filters.is_empty() {
            response.unknown_state_filters = result
                .unknown_state_filters
                .into_iter()
                .map(StrBytes::from_string)
                .collect();
        }
        listed.extend(result.transactions);
    }
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    response.transaction_states = listed
        .into_iter()
        .map(|txn| {
            let mut state = TransactionState::default();
            state.transactional_id = TransactionalId(StrBytes::from_string(txn.transactional_id));
            state.producer_id = ProducerId(txn.producer_id);
            state.transaction_state = StrBytes::from_static_str(txn.state);
            state
        })
        .collect();
    response
}
