//! DescribeTransactions (key 65): the state of transactional ids (kafka-transactions.sh
//! describe): state, producer id and epoch, timeout, start time and the partitions in the
//! transaction. Each id is answered by its own coordinator shard.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::BrokerInfo;
use crate::txn::coordinator::on_coordinator;
use crate::txn::state_machine::DescribedTxn;

crate::api!(DescribeTransactions, 0..=0, |call, request| handle(
    &call.broker,
    request
)
.await);

pub async fn handle(
    broker: &BrokerInfo,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let name = id.to_string();
        let asked = name.clone();
        let described = on_coordinator(&broker.transactions, &name, move |c| async move {
            c.with_machine(|machine, _| machine.describe([asked.as_str()]))
                .pop()
        })
        .await;
        let mut state = TransactionState::default();
        state.transactional_id = id;
        match described {
            Ok(Some(txn)) => fill(&mut state, txn),
            Ok(None) => state.error_code = crate::kafka::error_code::COORDINATOR_NOT_AVAILABLE,
            Err(error) => state.error_code = error,
        }
        response.transaction_states.push(state);
    }
    response
}

fn fill(state: &mut TransactionState, txn: DescribedTxn) {
    state.error_code = txn.error;
    state.transaction_state = StrBytes::from_static_str(txn.state);
    state.transaction_timeout_ms = txn.timeout_ms;
    state.transaction_start_time_ms = txn.start_timestamp_ms;
    state.producer_id = ProducerId(txn.producer_id);
    state.producer_epoch = txn.producer_epoch;
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in txn.partitions {
        by_topic
            .entry(tp.topic.to_string())
            .or_default()
            .push(tp.partition);
    }
    state.topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let mut data = TopicData::default();
            data.topic = TopicName(StrBytes::from_string(topic));
            data.partitions = partitions;
            data
        })
        .collect();
}
