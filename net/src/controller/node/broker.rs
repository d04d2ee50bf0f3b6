//! This node as a broker of the cluster: it registers with the active controller, heartbeats
//! to keep its session, and re-registers when the controller no longer knows its epoch (a
//! new incarnation after a restart gets a new epoch; Kafka's broker lifecycle). The
//! controller unfences it once its heartbeats show it has applied the metadata up to its own
//! registration.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt::{self, LocalEvent};

use super::requests::{HEARTBEAT_VERSION, REGISTRATION_VERSION};
use super::source::MetadataSource;
use crate::controller::metadata::{BROKER_ID_NOT_REGISTERED, STALE_BROKER_EPOCH};
use crate::controller::settings::QuorumSettings;
use crate::controller::transport::RpcClient;
use crate::kafka::error_code;

/// Kafka's security protocol id for PLAINTEXT.
const PLAINTEXT: i16 = 0;

/// How this broker is reached, as it registers it.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub host: String,
    pub port: u16,
    pub cluster_id: String,
}

thread_local! {
    /// This broker's epoch while it is registered (on shard 0, where its lifecycle runs).
    static EPOCH: Cell<Option<i64>> = const { Cell::new(None) };
    /// This process's incarnation id, once its lifecycle started (shard 0).
    static INCARNATION: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// The process is shutting down and asks the controller first (Kafka's controlled
    /// shutdown), and whether the controller has let it go.
    static SHUTDOWN: Rc<ControlledShutdown> = Rc::default();
}

fn shutdown_state() -> Rc<ControlledShutdown> {
    SHUTDOWN.with(Rc::clone)
}

#[derive(Default)]
struct ControlledShutdown {
    wanted: Cell<bool>,
    allowed: Cell<bool>,
    /// Rung when `wanted` is set (the lifecycle heartbeats at once) and when `allowed` is.
    changed: LocalEvent,
}

/// Kafka's controlled shutdown, on shard 0 of a node of a cluster: tells the controller this
/// broker is going (heartbeats with `want_shut_down`), so it moves the partitions this broker
/// leads to other ISR members and takes it out of the ISRs, and returns once the controller
/// says it may go (`true`) or after `timeout` (`false`: the broker stops anyway, and its
/// partitions move when its session expires, as after a crash).
pub async fn shut_down_controlled(timeout: Duration) -> bool {
    if current_epoch().is_none() {
        return false;
    }
    let state = shutdown_state();
    state.wanted.set(true);
    state.changed.notify_all();
    let allowed = async {
        while !state.allowed.get() {
            state.changed.wait().await;
        }
    };
    rt::timeout(timeout, allowed).await.is_ok()
}

/// This process's incarnation id (shard 0 only): the metadata's registration of this broker
/// is this process's when it carries it.
pub fn incarnation() -> Option<[u8; 16]> {
    INCARNATION.with(Cell::get)
}

/// The broker epoch the controller gave this broker at its registration, while it holds
/// (shard 0 only): what requests naming the broker, such as AllocateProducerIds, carry.
pub fn current_epoch() -> Option<i64> {
    EPOCH.with(Cell::get)
}

/// Registers and heartbeats for as long as the shard runs.
pub async fn run_lifecycle(
    settings: QuorumSettings,
    advertised: Advertised,
    metadata: MetadataSource,
) {
    let voters = settings
        .voters
        .iter()
        .map(|v| (v.id, v.address.clone()))
        .collect();
    let interval = settings.broker_heartbeat_interval;
    let mut client = RpcClient::new(
        voters,
        format!("runnel-broker-{}", settings.node_id),
        // Short enough that a call to a controller that went silent (SIGSTOP, a partition)
        // leaves time to find the new one before the session expires.
        settings
            .broker_heartbeat_interval
            .min(settings.broker_session_timeout / 4),
    );
    let incarnation = uuid::Uuid::from_bytes(super::ids::random_id());
    INCARNATION.with(|i| i.set(Some(*incarnation.as_bytes())));
    let mut epoch: Option<i64> = None;
    let mut fenced = true;
    let shutdown = shutdown_state();
    loop {
        if let Some(leader) = metadata.leader() {
            client.aim_at(leader);
        }
        let applied = metadata.applied();
        let mut failed = false;
        match epoch {
            None => match register(&mut client, &settings, &advertised, incarnation).await {
                Ok(registered) => {
                    tracing::info!(epoch = registered, "registered with the controller");
                    epoch = Some(registered);
                }
                Err(reason) => {
                    tracing::debug!("broker registration: {reason}");
                    client.try_next();
                    failed = true;
                }
            },
            Some(current) => {
                let mut request = BrokerHeartbeatRequest::default();
                request.broker_id = BrokerId(settings.node_id);
                request.broker_epoch = current;
                request.current_metadata_offset = i64::try_from(applied).unwrap_or(i64::MAX);
                request.want_shut_down = shutdown.wanted.get();
                let answer: Result<BrokerHeartbeatResponse, _> = client
                    .call(ApiKey::BrokerHeartbeat, HEARTBEAT_VERSION, &request)
                    .await;
                match answer {
                    Ok(answer) if answer.error_code == 0 => {
                        if fenced != answer.is_fenced {
                            fenced = answer.is_fenced;
                            tracing::info!(fenced, "broker state changed by the controller");
                        }
                        if answer.should_shut_down && request.want_shut_down {
                            tracing::info!("the controller moved this broker's leaderships away; shutting down");
                            shutdown.allowed.set(true);
                            shutdown.changed.notify_all();
                        }
                    }
                    Ok(answer)
                        if answer.error_code == STALE_BROKER_EPOCH
                            || answer.error_code == BROKER_ID_NOT_REGISTERED =>
                    {
                        tracing::warn!(
                            code = answer.error_code,
                            "the controller no longer knows this broker; registering again"
                        );
                        epoch = None;
                    }
                    Ok(answer) => {
                        tracing::debug!(code = answer.error_code, "heartbeat refused");
                        if answer.error_code == error_code::NOT_CONTROLLER {
                            client.try_next();
                        }
                        failed = true;
                    }
                    Err(e) => {
                        tracing::debug!("heartbeat: {e}");
                        client.try_next();
                        failed = true;
                    }
                }
            }
        }
        EPOCH.with(|e| e.set(epoch));
        let shutting_down = shutdown.wanted.get();
        let pause = if epoch.is_some() && !failed && !shutting_down {
            interval
        } else {
            // Not registered, the last call failed, or shutting down: try again soon (with
            // the controller this node knows of by then), not a whole interval later.
            Duration::from_millis(100).min(interval)
        };
        // A controlled shutdown asked for meanwhile is heartbeated at once.
        let _ = rt::select(rt::sleep(pause), shutdown.changed.wait()).await;
    }
}

/// One registration attempt: the broker epoch, or why not.
async fn register(
    client: &mut RpcClient,
    settings: &QuorumSettings,
    advertised: &Advertised,
    incarnation: uuid::Uuid,
) -> Result<i64, String> {
    let mut listener = Listener::default();
    listener.name = StrBytes::from_static_str("PLAINTEXT");
    listener.host = StrBytes::from_string(advertised.host.clone());
    listener.port = advertised.port;
    listener.security_protocol = PLAINTEXT;
    let mut request = BrokerRegistrationRequest::default();
    request.broker_id = BrokerId(settings.node_id);
    request.cluster_id = StrBytes::from_string(advertised.cluster_id.clone());
    request.incarnation_id = incarnation;
    request.listeners = vec![listener];
    let answer: BrokerRegistrationResponse = client
        .call(ApiKey::BrokerRegistration, REGISTRATION_VERSION, &request)
        .await
        .map_err(|e| e.to_string())?;
    match answer.error_code {
        0 => Ok(answer.broker_epoch),
        code => Err(format!("refused with error {code}")),
    }
}
