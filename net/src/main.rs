//! `runnel`: the broker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use runnel_engine::rt::Runtime;
use runnel_net::config::Config;
use runnel_net::controller::node::broker::Advertised;
use runnel_net::controller::settings::QuorumSettings;
use runnel_net::data_dir::DataDir;
use runnel_net::kafka::BrokerInfo;
use runnel_net::listener::{accept_loop, ShardListeners};
use runnel_net::partitions::configs::broker_state::{BrokerConfigs, DynamicConfigs};
use runnel_net::partitions::offline::OfflinePartitions;
use runnel_net::partitions::shard::{start_shard, TopicDefaults};
use runnel_net::partitions::topics::{remove_orphan_partitions, Topics};
use runnel_net::signals;
use runnel_net::start_gate::start_gate;

/// Runnel: a Kafka-compatible streaming broker, thread-per-core on io_uring.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// A tuning profile: `tuning/NAME.toml` (low-latency, realtime, throughput, durable), or
    /// a path.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// TOML config file, over the profile; settings neither sets keep their defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards, 0 for one per core (overrides `cores`).
    #[arg(long)]
    cores: Option<usize>,
    /// Admin HTTP port for `GET /metrics` (overrides `admin_listen`).
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<String>,
    /// I/O backend: auto, uring or epoll (overrides `io.backend`).
    #[arg(long, value_name = "BACKEND")]
    io_backend: Option<String>,
    /// This node's id (overrides `node_id`).
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// The controller quorum's voters, `id@host:port,...`: run as a node of that cluster
    /// (overrides `cluster.controller_quorum_voters`).
    #[arg(long, value_name = "VOTERS")]
    controller_quorum_voters: Option<String>,
}

/// How long a broker of a cluster waits, on SIGTERM, for the controller to move its partitions'
/// leadership away before it stops regardless.
const CONTROLLED_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// A thread that panics (a shard, a pool thread) stops the broker in the orderly way: it logs
/// and sends this process SIGTERM, so the main thread shuts every shard down (no clean-shutdown
/// marker is written, as the dead shard can't close its logs) and the process exits with an
/// error. A broker serving on with a dead shard would answer its partitions' requests with
/// errors forever.
fn stop_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!("a broker thread panicked; shutting down");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM);
    }));
}

fn run(cli: Cli) -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask.
    signals::block_shutdown_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    stop_on_panic();
    if let Some(faults) = runnel_engine::rt::fault::install_from_env()? {
        tracing::warn!(%faults, "storage faults injected (RUNNEL_FAULTS): for tests only");
    }

    let profile = cli
        .profile
        .as_deref()
        .map(runnel_net::config::profile_path)
        .transpose()?;
    let layers: Vec<&std::path::Path> = profile
        .iter()
        .chain(&cli.config)
        .map(PathBuf::as_path)
        .collect();
    let mut config = Config::load_layers(&layers).map_err(|e| e.to_string())?;
    config
        .validate_topic_defaults()
        .map_err(|e| e.to_string())?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(cores) = cli.cores {
        config.cores = cores;
    }
    if let Some(backend) = cli.io_backend {
        config.io.backend = backend;
    }
    if let Some(admin) = cli.admin_listen {
        config.admin_listen = Some(admin);
    }
    if let Some(id) = cli.node_id {
        config.node_id = id;
    }
    if let Some(voters) = cli.controller_quorum_voters {
        config.cluster.controller_quorum_voters = voters;
    }
    let quorum =
        QuorumSettings::resolve(config.node_id, &config.cluster).map_err(|e| e.to_string())?;
    if quorum.is_some() {
        config
            .replication
            .validate()
            .map_err(|e| format!("[replication]: {e}"))?;
        runnel_net::replication::install(config.node_id, config.replication);
    }
    match runnel_net::limits::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let runtime_config = config.runtime().map_err(|e| e.to_string())?;
    let limits = config.connection_limits().map_err(|e| e.to_string())?;
    runnel_net::conn_limits::queued::QUEUED_REQUEST_BYTES.set_cap(limits.queued_max_request_bytes);
    runnel_net::conn_limits::per_ip::CONNECTIONS_PER_IP.set_max(limits.max_connections_per_ip);
    let listen = config.listen_addr().map_err(|e| e.to_string())?;
    let data_dir = DataDir::open(&config.data_dir)
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;

    if quorum.is_some() {
        // Topic changes and producer ids are the cluster's controller's, never this broker's
        // alone (they are asked of it once the node has joined).
        runnel_net::partitions::authority::expect_cluster();
        runnel_net::producer_ids::init_cluster()
    } else {
        runnel_net::producer_ids::init(data_dir.path())
    }
    .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let shards = runtime_config.shard_count();
    config.check_cleaner(shards).map_err(|e| e.to_string())?;
    let listeners = Arc::new(
        ShardListeners::bind(listen, shards)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?,
    );
    let bound = listeners.local_addr();
    let admin = match &config.admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr.as_str())
                .map_err(|e| format!("cannot listen on the admin port {addr}: {e}"))?,
        ),
        None => None,
    };
    let admin_bound = admin.as_ref().and_then(|l| l.local_addr().ok());
    let admin = Arc::new(Mutex::new(admin));
    let (advertised_host, advertised_port) = config.advertised(bound).map_err(|e| e.to_string())?;
    let advertised = format!("{advertised_host}:{advertised_port}");
    let cluster_id = data_dir
        .cluster_id()
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let broker = Arc::new(BrokerInfo {
        node_id: config.node_id,
        in_cluster: quorum.is_some(),
        advertised_host,
        advertised_port,
        cluster_id,
        max_request_bytes: config.socket_request_max_bytes,
        auto_create_topics: config.auto_create_topics,
        zero_copy_fetch: config.fetch_zero_copy,
        fetch_splice_min_bytes: config.fetch_splice_min_bytes,
        groups: config.groups.clone(),
        transactions: config.transactions.clone(),
        connections_max_idle: limits.connections_max_idle,
    });
    // The metadata quorum's log, read before any shard starts (small, and nothing is served).
    let quorum_started = quorum.is_some();
    let cluster_start = match quorum {
        Some(settings) => {
            let found = runnel_net::controller::node::disk::recover(data_dir.path())
                .map_err(|e| format!("metadata log in {}: {e}", config.data_dir.display()))?;
            let advertised = Advertised {
                host: broker.advertised_host.clone(),
                port: broker.advertised_port,
                cluster_id: broker.cluster_id.clone(),
            };
            Some((settings, found, advertised))
        }
        None => None,
    };
    let cluster_start = Arc::new(Mutex::new(cluster_start));
    let clean_shutdown = data_dir
        .take_clean_shutdown_marker()
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let dynamic = DynamicConfigs::load(data_dir.path())
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    let broker_configs = BrokerConfigs {
        node_id: config.node_id,
        static_topic_defaults: config.topic_defaults.clone(),
        static_settings: config.kafka_broker_settings(&advertised, bound),
        dynamic,
    };
    let defaults = TopicDefaults::new(config.num_partitions, broker_configs, 0);
    // Dynamic configs saved by an earlier run were checked then; check them again under
    // this run's config file, and say which setting is wrong rather than misconfigure logs.
    runnel_net::partitions::topic_config::log_config(&defaults.configs)
        .map_err(|e| format!("broker configs (config file and broker_configs.toml): {e}"))?;
    let defaults = Arc::new(defaults);
    let mut topics = Topics::load(data_dir.path(), shards)
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    if quorum_started {
        topics = topics.without_leaders();
    }
    let topics = Arc::new(topics);
    let orphans = remove_orphan_partitions(data_dir.path(), &topics)
        .map_err(|e| format!("data directory {}: {e}", config.data_dir.display()))?;
    if !orphans.is_empty() {
        tracing::warn!(?orphans, "removed partition directories of deleted topics");
    }
    let close_failures = Arc::new(AtomicUsize::new(0));
    let shards_closed = Arc::new(AtomicUsize::new(0));
    let closed_counter = shards_closed.clone();
    let offline = Arc::new(OfflinePartitions::default());
    // Nobody is served until every shard has opened its partitions (and "listening" is logged
    // only then), so no request finds a partition whose log isn't open yet.
    let (gate, shard_starts) = start_gate(shards);
    let shard_starts = Arc::new(Mutex::new(
        shard_starts.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let for_shards = listeners.clone();
    let shard_failures = close_failures.clone();
    let logs_dir = data_dir.path().to_path_buf();
    let runtime = Runtime::start(runtime_config, move |shard| {
        let listener = for_shards.take(shard);
        let broker = broker.clone();
        let (topics, dir, failures) = (topics.clone(), logs_dir.clone(), shard_failures.clone());
        let closed = closed_counter.clone();
        let defaults = defaults.clone();
        let offline = offline.clone();
        let admin = admin.clone();
        let cluster_start = cluster_start.clone();
        let start = shard_starts.lock().unwrap_or_else(|e| e.into_inner())[shard]
            .take()
            .expect("each shard starts once");
        async move {
            runnel_net::metrics::observe_storage();
            let state = start_shard(dir, clean_shutdown, topics, defaults, offline).await;
            runnel_net::groups::coordinator::start(broker.groups.clone()).await;
            runnel_net::txn::coordinator::start(broker.transactions.clone()).await;
            if start.ready() {
                // Shard 0 serves the admin port.
                let admin = (shard == 0)
                    .then(|| admin.lock().unwrap_or_else(|e| e.into_inner()).take())
                    .flatten();
                if let Some(admin) = admin {
                    runnel_engine::rt::spawn_local(runnel_net::metrics::http::serve(admin));
                }
                let cluster_start = (shard == 0)
                    .then(|| {
                        cluster_start
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .take()
                    })
                    .flatten();
                if let Some((settings, found, advertised)) = cluster_start {
                    if let Err(e) =
                        runnel_net::controller::node::start(settings, found, advertised).await
                    {
                        tracing::error!("cannot join the cluster: {e}");
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::this(),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                }
                if shard == 0 {
                    // Every shard is up, so the topic change can reach them all.
                    let segment_bytes = broker.groups.offsets_topic_segment_bytes;
                    runnel_engine::rt::spawn_local(runnel_net::groups::offsets_topic::upgrade(
                        segment_bytes,
                    ));
                }
                if let Some(listener) = listener {
                    accept_loop(listener, broker).await;
                }
            }
            // Shutting down: close this shard's logs (sync, indexes, checkpoints). A shard
            // whose closes outlast the grace period is dropped before it counts itself closed,
            // and then no clean-shutdown marker is written.
            failures.fetch_add(state.logs.close_all().await, Ordering::SeqCst);
            closed.fetch_add(1, Ordering::SeqCst);
        }
    })
    .map_err(|e| e.to_string())?;
    drop(listeners);
    if let Err(shard) = gate.wait() {
        runtime.shutdown();
        return Err(format!("shard {shard} failed while opening its partitions"));
    }
    if let Some(admin) = admin_bound {
        tracing::info!("admin port (GET /metrics) on {admin}");
    }
    tracing::info!(
        listen = %bound,
        backend = %runtime.backend(),
        shards = runtime.shard_count(),
        data_dir = %data_dir.path().display(),
        "runnel listening on {bound}"
    );

    let signal = signals::wait_for_shutdown_signal().map_err(|e| format!("sigwait failed: {e}"))?;
    tracing::info!(%signal, "shutting down; a second signal exits at once");
    std::thread::spawn(|| {
        if let Ok(signal) = signals::wait_for_shutdown_signal() {
            tracing::warn!(%signal, "second signal: exiting without a clean shutdown");
            std::process::exit(130);
        }
    });
    if quorum_started {
        // Kafka's controlled shutdown: the partitions this broker leads move to other
        // replicas before it stops serving them.
        let moved = runtime.handle().run_on(0, || {
            runnel_net::controller::node::broker::shut_down_controlled(CONTROLLED_SHUTDOWN_TIMEOUT)
        });
        if !matches!(moved, Ok(true)) {
            tracing::warn!("the controller did not move this broker's leaderships in time; stopping anyway (they move when its session expires)");
        }
    }
    runtime.shutdown();
    let joined = runtime.join().map_err(|e| e.to_string());
    let unclosed_shards = shards - shards_closed.load(Ordering::SeqCst);
    if unclosed_shards > 0 {
        tracing::warn!(
            shards = unclosed_shards,
            "shards did not finish closing their logs within the grace period; they are recovered at the next start"
        );
    } else if close_failures.load(Ordering::SeqCst) == 0 {
        data_dir
            .write_clean_shutdown_marker()
            .map_err(|e| format!("writing the clean-shutdown marker: {e}"))?;
        tracing::info!("clean shutdown complete");
    } else {
        tracing::warn!("some logs did not close cleanly; they are recovered at the next start");
    }
    joined
}
