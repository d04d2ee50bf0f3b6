//! What every shard's handlers know of the cluster: its brokers with their listeners, and
//! which node is the active controller. Shard 0 follows the metadata and publishes a new view
//! to every shard when either changes; handlers read their shard's copy without locking.
//!
//! A broker running alone (no quorum) never publishes one, and handlers answer for it alone.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use runnel_engine::rt;

/// A broker clients can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced brokers are registered but serve nothing (they stopped heartbeating, or have
    /// not caught up with the metadata yet): Metadata leaves them out.
    pub fenced: bool,
}

/// The cluster as this broker last heard of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster's id, once the quorum has chosen it.
    pub cluster_id: Option<String>,
    /// The active controller's node id, when one is known.
    pub controller: Option<i32>,
    /// Every registered broker, by id.
    pub brokers: Vec<BrokerEndpoint>,
}

impl ClusterView {
    /// The brokers clients may be sent to: neither fenced nor [unreachable](unreachable).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerEndpoint> {
        self.brokers
            .iter()
            .filter(|b| !b.fenced && !unreachable(b.id))
    }
}

/// The voters this node's controller links cannot reach right now: the connection to one
/// was lost, or connecting to it refused, and it has not been re-established. A broker that
/// dies closes every connection at once, so this knows of a death as soon as clients do,
/// before the controller has fenced it; written by the links as it happens and read by every
/// shard directly, with no publishing round in between, because a Metadata answer that
/// still names the dead leader sends librdkafka to its next periodic refresh (up to a
/// second later) instead of asking again until the new leader is elected.
#[derive(Debug, Default)]
pub struct Unreachable(Mutex<Vec<i32>>);

impl Unreachable {
    pub fn set(&self, broker: i32, unreachable: bool) {
        let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ids.retain(|&id| id != broker);
        if unreachable {
            ids.push(broker);
        }
    }

    pub fn contains(&self, broker: i32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&broker)
    }
}

thread_local! {
    static VIEW: RefCell<Option<Arc<ClusterView>>> = const { RefCell::new(None) };
    static UNREACHABLE: RefCell<Option<Arc<Unreachable>>> = const { RefCell::new(None) };
}

/// Whether this node's controller links cannot reach `broker` now (see [`Unreachable`]).
pub fn unreachable(broker: i32) -> bool {
    UNREACHABLE.with(|set| {
        set.borrow()
            .as_ref()
            .is_some_and(|set| set.contains(broker))
    })
}

/// Shares `set` with every shard; returns once each has it.
pub async fn install_unreachable(set: Arc<Unreachable>) {
    for shard in 0..rt::shard_count() {
        let set = set.clone();
        let _ = rt::run_on(shard, move || async move {
            UNREACHABLE.with(|current| *current.borrow_mut() = Some(set));
        })
        .await;
    }
}

/// This shard's view of the cluster; `None` on a broker that runs alone.
pub fn current() -> Option<Arc<ClusterView>> {
    VIEW.with(|view| view.borrow().clone())
}

/// The cluster id clients are told: the quorum's once chosen, else this broker's own (`own`:
/// a lone broker's, from its data directory).
pub fn cluster_id(own: &str) -> String {
    current()
        .and_then(|view| view.cluster_id.clone())
        .unwrap_or_else(|| own.to_owned())
}

/// Installs `view` on every shard; returns once each has it.
pub async fn publish(view: ClusterView) {
    let view = Arc::new(view);
    for shard in 0..rt::shard_count() {
        let view = view.clone();
        // A shard that stopped is shutting down with the rest: it serves nobody any more.
        let _ = rt::run_on(shard, move || async move {
            VIEW.with(|current| *current.borrow_mut() = Some(view));
        })
        .await;
    }
}
