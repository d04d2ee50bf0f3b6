//! A broker's requests to the active controller on behalf of its clients (Kafka's forwarding,
//! KIP-590): topic changes, leader elections, reassignments and producer-id blocks. It runs on shard 0, where the local voter
//! knows who leads; other shards reach it with `rt::run_on(0, ..)`.
//!
//! Each forwarded request is retried on another voter while the one asked is not the active
//! controller (or is unreachable), until the request's deadline: a controller elected
//! meanwhile takes it. Each attempt opens its own connection, bounded by the time left, so
//! concurrent requests never wait for one another and an abandoned attempt leaves nothing
//! behind. Admin requests are rare; a connection each costs nothing that matters.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterPartitionRequest, AlterPartitionResponse, ApiKey,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_engine::rt;

use super::admin::{
    ALLOCATE_PRODUCER_IDS_VERSION, ALTER_REASSIGNMENTS_VERSION, ELECT_LEADERS_VERSION,
    LIST_REASSIGNMENTS_VERSION,
};
use super::alter_partition::ALTER_PARTITION_VERSION;
use super::broker::current_epoch;
use super::source::local_source;
use super::topic_authority::ControllerAuthority;
use crate::controller::settings::QuorumSettings;
use crate::controller::transport::RpcClient;
use crate::kafka::error_code;
use crate::partitions::authority;
use crate::producer_ids;

/// Pause before asking again after a voter turned the request away: about a raft tick, so an
/// election under way can finish without a burst of attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long a producer-id block request may take before InitProducerId callers are told to
/// retry (they are answered at once meanwhile; this only bounds the background request).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    static FORWARDER: RefCell<Option<Rc<Forwarder>>> = const { RefCell::new(None) };
}

/// Forwards requests to the active controller.
#[derive(Debug)]
pub struct Forwarder {
    node_id: i32,
    /// (id, controller listener) of every voter.
    voters: Vec<(i32, String)>,
    /// The voter that last answered as the controller: asked first when the local voter
    /// knows no leader.
    last_controller: Cell<Option<i32>>,
}

/// A Kafka error and what to tell the client about it.
pub type Failure = (i16, String);

/// Makes the cluster's controller decide this broker's topic changes and hand out its
/// producer ids (on shard 0, when the node starts).
pub fn install(settings: &QuorumSettings) {
    let forwarder = Rc::new(Forwarder {
        node_id: settings.node_id,
        voters: settings
            .voters
            .iter()
            .map(|v| (v.id, v.address.clone()))
            .collect(),
        last_controller: Cell::new(None),
    });
    FORWARDER.with(|f| *f.borrow_mut() = Some(forwarder.clone()));
    authority::install(Rc::new(ControllerAuthority::new(forwarder)));
    producer_ids::set_block_source(fetch_block);
}

impl Forwarder {
    /// Sends `request` to the active controller and returns its answer; `not_controller` tells
    /// an answer that turns the request away. Past `timeout` without an answer:
    /// REQUEST_TIMED_OUT (retriable), saying why.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
        not_controller: impl Fn(&Resp) -> bool,
    ) -> Result<Resp, Failure> {
        let deadline = Instant::now() + timeout;
        let mut target = self.leader_hint().or(self.last_controller.get());
        let mut last = "no controller is known".to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((
                    error_code::REQUEST_TIMED_OUT,
                    format!(
                        "no active controller answered within {} ms ({last}); the controller \
                         quorum may have lost its majority",
                        timeout.as_millis()
                    ),
                ));
            }
            let mut client = RpcClient::new(
                self.voters.clone(),
                format!("runnel-broker-{}-forward", self.node_id),
                left,
            );
            if let Some(id) = target {
                client.aim_at(id);
            }
            let asked = client.target();
            match client.call::<Req, Resp>(key, version, request).await {
                Ok(answer) if !not_controller(&answer) => {
                    self.last_controller.set(asked);
                    return Ok(answer);
                }
                Ok(_) => last = format!("node {} is not the active controller", show(asked)),
                Err(e) => last = e.to_string(),
            }
            target = self.next_target(asked);
            rt::sleep(RETRY_PAUSE.min(left)).await;
        }
    }

    /// The leader the local voter knows of, if any.
    fn leader_hint(&self) -> Option<i32> {
        local_source().and_then(|source| source.leader())
    }

    /// Whom to ask after `failed` turned a request away: the leader the local voter knows, if
    /// that is someone else, else the next voter in turn.
    fn next_target(&self, failed: Option<i32>) -> Option<i32> {
        if let Some(leader) = self.leader_hint().filter(|&l| Some(l) != failed) {
            return Some(leader);
        }
        let at = self
            .voters
            .iter()
            .position(|(id, _)| Some(*id) == failed)
            .map_or(0, |i| i + 1);
        self.voters
            .get(at % self.voters.len().max(1))
            .map(|(id, _)| *id)
    }
}

fn show(voter: Option<i32>) -> String {
    voter.map_or_else(|| "?".to_string(), |id| id.to_string())
}

/// The forwarder, on shard 0 of a node of a cluster.
fn forwarder() -> Option<Rc<Forwarder>> {
    FORWARDER.with(|f| f.borrow().clone())
}

/// A block of producer ids from the active controller (Kafka's AllocateProducerIds), from
/// any shard: `(first, count)`.
fn fetch_block() -> authority::LocalFuture<Result<(i64, i64), String>> {
    Box::pin(async {
        rt::run_on(0, || async { allocate_block().await.map_err(|(_, m)| m) })
            .await
            .map_err(|_| "shutting down".to_string())?
    })
}

/// AllocateProducerIds on shard 0, naming this broker by its id and epoch.
async fn allocate_block() -> Result<(i64, i64), Failure> {
    let forwarder = forwarder().ok_or((
        error_code::NOT_CONTROLLER,
        "not part of a cluster".to_string(),
    ))?;
    let epoch = current_epoch().ok_or((
        error_code::NOT_CONTROLLER,
        "this broker is not registered with the controller yet".to_string(),
    ))?;
    let mut request = AllocateProducerIdsRequest::default();
    request.broker_id = kafka_protocol::messages::BrokerId(forwarder.node_id);
    request.broker_epoch = epoch;
    let answer: AllocateProducerIdsResponse = forwarder
        .call(
            ApiKey::AllocateProducerIds,
            ALLOCATE_PRODUCER_IDS_VERSION,
            &request,
            BLOCK_TIMEOUT,
            |a: &AllocateProducerIdsResponse| a.error_code == error_code::NOT_CONTROLLER,
        )
        .await?;
    match answer.error_code {
        0 if answer.producer_id_len > 0 && answer.producer_id_start.0 >= 0 => Ok((
            answer.producer_id_start.0,
            i64::from(answer.producer_id_len),
        )),
        0 => Err((
            error_code::UNKNOWN_SERVER_ERROR,
            "the controller answered an empty block".to_string(),
        )),
        code => Err((
            code,
            format!("the controller refused a block: error {code}"),
        )),
    }
}

/// How long a partition leader's ISR change may wait for the controller: the leader proposes
/// it again on its next check if this runs out.
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends a partition leader's ISR changes to the active controller (Kafka's AlterPartition),
/// from any shard; the request's broker id and epoch are this broker's, filled in here.
pub async fn alter_partition(
    request: AlterPartitionRequest,
) -> Result<AlterPartitionResponse, Failure> {
    rt::run_on(
        0,
        move || async move { alter_partition_here(request).await },
    )
    .await
    .map_err(|_| (error_code::REQUEST_TIMED_OUT, "shutting down".to_string()))?
}

async fn alter_partition_here(
    mut request: AlterPartitionRequest,
) -> Result<AlterPartitionResponse, Failure> {
    let forwarder = forwarder().ok_or((
        error_code::NOT_CONTROLLER,
        "not part of a cluster".to_string(),
    ))?;
    request.broker_id = kafka_protocol::messages::BrokerId(forwarder.node_id);
    request.broker_epoch = current_epoch().ok_or((
        error_code::NOT_CONTROLLER,
        "this broker is not registered with the controller yet".to_string(),
    ))?;
    forwarder
        .call(
            ApiKey::AlterPartition,
            ALTER_PARTITION_VERSION,
            &request,
            ALTER_PARTITION_TIMEOUT,
            |a: &AlterPartitionResponse| a.error_code == error_code::NOT_CONTROLLER,
        )
        .await
}

/// A client's request the active controller answers as a whole, each with its top-level
/// error code.
pub trait Forwarded: Encodable + Send + 'static {
    type Response: Decodable + Send + 'static;
    /// The API and the version controllers take, whatever the client's.
    const KEY: ApiKey;
    const VERSION: i16;
    fn top_error(response: &Self::Response) -> i16;
}

impl Forwarded for ElectLeadersRequest {
    type Response = ElectLeadersResponse;
    const KEY: ApiKey = ApiKey::ElectLeaders;
    const VERSION: i16 = ELECT_LEADERS_VERSION;
    fn top_error(response: &ElectLeadersResponse) -> i16 {
        response.error_code
    }
}

impl Forwarded for AlterPartitionReassignmentsRequest {
    type Response = AlterPartitionReassignmentsResponse;
    const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
    const VERSION: i16 = ALTER_REASSIGNMENTS_VERSION;
    fn top_error(response: &AlterPartitionReassignmentsResponse) -> i16 {
        response.error_code
    }
}

impl Forwarded for ListPartitionReassignmentsRequest {
    type Response = ListPartitionReassignmentsResponse;
    const KEY: ApiKey = ApiKey::ListPartitionReassignments;
    const VERSION: i16 = LIST_REASSIGNMENTS_VERSION;
    fn top_error(response: &ListPartitionReassignmentsResponse) -> i16 {
        response.error_code
    }
}

/// Sends a client's request to the active controller and answers its response, from any
/// shard.
pub async fn to_controller<R: Forwarded>(
    request: R,
    timeout: Duration,
) -> Result<R::Response, Failure> {
    rt::run_on(0, move || async move {
        let forwarder = forwarder().ok_or((
            error_code::NOT_CONTROLLER,
            "not part of a cluster".to_string(),
        ))?;
        forwarder
            .call(R::KEY, R::VERSION, &request, timeout, |a: &R::Response| {
                R::top_error(a) == error_code::NOT_CONTROLLER
            })
            .await
    })
    .await
    .map_err(|_| (error_code::REQUEST_TIMED_OUT, "shutting down".to_string()))?
}
