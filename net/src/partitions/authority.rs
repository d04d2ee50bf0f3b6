//! Who decides topic changes. A broker running alone decides them itself, in its own registry
//! ([`super::shard`]). In a cluster the active controller decides every one: the controller
//! module installs a [`TopicAuthority`] on shard 0 at start, and the topic-change functions of
//! [`super::shard`] hand their changes to it instead of changing the local registry (which
//! then follows the committed metadata).
//!
//! The trait lives here, below everything that changes topics (groups, transactions,
//! handlers), so that they need not know about the controller, which sits above them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::shard::CreateError;

/// A future on the shard it was made on.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// How long a change waits for an answer when its request sets no timeout (Kafka's
/// `request.timeout.ms` default for forwarded requests).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the broker's own creations (internal topics for a coordinator, auto-created
/// topics) wait for the controller: their clients retry, and must not hang meanwhile.
pub const AUTO_CREATE_TIMEOUT: Duration = Duration::from_secs(5);

/// A topic to create, as CreateTopics (or a coordinator, or auto-creation) asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the default (ignored when `assignment` is given).
    pub partitions: i32,
    /// -1: the default (ignored when `assignment` is given).
    pub replication_factor: i16,
    /// The replicas of partitions 0, 1, ... when given explicitly; empty: the authority
    /// places them.
    pub assignment: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// A topic as created (or, validating only, as it would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Nil when only validated.
    pub id: uuid::Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// Decides topic changes for this broker. Called on shard 0 only; every call is bounded by
/// `timeout` (the request's) and answers a retriable [`CreateError::Refused`] when no decision
/// could be had in time.
pub trait TopicAuthority: std::fmt::Debug {
    fn create_topic(
        &self,
        topic: TopicSpec,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<CreatedTopic, CreateError>>;

    /// Answers the deleted topic's id.
    fn delete_topic(
        &self,
        name: String,
        timeout: Duration,
    ) -> LocalFuture<Result<uuid::Uuid, CreateError>>;

    /// Grows `name` to `total` partitions, with the new partitions' replicas when given.
    fn create_partitions(
        &self,
        name: String,
        total: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>>;

    /// Sets (`Some`) or removes (`None`) some of a topic's configs; the others stay. Names and
    /// values were checked by the broker.
    fn alter_topic_configs(
        &self,
        name: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>>;

    /// The same for dynamic broker configs: `broker` is `None` for the cluster-wide defaults
    /// (Kafka's broker resource named ""), else a broker's id. Once decided, waits until this
    /// broker's own defaults show the change.
    fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
        timeout: Duration,
    ) -> LocalFuture<Result<(), CreateError>>;
}

/// Set once at start-up, before any shard serves, when the broker is part of a cluster.
static IN_CLUSTER: AtomicBool = AtomicBool::new(false);

thread_local! {
    static AUTHORITY: RefCell<Option<Rc<dyn TopicAuthority>>> = const { RefCell::new(None) };
}

/// Says, before the shards start, that this broker is part of a cluster: from then on no
/// topic change is made locally, even before the authority is installed.
pub fn expect_cluster() {
    IN_CLUSTER.store(true, Ordering::Release);
}

/// Whether topic changes are the controller's (on any shard).
pub fn in_cluster() -> bool {
    IN_CLUSTER.load(Ordering::Acquire)
}

/// The timeout a request's `timeout_ms` asks for; the default when it sets none.
pub fn request_timeout(timeout_ms: i32) -> Duration {
    match u64::try_from(timeout_ms) {
        Ok(ms) if ms > 0 => Duration::from_millis(ms).min(MAX_TIMEOUT),
        _ => DEFAULT_TIMEOUT,
    }
}

/// A request waits no longer than this, whatever it asks.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Makes `authority` decide this broker's topic changes (on shard 0, at start, in a cluster).
pub fn install(authority: Rc<dyn TopicAuthority>) {
    AUTHORITY.with(|a| *a.borrow_mut() = Some(authority));
}

/// Who decides a change, asked on shard 0.
#[derive(Debug)]
pub enum Decider {
    /// This broker, alone: the local registry changes.
    Local,
    /// The cluster's authority.
    Cluster(Rc<dyn TopicAuthority>),
}

/// Who decides topic changes now (on shard 0). A broker of a cluster whose authority is not
/// installed yet (it is still starting) refuses with a retriable error rather than change its
/// registry on its own.
pub fn decider() -> Result<Decider, CreateError> {
    match AUTHORITY.with(|a| a.borrow().clone()) {
        Some(authority) => Ok(Decider::Cluster(authority)),
        None if in_cluster() => Err(CreateError::Refused {
            code: NOT_CONTROLLER,
            message: "this broker is still joining the cluster; retry".into(),
        }),
        None => Ok(Decider::Local),
    }
}

/// Kafka's NOT_CONTROLLER (retriable: clients look for the controller again).
const NOT_CONTROLLER: i16 = kafka_protocol::error::ResponseError::NotController.code();
