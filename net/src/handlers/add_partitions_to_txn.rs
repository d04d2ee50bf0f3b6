//! AddPartitionsToTxn (key 24): a transactional producer names the partitions it is about to
//! write, so the coordinator knows where its markers must go. v0-v3 carry one transaction;
//! v4 carries several, each possibly `verify_only` (a partition leader checking that a
//! transactional produce belongs to an ongoing transaction, KIP-890).
//!
//! As in Kafka, if any partition is unknown the request adds nothing: the unknown ones get
//! UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};

use crate::kafka::error_code as ec;
use crate::kafka::BrokerInfo;
use crate::partitions::{shard, TopicPartition};
use crate::txn::coordinator::on_coordinator;
use crate::txn::state_machine::{error_for_version, ADD_PARTITIONS_FENCED_SINCE};

crate::api!(AddPartitionsToTxn, 0..=4, |call, request| handle(
    &call.broker,
    request,
    call.version
)
.await);

/// One transaction's part of the request.
struct Adding {
    transactional_id: TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
}

pub async fn handle(
    broker: &BrokerInfo,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if version < 4 {
        let adding = Adding {
            transactional_id: request.v3_and_below_transactional_id,
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            topics: request.v3_and_below_topics,
        };
        response.results_by_topic_v3_and_below = add(broker, adding, version).await;
        return response;
    }
    for txn in request.transactions {
        let transactional_id = txn.transactional_id.clone();
        let adding = Adding {
            transactional_id: txn.transactional_id,
            producer_id: txn.producer_id.0,
            producer_epoch: txn.producer_epoch,
            verify_only: txn.verify_only,
            topics: txn.topics,
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = transactional_id;
        result.topic_results = add(broker, adding, version).await;
        response.results_by_transaction.push(result);
    }
    response
}

async fn add(
    broker: &BrokerInfo,
    adding: Adding,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> = adding
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.name.0.as_str(), p))
        })
        .collect();
    let topics = shard::current().topics();
    let known = |tp: &TopicPartition| {
        topics
            .get(&tp.topic)
            .is_some_and(|t| (0..t.shards.len() as i32).contains(&tp.partition))
    };
    let errors: Vec<i16> = if partitions.iter().all(known) {
        decide(broker, &adding, partitions.clone(), version).await
    } else {
        partitions
            .iter()
            .map(|tp| {
                if known(tp) {
                    ec::OPERATION_NOT_ATTEMPTED
                } else {
                    ec::UNKNOWN_TOPIC_OR_PARTITION
                }
            })
            .collect()
    };
    by_topic(&adding.topics, errors)
}

/// The coordinator's answer for each partition (all known).
async fn decide(
    broker: &BrokerInfo,
    adding: &Adding,
    partitions: Vec<TopicPartition>,
    version: i16,
) -> Vec<i16> {
    let id = adding.transactional_id.to_string();
    let (producer_id, epoch, verify_only) = (
        adding.producer_id,
        adding.producer_epoch,
        adding.verify_only,
    );
    let count = partitions.len();
    let answered = on_coordinator(&broker.transactions, &id.clone(), move |c| async move {
        if verify_only {
            let verified = c.with_machine(|machine, _| {
                machine.verify_partitions(&id, producer_id, epoch, &partitions)
            });
            return verified.into_iter().map(|(_, error)| error).collect();
        }
        let answer = c.with_machine(|machine, now| {
            machine.add_partitions(&id, producer_id, epoch, partitions, now)
        });
        vec![answer.get().await.unwrap_or(ec::COORDINATOR_NOT_AVAILABLE); count]
    })
    .await;
    answered
        .unwrap_or_else(|error| vec![error; count])
        .into_iter()
        .map(|error| {
            let error = error_for_version(error, version, ADD_PARTITIONS_FENCED_SINCE);
            // TRANSACTION_ABORTABLE is known to clients from v5 on; v4 answered this.
            if error == ec::TRANSACTION_ABORTABLE {
                ec::INVALID_TXN_STATE
            } else {
                error
            }
        })
        .collect()
}

/// The errors, one per partition in request order, arranged as the request's topics.
fn by_topic(
    topics: &[AddPartitionsToTxnTopic],
    errors: Vec<i16>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut errors = errors.into_iter();
    topics
        .iter()
        .map(|topic| {
            let mut result = AddPartitionsToTxnTopicResult::default();
            result.name = TopicName(topic.name.0.clone());
            result.results_by_partition = topic
                .partitions
                .iter()
                .map(|&partition| {
                    let mut p = AddPartitionsToTxnPartitionResult::default();
                    p.partition_index = partition;
                    p.partition_error_code = errors.next().unwrap_or(ec::UNKNOWN_SERVER_ERROR);
                    p
                })
                .collect();
            result
        })
        .collect()
}
