//! A transactional producer on the blocking client, for `runnel-bench produce
//! --transaction-batches N`: InitProducerId with a transactional id, then transaction after
//! transaction, each AddPartitionsToTxn, N batches (sent as the plain loop sends them) and
//! EndTxn(commit), the protocol a Kafka producer speaks. What it measures is what
//! transactions add to producing: the round trips of AddPartitionsToTxn and EndTxn, and the
//! waits while the previous transaction's markers are written (CONCURRENT_TRANSACTIONS,
//! retried at once, as clients retry it after their backoff).

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Conn;

const CONCURRENT_TRANSACTIONS: i16 = 51;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// How long a retried request may keep being refused before the run gives up.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// A transactional producer's identity.
#[derive(Debug, Clone)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    /// CONCURRENT_TRANSACTIONS answers retried so far.
    pub retries: u64,
}

impl TxnProducer {
    /// InitProducerId for `transactional_id` (its coordinator is the broker asked: Runnel
    /// coordinates every transactional id on one broker).
    pub fn init(conn: &mut Conn, transactional_id: &str) -> Result<TxnProducer, String> {
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = Some(TransactionalId(StrBytes::from_string(
            transactional_id.to_owned(),
        )));
        request.transaction_timeout_ms = 60_000;
        request.producer_id = ProducerId(-1);
        request.producer_epoch = -1;
        let started = Instant::now();
        loop {
            conn.send(ApiKey::InitProducerId, 4, &request);
            let response: InitProducerIdResponse = conn.receive(ApiKey::InitProducerId, 4);
            match response.error_code {
                0 => {
                    return Ok(TxnProducer {
                        transactional_id: transactional_id.to_owned(),
                        producer_id: response.producer_id.0,
                        epoch: response.producer_epoch,
                        retries: 0,
                    })
                }
                CONCURRENT_TRANSACTIONS
                | COORDINATOR_LOAD_IN_PROGRESS
                | COORDINATOR_NOT_AVAILABLE
                    if started.elapsed() < RETRY_FOR =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                code => return Err(format!("InitProducerId failed: error {code}")),
            }
        }
    }

    fn id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.transactional_id.clone()))
    }

    /// Starts a transaction on `topic` partition `partition` (AddPartitionsToTxn v3).
    pub fn begin(&mut self, conn: &mut Conn, topic: &str, partition: i32) -> Result<(), String> {
        let mut topic_entry = AddPartitionsToTxnTopic::default();
        topic_entry.name = TopicName(StrBytes::from_string(topic.to_owned()));
        topic_entry.partitions = vec![partition];
        let mut request = AddPartitionsToTxnRequest::default();
        request.v3_and_below_transactional_id = self.id();
        request.v3_and_below_producer_id = ProducerId(self.producer_id);
        request.v3_and_below_producer_epoch = self.epoch;
        request.v3_and_below_topics = vec![topic_entry];
        let started = Instant::now();
        loop {
            conn.send(ApiKey::AddPartitionsToTxn, 3, &request);
            let response: AddPartitionsToTxnResponse = conn.receive(ApiKey::AddPartitionsToTxn, 3);
            let code = response
                .results_by_topic_v3_and_below
                .first()
                .and_then(|t| t.results_by_partition.first())
                .map_or(-1, |p| p.partition_error_code);
            match code {
                0 => return Ok(()),
                // The previous transaction's markers are still being written.
                CONCURRENT_TRANSACTIONS if started.elapsed() < RETRY_FOR => self.retries += 1,
                code => return Err(format!("AddPartitionsToTxn failed: error {code}")),
            }
        }
    }

    /// Commits the transaction (EndTxn v3); answered once the coordinator has stored its
    /// decision, before the markers are written.
    pub fn commit(&mut self, conn: &mut Conn) -> Result<(), String> {
        let mut request = EndTxnRequest::default();
        request.transactional_id = self.id();
        request.producer_id = ProducerId(self.producer_id);
        request.producer_epoch = self.epoch;
        request.committed = true;
        conn.send(ApiKey::EndTxn, 3, &request);
        let response: EndTxnResponse = conn.receive(ApiKey::EndTxn, 3);
        match response.error_code {
            0 => Ok(()),
            code => Err(format!("EndTxn failed: error {code}")),
        }
    }
}
