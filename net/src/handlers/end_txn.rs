//! EndTxn (key 26): a transactional producer commits or aborts. The answer comes once the
//! coordinator has stored PrepareCommit / PrepareAbort; the markers follow, and until they
//! are written a new transaction of the same id waits (CONCURRENT_TRANSACTIONS, retried).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::kafka::error_code as ec;
use crate::kafka::BrokerInfo;
use crate::txn::coordinator::on_coordinator;
use crate::txn::state_machine::{error_for_version, TxnResult, END_TXN_FENCED_SINCE};

crate::api!(EndTxn, 0..=3, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(broker: &BrokerInfo, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    let id = request.transactional_id.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let result = TxnResult::from_committed(request.committed);
    let answered = on_coordinator(&broker.transactions, &id.clone(), move |c| async move {
        let answer =
            c.with_machine(|machine, now| machine.end_txn(&id, producer_id, epoch, result, now));
        answer
            .get()
            .await
            .map_or(ec::COORDINATOR_NOT_AVAILABLE, |a| a.error)
    })
    .await;
    let error = answered.unwrap_or_else(|error| error);
    response.error_code = error_for_version(error, version, END_TXN_FENCED_SINCE);
    response
}
