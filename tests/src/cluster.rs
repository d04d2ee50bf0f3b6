//! Several `runnel` processes on 127.0.0.1 forming one cluster, each with its own data
//! directory and ports: by default every node a broker and a voter of the controller quorum
//! (Kafka's combined mode); [`Cluster::start_roles`] mixes in controller-only and
//! broker-only nodes.
//!
//! A partitionable cluster sends every node's controller traffic to every other through a
//! [`Proxy`] of its own (node a reaches node b at the address of proxy (a, b)), so a test can
//! cut any pair of nodes apart in both directions while the rest stay connected. Each node
//! also advertises a proxy in front of its Kafka listener, so that every Kafka connection to
//! it (followers fetching, clients producing and consuming) passes one place a test can cut:
//! [`Cluster::cut_off`] isolates a node from everything that reaches it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};

use crate::kafka::KafkaConn;
use crate::proxy::Proxy;
use crate::{Broker, TempDir};

/// One node: its data, its controller port, and its process while it runs.
#[derive(Debug)]
pub struct Node {
    pub id: i32,
    pub dir: TempDir,
    pub controller_port: u16,
    config: std::path::PathBuf,
    pub broker: Option<Broker>,
}

/// A cluster of nodes with ids 1..=n.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// (from, to) -> the proxy `from` reaches `to` through, when partitionable.
    links: BTreeMap<(i32, i32), Proxy>,
    /// node -> the proxy it advertises in front of its Kafka listener, when partitionable.
    kafka_fronts: BTreeMap<i32, Proxy>,
    /// One cluster at a time in a test process: three brokers replicating to each other load
    /// a two-core machine enough that two clusters side by side miss their timeouts.
    _alone: std::sync::MutexGuard<'static, ()>,
}

/// Held by the cluster running now.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Timing for tests: elections within about a second, brokers fenced after two; metadata
/// snapshots every few entries, so that restarts go through them.
const TIMING: &str = "election_timeout_ms = 500
broker_heartbeat_interval_ms = 250
broker_session_timeout_ms = 2000
metadata_snapshot_bytes = 1024
";

/// A free port on 127.0.0.1 (bound and released: another process could take it first, which
/// the broker then reports as a failure to listen).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What a node of a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// A broker and a voter of the controller quorum (Kafka's combined mode).
    Combined,
    /// A voter only: it hosts no partition and never registers as a broker.
    Controller,
    /// A broker only: it follows the quorum's metadata without voting.
    Broker,
}

impl Cluster {
    /// Starts `n` nodes whose controllers talk directly.
    pub fn start(name: &str, n: usize) -> Cluster {
        Self::start_with(name, &vec![NodeRole::Combined; n], false)
    }

    /// Starts `n` nodes whose controllers talk through one proxy per ordered pair.
    pub fn start_partitionable(name: &str, n: usize) -> Cluster {
        Self::start_with(name, &vec![NodeRole::Combined; n], true)
    }

    /// Starts nodes 1, 2, ... with these roles; controllers talk directly.
    pub fn start_roles(name: &str, roles: &[NodeRole]) -> Cluster {
        Self::start_with(name, roles, false)
    }

    fn start_with(name: &str, roles: &[NodeRole], partitionable: bool) -> Cluster {
        // A test that failed while holding it poisoned it; the next may still run.
        let alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<i32> = (1..=roles.len() as i32).collect();
        let role_of = |id: i32| roles[(id - 1) as usize];
        let voter_ids: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|&id| role_of(id) != NodeRole::Broker)
            .collect();
        let ports: BTreeMap<i32, u16> = ids.iter().map(|&id| (id, free_port())).collect();
        let mut links = BTreeMap::new();
        if partitionable {
            for &from in &ids {
                for &to in &voter_ids {
                    if from != to {
                        let proxy = Proxy::start();
                        let target: SocketAddr = format!("127.0.0.1:{}", ports[&to])
                            .parse()
                            .expect("address");
                        proxy.set_target(target);
                        links.insert((from, to), proxy);
                    }
                }
            }
        }
        let kafka_fronts: BTreeMap<i32, Proxy> = if partitionable {
            ids.iter().map(|&id| (id, Proxy::start())).collect()
        } else {
            BTreeMap::new()
        };
        let mut nodes = Vec::new();
        for &id in &ids {
            let voters: Vec<String> = voter_ids
                .iter()
                .map(|&other| match links.get(&(id, other)) {
                    Some(proxy) => format!("{other}@{}", proxy.addr),
                    None => format!("{other}@127.0.0.1:{}", ports[&other]),
                })
                .collect();
            let dir = TempDir::new(&format!("{name}-node{id}"));
            let config = dir.path().join("runnel.toml");
            let advertised = kafka_fronts.get(&id).map_or_else(String::new, |front| {
                format!("advertised_listener = \"{}\"\n", front.addr)
            });
            let role = match role_of(id) {
                NodeRole::Combined => format!("controller_listen = \"127.0.0.1:{}\"\n", ports[&id]),
                NodeRole::Controller => format!(
                    "controller_listen = \"127.0.0.1:{}\"\nprocess_roles = [\"controller\"]\n",
                    ports[&id]
                ),
                NodeRole::Broker => String::new(),
            };
            let text = format!(
                "node_id = {id}\n{advertised}[cluster]\ncontroller_quorum_voters = \"{}\"\n\
                 {role}{TIMING}",
                voters.join(","),
            );
            std::fs::write(&config, text).expect("write the node's config");
            nodes.push(Node {
                id,
                dir,
                controller_port: ports[&id],
                config,
                broker: None,
            });
        }
        let mut cluster = Cluster {
            nodes,
            links,
            kafka_fronts,
            _alone: alone,
        };
        for id in ids {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a node of the cluster")
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("a node of the cluster")
    }

    /// Starts (or restarts) node `id` on its data directory.
    pub fn start_node(&mut self, id: i32) {
        let node = self.node_mut(id);
        let config = node.config.to_str().expect("UTF-8 path").to_owned();
        let broker = Broker::start_in(&node.dir, "auto", &["--config", &config]);
        if std::env::var_os("RUNNEL_TEST_BROKER_LOG").is_some() {
            eprintln!("node {id} is broker[{}]", broker.pid());
        }
        // A restarted broker listens on another port: its front follows it.
        if let Some(front) = self.kafka_fronts.get(&id) {
            front.set_target(broker.addr);
        }
        self.node_mut(id).broker = Some(broker);
    }

    /// SIGKILLs node `id` and waits for it to die.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut broker) = self.node_mut(id).broker.take() {
            broker.signal(libc::SIGKILL);
            let _ = broker.wait_exit(Duration::from_secs(10));
        }
    }

    /// Sends `signal` to running node `id` (SIGSTOP and SIGCONT pause and resume it).
    pub fn signal(&self, id: i32, signal: libc::c_int) {
        self.node(id)
            .broker
            .as_ref()
            .expect("node is running")
            .signal(signal);
    }

    /// The Kafka address of running node `id`.
    pub fn addr(&self, id: i32) -> SocketAddr {
        self.node(id).broker.as_ref().expect("node is running").addr
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.broker.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// Cuts the controller links between `a` and `b`, both ways (or heals them).
    pub fn set_cut(&self, a: i32, b: i32, cut: bool) {
        for key in [(a, b), (b, a)] {
            self.links
                .get(&key)
                .expect("a partitionable cluster")
                .set_blocked(cut);
        }
    }

    /// Cuts node `id` off from every other node (or heals it).
    pub fn set_isolated(&self, id: i32, isolated: bool) {
        for other in self.nodes.iter().map(|n| n.id).filter(|&o| o != id) {
            self.set_cut(id, other, isolated);
        }
    }

    /// [`set_isolated`](Self::set_isolated), and its Kafka listener cut off as well: every
    /// connection to it through its advertised address (other brokers' fetches, clients) is
    /// cut and new ones refused, while it keeps running and believing what it believed.
    pub fn cut_off(&self, id: i32, cut: bool) {
        self.set_isolated(id, cut);
        self.kafka_fronts
            .get(&id)
            .expect("a partitionable cluster")
            .set_blocked(cut);
    }

    /// DescribeCluster (v2, fenced brokers included) as node `id` answers it.
    pub fn describe(&self, id: i32) -> std::io::Result<DescribeClusterResponse> {
        let mut conn = KafkaConn::connect(self.addr(id))?;
        let mut request = DescribeClusterRequest::default();
        request.include_fenced_brokers = true;
        request.endpoint_type = 1;
        conn.call(ApiKey::DescribeCluster, 2, &request)
    }

    /// Waits until every running node in `among` names the same active controller, which is
    /// itself one of `among`; returns it.
    pub fn wait_for_controller(&self, among: &[i32], timeout: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let named = among
                .iter()
                .map(|&id| self.describe(id).map(|d| d.controller_id.0).unwrap_or(-2))
                .collect::<Vec<_>>();
            let first = named[0];
            if first >= 0 && among.contains(&first) && named.iter().all(|&c| c == first) {
                return Ok(first);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no agreed controller among {among:?} within {timeout:?}: they name {named:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
