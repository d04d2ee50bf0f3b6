//! What every shard's handlers know of the cluster: its brokers with their listeners, and
//! which node is the active controller. Shard 0 follows the metadata and publishes a new view
//! to every shard when either changes; handlers read their shard's copy without locking.
//!
//! A broker running alone (no quorum) never publishes one, and handlers answer for it alone.

use std::cell::RefCell;
use std::sync::Arc;

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
    /// The brokers clients may be sent to.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerEndpoint> {
        self.brokers.iter().filter(|b| !b.fenced)
    }
}

thread_local! {
    static VIEW: RefCell<Option<Arc<ClusterView>>> = const { RefCell::new(None) };
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
