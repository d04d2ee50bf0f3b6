//! What every shard's handlers know of the cluster: its brokers with their listeners, and
//! which node is the active controller. Shard 0 follows the metadata and publishes a new view
//! to every shard when either changes; handlers read their shard's copy without locking.
//!
//! A broker running alone (no quorum) never publishes one, and handlers answer for it alone.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use runnel_engine::rt::{self, PeerClosedProbe, TcpStream};

use crate::controller::transport::LinkState;

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
    /// The brokers clients may be sent to: neither fenced nor `unreachable` (taken from
    /// [`unreachable_now`]).
    pub fn live_brokers<'a>(
        &'a self,
        unreachable: &'a [i32],
    ) -> impl Iterator<Item = &'a BrokerEndpoint> {
        self.brokers
            .iter()
            .filter(|b| !b.fenced && !unreachable.contains(&b.id))
    }
}

/// The voters this node's controller links cannot reach right now: the connection to one
/// was lost, or connecting to it refused, and it has not been re-established; or it is up but
/// its peer has already closed it, which the link has not read yet. A broker that dies
/// closes every connection at once, so this knows of a death as soon as clients do, before
/// the controller has fenced it; written by the links as it happens and read by every shard
/// directly, with no publishing round in between, because a Metadata answer that still names
/// the dead leader sends librdkafka to its next periodic refresh (up to a second later)
/// instead of asking again until the new leader is elected. Asking the connections
/// themselves closes the last gap: a client that saw the death can ask this node before the
/// link's task (on another shard, or later in its own shard's turn) has run.
#[derive(Debug, Default)]
pub struct Unreachable(Mutex<Links>);

/// A broker this node's links cannot reach, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub broker: i32,
    pub since: Instant,
}

#[derive(Debug, Default)]
struct Links {
    /// Peers whose link is down, and since when.
    down: Vec<(i32, Instant)>,
    /// Peers whose link is up, with a probe of its connection when one could be made.
    up: Vec<(i32, Option<PeerClosedProbe>)>,
}

impl Unreachable {
    /// Takes a report of the link to `broker` (see [`Watcher`](crate::controller::transport::Watcher)).
    pub fn link_changed(&self, broker: i32, state: LinkState, connection: Option<&TcpStream>) {
        match connection {
            Some(connection) if state == LinkState::Up => {
                self.up(broker, connection.closed_probe().ok())
            }
            _ => self.down(broker),
        }
    }

    /// The link to `broker` is up, on the connection `probe` watches.
    fn up(&self, broker: i32, probe: Option<PeerClosedProbe>) {
        let mut links = self.links();
        links.down.retain(|(id, _)| *id != broker);
        links.up.retain(|(id, _)| *id != broker);
        links.up.push((broker, probe));
    }

    /// The link to `broker` is down (lost, or connecting refused); a link that was down
    /// already keeps the time it went down.
    fn down(&self, broker: i32) {
        let mut links = self.links();
        links.up.retain(|(id, _)| *id != broker);
        if !links.down.iter().any(|(id, _)| *id == broker) {
            links.down.push((broker, Instant::now()));
        }
    }

    /// The peers unreachable now, each with when it was lost (a connection whose close the
    /// link has not read yet: just now). One system call per link that is up: take it once
    /// per answer, not per partition.
    pub fn lost(&self) -> Vec<Lost> {
        let links = self.links();
        let now = Instant::now();
        let closed = links
            .up
            .iter()
            .filter(|(_, probe)| probe.as_ref().is_some_and(PeerClosedProbe::peer_has_closed))
            .map(|&(broker, _)| Lost { broker, since: now });
        links
            .down
            .iter()
            .map(|&(broker, since)| Lost { broker, since })
            .chain(closed)
            .collect()
    }

    /// The peers unreachable now.
    pub fn now(&self) -> Vec<i32> {
        self.lost().iter().map(|l| l.broker).collect()
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    static VIEW: RefCell<Option<Arc<ClusterView>>> = const { RefCell::new(None) };
    static UNREACHABLE: RefCell<Option<Arc<Unreachable>>> = const { RefCell::new(None) };
}

/// The brokers this node's controller links cannot reach now (see [`Unreachable`]).
pub fn unreachable_now() -> Vec<i32> {
    lost_now().iter().map(|l| l.broker).collect()
}

/// [`unreachable_now`], with when each was lost.
pub fn lost_now() -> Vec<Lost> {
    UNREACHABLE.with(|set| {
        set.borrow()
            .as_ref()
            .map(|set| set.lost())
            .unwrap_or_default()
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
