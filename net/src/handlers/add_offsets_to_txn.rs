//! AddOffsetsToTxn (key 25): a transactional producer is about to commit a consumer group's
//! offsets in its transaction (sendOffsetsToTransaction): the group's `__consumer_offsets`
//! partition joins the transaction, so the transaction's marker goes there too and decides
//! the offsets.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::groups;
use crate::kafka::error_code as ec;
use crate::kafka::BrokerInfo;
use crate::txn::coordinator::on_coordinator;
use crate::txn::state_machine::{error_for_version, ADD_OFFSETS_FENCED_SINCE};

crate::api!(AddOffsetsToTxn, 0..=3, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let id = request.transactional_id.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    // The offsets topic must exist for its partition to be written to.
    let offsets_partitions = broker.groups.offsets_topic_num_partitions;
    if let Err(error) = groups::ensure_offsets_topic(offsets_partitions).await {
        response.error_code = error;
        return response;
    }
    let partition = groups::partition_for(
        &request.group_id,
        groups::offsets_partition_count(offsets_partitions),
    );
    let answered = on_coordinator(&broker.transactions, &id.clone(), move |c| async move {
        let answer = c.with_machine(|machine, now| {
            machine.add_offsets(&id, producer_id, epoch, partition, now)
        });
        answer.get().await.unwrap_or(ec::COORDINATOR_NOT_AVAILABLE)
    })
    .await;
    let error = answered.unwrap_or_else(|error| error);
    response.error_code = error_for_version(error, version, ADD_OFFSETS_FENCED_SINCE);
    response
}
