//! The broker's configuration: built-in defaults, then a TOML file, then command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_engine::rt::{BackendChoice, RuntimeConfig};
use serde::Deserialize;

/// Broker settings. Every field has a default, so an empty file (or none) is a valid config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the broker listens on (every shard binds it with SO_REUSEPORT).
    pub listen: String,
    /// Directory holding the partitions' logs and the broker's metadata.
    pub data_dir: PathBuf,
    /// Number of shards (threads pinned to cores); 0 means one per online core.
    pub cores: usize,
    /// This broker's id (Kafka's `node.id`), as Metadata reports it.
    pub node_id: i32,
    /// `host:port` clients are told to connect to (Kafka's `advertised.listeners`). Default:
    /// the listen address, or this machine's host name when listening on all addresses.
    pub advertised_listener: Option<String>,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`); larger ones are
    /// refused from their size prefix, before anything is allocated, and the connection closed.
    pub socket_request_max_bytes: usize,
    /// Bytes of request frames read but not yet answered, across all connections and shards
    /// (Kafka's `queued.max.request.bytes`); at the cap connections stop reading until
    /// responses go out. -1: no cap.
    pub queued_max_request_bytes: i64,
    /// A connection with no request in flight that receives nothing for this long is closed
    /// (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Open connections allowed from one client address, across all shards (Kafka's
    /// `max.connections.per.ip`); one more is closed as soon as it is accepted.
    pub max_connections_per_ip: i32,
    /// Create topics that Metadata requests name (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Send fetched records from the page cache with splice (true) or copy them through the
    /// broker's memory (false: for comparison, and what TLS will need).
    pub fetch_zero_copy: bool,
    /// With zero copy, partition reads smaller than this are still copied: splicing costs
    /// two operations per read in the response's send, which for fetches of many partitions
    /// with a little data each takes longer than the copy (bench/RESULTS.md). 0 splices all.
    pub fetch_splice_min_bytes: u64,
    /// Partitions of topics created without a count or auto-created (Kafka's
    /// `num.partitions`).
    pub num_partitions: i32,
    /// How long a partition remembers an idempotent producer that stopped appending (Kafka's
    /// `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// How often each shard applies retention and forgets expired producers (Kafka's
    /// `log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: u64,
    /// Run the log cleaner, which compacts topics whose `cleanup.policy` has `compact`
    /// (Kafka's `log.cleaner.enable`). Off, compacted topics (`__consumer_offsets` too) grow
    /// without bound.
    pub log_cleaner_enable: bool,
    /// Memory for the cleaners' offset maps, shared evenly by the shards (Kafka's
    /// `log.cleaner.dedupe.buffer.size`, shared by its cleaner threads): 24 bytes a key, and a
    /// pass cleans as much of a log as its shard's share covers.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// The cleaners' read and write rate, bytes per second, shared evenly by the shards
    /// (Kafka's `log.cleaner.io.max.bytes.per.second`). Default: unlimited.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// How long a shard's cleaner waits when none of its logs needs cleaning (Kafka's
    /// `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// Topic configs, by Kafka's names, for topics that don't set them (Kafka's broker-level
    /// `log.*` defaults), e.g. `"flush.policy" = "always"`.
    pub topic_defaults: BTreeMap<String, String>,
    /// I/O backend settings.
    pub io: IoConfig,
    /// Shutdown behaviour.
    pub shutdown: ShutdownConfig,
    /// Consumer groups and committed offsets.
    pub groups: GroupsConfig,
    /// The transaction coordinator.
    pub transactions: TransactionsConfig,
    /// `host:port` of the admin HTTP port (`GET /metrics`, Prometheus text); off when unset.
    pub admin_listen: Option<String>,
    /// Running as one broker of a cluster: the controller quorum and this node's part in it.
    pub cluster: ClusterConfig,
    /// How partitions are replicated in a cluster (Kafka's `replica.*` settings).
    pub replication: crate::replication::ReplicationSettings,
}

/// The `[cluster]` table: Kafka's KRaft settings. Left empty, Runnel is one broker with no
/// quorum, as it has always been.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The controller quorum's voters, `id@host:port,...` (Kafka's `controller.quorum.voters`):
    /// each voter's node id and controller listener. Empty: a single broker, no quorum.
    pub controller_quorum_voters: String,
    /// What this node is (Kafka's `process.roles`): `broker`, `controller`, or both (Kafka's
    /// combined mode). Empty: both when this node is one of the voters, else `broker`.
    pub process_roles: Vec<String>,
    /// `host:port` of this node's controller listener, where the other voters and the brokers
    /// reach the quorum. Default: this node's address in `controller_quorum_voters`.
    pub controller_listen: Option<String>,
    /// `controller.quorum.election.timeout.ms`: how long a voter waits without hearing from
    /// the active controller before it stands for election (randomised up to twice this).
    /// Half Kafka's default, so that a new controller is elected and taking metadata changes
    /// within about a second of the old one's death; the leader heartbeats every tenth of it.
    pub election_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often a broker tells the active controller it lives.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced, and the
    /// partitions it leads get new leaders.
    pub broker_session_timeout_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: metadata log bytes after which a
    /// voter snapshots the metadata and drops the log before it.
    pub metadata_snapshot_bytes: u64,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership back to each
    /// partition's preferred replica (its first) once a broker's share of partitions it
    /// prefers but does not lead is above `leader_imbalance_per_broker_percentage`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds: how often that is checked.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `unclean.leader.election.enable`: for topics that do not set it themselves, the active
    /// controller elects an out-of-sync replica of a partition whose in-sync replicas are all
    /// gone, losing what only they had, rather than leave it without a leader.
    pub unclean_leader_election_enable: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            controller_quorum_voters: String::new(),
            process_roles: Vec::new(),
            controller_listen: None,
            election_timeout_ms: 500,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            metadata_snapshot_bytes: 20 << 20,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            unclean_leader_election_enable: false,
        }
    }
}

/// The `[groups]` table: Kafka's `group.*` and `offsets.*` broker settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsConfig {
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`). A group's
    /// coordinator is the shard owning partition abs(hash(group id)) % this; changing it
    /// after groups exist moves them away from their stored state, as in Kafka.
    pub offsets_topic_num_partitions: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members to join.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    /// `offsets.retention.minutes`: committed offsets of an empty group expire this long
    /// after the group emptied (or the commit, if later).
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`: longer commit metadata is refused.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` when it is made
    /// (small, so that the cleaner, which never touches the active segment, keeps it compact).
    pub offsets_topic_segment_bytes: i32,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            offsets_topic_num_partitions: 50,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_segment_bytes: 100 << 20,
        }
    }
}

/// The `[transactions]` table: Kafka's `transaction.*` and `transactional.id.*` broker
/// settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionsConfig {
    /// Partitions of `__transaction_state` (`transaction.state.log.num.partitions`). A
    /// transactional id's coordinator is the shard owning partition abs(hash(id)) % this.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of `__transaction_state` when it
    /// is made.
    pub state_log_segment_bytes: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask
    /// for (longer: INVALID_TRANSACTION_TIMEOUT).
    pub max_timeout_ms: i64,
    /// `transactional.id.expiration.ms`: a transactional id idle this long is forgotten.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are looked for (and aborted), and expired transactional ids too.
    pub abort_timed_out_interval_ms: u64,
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        TransactionsConfig {
            state_log_num_partitions: 50,
            state_log_segment_bytes: 100 << 20,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
        }
    }
}

/// The `[io]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IoConfig {
    /// `auto`, `uring` or `epoll`.
    pub backend: String,
    /// Submission queue entries per shard ring.
    pub ring_entries: u32,
    /// Threads of the epoll backend's file I/O pool.
    pub blocking_threads: usize,
    /// Microseconds an idle shard polls before blocking (0: block at once; spends CPU to cut
    /// wake-up latency).
    pub idle_poll_us: u64,
    /// Write log appends on the shard thread (pwritev) rather than through the backend: much
    /// lower append latency where the file system can't write the page cache without blocking
    /// (ext4), at the price of stalling the whole shard whenever the kernel throttles writes.
    pub inline_writes: bool,
    /// Run the shard threads and their io_uring workers under `SCHED_FIFO` at this priority
    /// (1-99; 0, the default: normal scheduling), so other processes on a shard's core don't
    /// preempt it; a shard busier than 90% of its core steps down until it has room again.
    /// Needs root, `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` this high, and the host's PID
    /// namespace; not with `idle_poll_us`.
    pub realtime_priority: u8,
}

/// The `[shutdown]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long in-flight work may take to finish after SIGTERM/SIGINT, in milliseconds.
    pub grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".into(),
            data_dir: PathBuf::from("./data"),
            cores: 0,
            node_id: 0,
            advertised_listener: None,
            socket_request_max_bytes: 100 << 20,
            queued_max_request_bytes: 512 << 20,
            connections_max_idle_ms: 600_000,
            max_connections_per_ip: i32::MAX,
            auto_create_topics: true,
            fetch_zero_copy: true,
            fetch_splice_min_bytes: 64 << 10,
            num_partitions: 1,
            producer_id_expiration_ms: 86_400_000,
            log_retention_check_interval_ms: 30_000,
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_size: 128 << 20,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_backoff_ms: 15_000,
            topic_defaults: BTreeMap::new(),
            io: IoConfig::default(),
            shutdown: ShutdownConfig::default(),
            groups: GroupsConfig::default(),
            transactions: TransactionsConfig::default(),
            admin_listen: None,
            cluster: ClusterConfig::default(),
            replication: Default::default(),
        }
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        IoConfig {
            backend: "auto".into(),
            ring_entries: runtime.ring_entries,
            blocking_threads: runtime.blocking_threads,
            idle_poll_us: runtime.idle_poll.as_micros() as u64,
            inline_writes: runtime.inline_file_writes,
            realtime_priority: runtime.realtime_priority.unwrap_or(0),
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_ms: RuntimeConfig::default().shutdown_grace.as_millis() as u64,
        }
    }
}

/// The connection limits a config asks for, checked (see [`Config::connection_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub queued_max_request_bytes: Option<usize>,
    pub connections_max_idle: Duration,
    pub max_connections_per_ip: Option<usize>,
}

/// A configuration that could not be loaded or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

impl Config {
    /// Loads TOML files in order, each overriding what the earlier ones set (a profile, then
    /// a config file); settings none of them set keep their defaults.
    pub fn load_layers(paths: &[&Path]) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        for path in paths {
            // Each file must be a valid config on its own, so errors name the file.
            Self::load(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                })?;
            merge(&mut merged, table);
        }
        Config::deserialize(toml::Value::Table(merged)).map_err(|source| ConfigError::Invalid {
            setting: "config",
            reason: source.to_string(),
        })
    }

    /// Loads a TOML file; settings it leaves out keep their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The listen address, resolved.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs;
        let invalid = |reason: String| ConfigError::Invalid {
            setting: "listen",
            reason,
        };
        self.listen
            .to_socket_addrs()
            .map_err(|e| invalid(format!("{:?}: {e}", self.listen)))?
            .next()
            .ok_or_else(|| invalid(format!("{:?} resolves to no address", self.listen)))
    }

    /// The host and port to advertise for a listener bound at `bound`.
    pub fn advertised(&self, bound: SocketAddr) -> Result<(String, u16), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            setting: "advertised_listener",
            reason,
        };
        if let Some(listener) = &self.advertised_listener {
            let (host, port) = listener
                .rsplit_once(':')
                .ok_or_else(|| invalid(format!("{listener:?} is not host:port")))?;
            let port = port
                .parse()
                .map_err(|_| invalid(format!("{listener:?} has no valid port")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(invalid(format!("{listener:?} has no host")));
            }
            return Ok((host.to_owned(), port));
        }
        if bound.ip().is_unspecified() {
            let host = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .ok_or_else(|| {
                    invalid("bound to all addresses and no host name to advertise".into())
                })?;
            return Ok((host, bound.port()));
        }
        Ok((bound.ip().to_string(), bound.port()))
    }

    /// Checks the topic settings: `num_partitions` and every `[topic_defaults]` entry, the
    /// `[groups]` numbers, and the settings of the cleaner that don't depend on the shard
    /// count (see [`Config::check_cleaner`] for the one that does).
    pub fn validate_topic_defaults(&self) -> Result<(), ConfigError> {
        let groups = &self.groups;
        if !(1..=100_000).contains(&groups.offsets_topic_num_partitions) {
            return Err(ConfigError::Invalid {
                setting: "groups.offsets_topic_num_partitions",
                reason: format!(
                    "{} is not between 1 and 100000",
                    groups.offsets_topic_num_partitions
                ),
            });
        }
        if groups.offsets_topic_segment_bytes < 14 {
            // segment.bytes' own minimum: a segment must hold a batch's header.
            return Err(ConfigError::Invalid {
                setting: "groups.offsets_topic_segment_bytes",
                reason: format!("{} is below 14", groups.offsets_topic_segment_bytes),
            });
        }
        if groups.min_session_timeout_ms > groups.max_session_timeout_ms {
            return Err(ConfigError::Invalid {
                setting: "groups.min_session_timeout_ms",
                reason: "larger than max_session_timeout_ms".into(),
            });
        }
        let txn = &self.transactions;
        if !(1..=100_000).contains(&txn.state_log_num_partitions) {
            return Err(ConfigError::Invalid {
                setting: "transactions.state_log_num_partitions",
                reason: format!(
                    "{} is not between 1 and 100000",
                    txn.state_log_num_partitions
                ),
            });
        }
        if txn.state_log_segment_bytes < 14 {
            return Err(ConfigError::Invalid {
                setting: "transactions.state_log_segment_bytes",
                reason: format!("{} is below 14", txn.state_log_segment_bytes),
            });
        }
        for (setting, value) in [
            ("transactions.max_timeout_ms", txn.max_timeout_ms),
            ("transactions.id_expiration_ms", txn.id_expiration_ms),
            (
                "transactions.abort_timed_out_interval_ms",
                txn.abort_timed_out_interval_ms as i64,
            ),
        ] {
            if value < 1 {
                return Err(ConfigError::Invalid {
                    setting,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(1..=100_000).contains(&self.num_partitions) {
            return Err(ConfigError::Invalid {
                setting: "num_partitions",
                reason: format!("{} is not between 1 and 100000", self.num_partitions),
            });
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(ConfigError::Invalid {
                setting: "producer_id_expiration_ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.log_retention_check_interval_ms < 1 {
            return Err(ConfigError::Invalid {
                setting: "log_retention_check_interval_ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.log_cleaner_backoff_ms < 1 {
            // Kafka takes 0; here it would keep the shard's thread busy rechecking its logs.
            return Err(ConfigError::Invalid {
                setting: "log_cleaner_backoff_ms",
                reason: "must be at least 1".into(),
            });
        }
        let rate = self.log_cleaner_io_max_bytes_per_second;
        if rate.is_nan() || rate <= 0.0 {
            return Err(ConfigError::Invalid {
                setting: "log_cleaner_io_max_bytes_per_second",
                reason: "must be positive".into(),
            });
        }
        crate::partitions::topic_config::log_config(&self.topic_defaults)
            .map(drop)
            .map_err(|reason| ConfigError::Invalid {
                setting: "topic_defaults",
                reason,
            })
    }

    /// This config's settings by Kafka's broker config names (what DescribeConfigs reports as
    /// STATIC_BROKER_CONFIG), given the addresses the broker advertises and is bound to.
    pub fn kafka_broker_settings(
        &self,
        advertised: &str,
        bound: SocketAddr,
    ) -> BTreeMap<String, String> {
        [
            ("advertised.listeners", format!("PLAINTEXT://{advertised}")),
            (
                "auto.create.topics.enable",
                self.auto_create_topics.to_string(),
            ),
            ("broker.id", self.node_id.to_string()),
            (
                "connections.max.idle.ms",
                self.connections_max_idle_ms.to_string(),
            ),
            ("default.replication.factor", "1".to_string()),
            ("listeners", format!("PLAINTEXT://{bound}")),
            ("log.dirs", self.data_dir.display().to_string()),
            (
                "max.connections.per.ip",
                self.max_connections_per_ip.to_string(),
            ),
            ("node.id", self.node_id.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            (
                "producer.id.expiration.ms",
                self.producer_id_expiration_ms.to_string(),
            ),
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms.to_string(),
            ),
            ("log.cleaner.enable", self.log_cleaner_enable.to_string()),
            (
                "log.cleaner.dedupe.buffer.size",
                self.log_cleaner_dedupe_buffer_size.to_string(),
            ),
            (
                "log.cleaner.io.max.bytes.per.second",
                java_double(self.log_cleaner_io_max_bytes_per_second),
            ),
            (
                "log.cleaner.backoff.ms",
                self.log_cleaner_backoff_ms.to_string(),
            ),
            (
                "offsets.topic.num.partitions",
                self.groups.offsets_topic_num_partitions.to_string(),
            ),
            (
                "offsets.topic.segment.bytes",
                self.groups.offsets_topic_segment_bytes.to_string(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transactions.state_log_num_partitions.to_string(),
            ),
            (
                "transaction.state.log.segment.bytes",
                self.transactions.state_log_segment_bytes.to_string(),
            ),
            (
                "transaction.max.timeout.ms",
                self.transactions.max_timeout_ms.to_string(),
            ),
            (
                "transactional.id.expiration.ms",
                self.transactions.id_expiration_ms.to_string(),
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transactions.abort_timed_out_interval_ms.to_string(),
            ),
            (
                "queued.max.request.bytes",
                self.queued_max_request_bytes.to_string(),
            ),
            (
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Checks the cleaner's memory for `shards` shards: as Kafka requires of each cleaner
    /// thread, each shard's share of `log_cleaner_dedupe_buffer_size` must be at least 1 MiB
    /// (an offset map of a few thousand keys would make passes that clean almost nothing).
    pub fn check_cleaner(&self, shards: usize) -> Result<(), ConfigError> {
        let per_shard = self.log_cleaner_dedupe_buffer_size / shards.max(1) as u64;
        if self.log_cleaner_enable && per_shard < 1 << 20 {
            return Err(ConfigError::Invalid {
                setting: "log_cleaner_dedupe_buffer_size",
                reason: format!(
                    "{} bytes over {shards} shards is below 1 MiB per shard",
                    self.log_cleaner_dedupe_buffer_size
                ),
            });
        }
        Ok(())
    }

    /// The connection limits: `queued_max_request_bytes` (None: no cap),
    /// `connections_max_idle_ms` and `max_connections_per_ip` (None: unlimited), checked.
    pub fn connection_limits(&self) -> Result<ConnectionLimits, ConfigError> {
        let queued_max_request_bytes = match self.queued_max_request_bytes {
            -1 => None,
            n if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            n => {
                return Err(ConfigError::Invalid {
                    setting: "queued_max_request_bytes",
                    reason: format!("{n} is neither positive nor -1 (no cap)"),
                })
            }
        };
        if self.connections_max_idle_ms == 0 {
            return Err(ConfigError::Invalid {
                setting: "connections_max_idle_ms",
                reason: "must be positive".into(),
            });
        }
        let max_connections_per_ip = match self.max_connections_per_ip {
            i32::MAX => None,
            n if n > 0 => Some(n as usize),
            n => {
                return Err(ConfigError::Invalid {
                    setting: "max_connections_per_ip",
                    reason: format!("{n} is not positive"),
                })
            }
        };
        Ok(ConnectionLimits {
            queued_max_request_bytes,
            connections_max_idle: Duration::from_millis(self.connections_max_idle_ms),
            max_connections_per_ip,
        })
    }

    /// The runtime settings this config asks for.
    pub fn runtime(&self) -> Result<RuntimeConfig, ConfigError> {
        let backend: BackendChoice =
            self.io
                .backend
                .parse()
                .map_err(|reason| ConfigError::Invalid {
                    setting: "io.backend",
                    reason,
                })?;
        if self.io.ring_entries == 0 || !self.io.ring_entries.is_power_of_two() {
            return Err(ConfigError::Invalid {
                setting: "io.ring_entries",
                reason: format!("{} is not a power of two", self.io.ring_entries),
            });
        }
        let runtime = RuntimeConfig {
            cores: self.cores,
            backend,
            ring_entries: self.io.ring_entries,
            blocking_threads: self.io.blocking_threads.max(1),
            shutdown_grace: Duration::from_millis(self.shutdown.grace_ms),
            idle_poll: Duration::from_micros(self.io.idle_poll_us),
            inline_file_writes: self.io.inline_writes,
            realtime_priority: (self.io.realtime_priority > 0).then_some(self.io.realtime_priority),
            ..RuntimeConfig::default()
        };
        // The only combinations the runtime refuses involve the real-time priority.
        runtime.validate().map_err(|reason| ConfigError::Invalid {
            setting: "io.realtime_priority",
            reason,
        })?;
        Ok(runtime)
    }
}

/// A double as Java's `Double.toString` writes it (what Kafka's DescribeConfigs shows):
/// scientific notation from 10^7 up, so the default reads `1.7976931348623157E308`.
fn java_double(x: f64) -> String {
    if x.abs() >= 1e7 {
        format!("{x:E}")
    } else {
        format!("{x:?}")
    }
}

/// Merges `over` into `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over_inner)) => {
                merge(inner, over_inner)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Where tuning profile `name` lives (the broker's `--profile`, `runnelctl tune check
/// --profile`): a path as given, or `tuning/<name>.toml` under the current directory or the
/// source tree the binary was built from.
pub fn profile_path(name: &str) -> Result<PathBuf, String> {
    if name.contains('/') || name.ends_with(".toml") {
        return Ok(PathBuf::from(name));
    }
    let file = format!("{name}.toml");
    let candidates = [
        PathBuf::from("tuning").join(&file),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tuning")
            .join(&file),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no profile {name:?}: looked for {} \
                 (profiles: low-latency, realtime, throughput, durable)",
                candidates[0].display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.listen_addr().unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.runtime().unwrap().backend, BackendChoice::Auto);
    }

    #[test]
    fn file_overrides_what_it_names() {
        let config = Config::parse("cores = 2\n[io]\nbackend = \"epoll\"\n").unwrap();
        assert_eq!(config.cores, 2);
        assert_eq!(config.runtime().unwrap().backend, BackendChoice::Epoll);
        assert_eq!(config.io.ring_entries, IoConfig::default().ring_entries);
        assert!(!config.runtime().unwrap().inline_file_writes);
        let inline = Config::parse("[io]\ninline_writes = true\n").unwrap();
        assert!(inline.runtime().unwrap().inline_file_writes);
    }

    #[test]
    fn realtime_priority_is_off_by_default_and_checked() {
        assert_eq!(Config::default().runtime().unwrap().realtime_priority, None);
        let realtime = Config::parse("[io]\nrealtime_priority = 10\n").unwrap();
        assert_eq!(realtime.runtime().unwrap().realtime_priority, Some(10));
        for (toml, why) in [
            ("[io]\nrealtime_priority = 100\n", "1-99"),
            (
                "[io]\nrealtime_priority = 10\nidle_poll_us = 200\n",
                "must not poll",
            ),
        ] {
            let err = Config::parse(toml)
                .unwrap()
                .runtime()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("io.realtime_priority") && err.contains(why),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn advertised_listener_defaults_to_the_bound_address() {
        let mut config = Config::default();
        let bound: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            config.advertised(bound).unwrap(),
            ("127.0.0.1".into(), 4000)
        );
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let (host, port) = config.advertised(any).unwrap();
        assert!(!host.is_empty() && host != "0.0.0.0");
        assert_eq!(port, 4000);
        config.advertised_listener = Some("broker.example:19092".into());
        assert_eq!(
            config.advertised(any).unwrap(),
            ("broker.example".into(), 19092)
        );
        config.advertised_listener = Some("[::1]:9093".into());
        assert_eq!(config.advertised(any).unwrap(), ("::1".into(), 9093));
        for bad in ["nohost", ":9092", "host:port"] {
            config.advertised_listener = Some(bad.into());
            assert!(config
                .advertised(any)
                .unwrap_err()
                .to_string()
                .contains("advertised_listener"));
        }
    }

    #[test]
    fn layers_override_key_by_key() {
        let dir = std::env::temp_dir().join(format!("runnel-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let profile = dir.join("profile.toml");
        let file = dir.join("file.toml");
        std::fs::write(&profile, "cores = 2\n[io]\nidle_poll_us = 200\n[topic_defaults]\n\"flush.policy\" = \"always\"\n").unwrap();
        std::fs::write(&file, "cores = 3\n[io]\nbackend = \"epoll\"\n").unwrap();
        let config = Config::load_layers(&[&profile, &file]).unwrap();
        assert_eq!(config.cores, 3, "the later file wins");
        assert_eq!(config.io.idle_poll_us, 200, "tables merge key by key");
        assert_eq!(config.io.backend, "epoll");
        assert_eq!(config.topic_defaults["flush.policy"], "always");
        config.validate_topic_defaults().unwrap();
        std::fs::write(
            &file,
            "[topic_defaults]\n\"flush.policy\" = \"sometimes\"\n",
        )
        .unwrap();
        let err = Config::load_layers(&[&profile, &file])
            .unwrap()
            .validate_topic_defaults()
            .unwrap_err();
        assert!(err.to_string().contains("topic_defaults"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn typos_are_rejected() {
        assert!(Config::parse("listn = \"x\"").is_err());
        assert!(Config::parse("[io]\nbakend = \"epoll\"").is_err());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut config = Config::default();
        config.io.backend = "kqueue".into();
        assert!(config
            .runtime()
            .unwrap_err()
            .to_string()
            .contains("io.backend"));
        config.io.backend = "auto".into();
        config.io.ring_entries = 1000;
        assert!(config
            .runtime()
            .unwrap_err()
            .to_string()
            .contains("io.ring_entries"));
        config.listen = "not an address".into();
        assert!(config.listen_addr().is_err());
    }

    #[test]
    fn cleaner_settings_are_checked() {
        let config = Config::default();
        config.check_cleaner(2).unwrap();
        config.validate_topic_defaults().unwrap();
        let settings = config.kafka_broker_settings("h:1", "127.0.0.1:1".parse().unwrap());
        assert_eq!(settings["log.cleaner.enable"], "true");
        assert_eq!(settings["log.cleaner.dedupe.buffer.size"], "134217728");
        assert_eq!(
            settings["log.cleaner.io.max.bytes.per.second"], "1.7976931348623157E308",
            "Kafka's default, as Kafka shows it"
        );
        assert_eq!(settings["log.cleaner.backoff.ms"], "15000");
        assert_eq!(java_double(1048576.0), "1048576.0");
        let small = Config::parse("log_cleaner_dedupe_buffer_size = 4194304\n").unwrap();
        small.check_cleaner(4).unwrap();
        let err = small.check_cleaner(5).unwrap_err().to_string();
        assert!(err.contains("log_cleaner_dedupe_buffer_size"), "{err}");
        let off = Config::parse("log_cleaner_enable = false\nlog_cleaner_dedupe_buffer_size = 0\n")
            .unwrap();
        off.check_cleaner(8).unwrap();
        for (bad, setting) in [
            ("log_cleaner_backoff_ms = 0", "log_cleaner_backoff_ms"),
            (
                "log_cleaner_io_max_bytes_per_second = 0.0",
                "log_cleaner_io_max_bytes_per_second",
            ),
            (
                "log_cleaner_io_max_bytes_per_second = nan",
                "log_cleaner_io_max_bytes_per_second",
            ),
        ] {
            let err = Config::parse(bad)
                .unwrap()
                .validate_topic_defaults()
                .unwrap_err();
            assert!(err.to_string().contains(setting), "{bad}: {err}");
        }
    }

    #[test]
    fn connection_limits_default_as_in_kafka() {
        let limits = Config::default().connection_limits().unwrap();
        assert_eq!(limits.queued_max_request_bytes, Some(512 << 20));
        assert_eq!(limits.connections_max_idle, Duration::from_secs(600));
        assert_eq!(limits.max_connections_per_ip, None, "unlimited");
        let config = Config::parse(
            "queued_max_request_bytes = -1\nconnections_max_idle_ms = 500\nmax_connections_per_ip = 3\n",
        )
        .unwrap();
        let limits = config.connection_limits().unwrap();
        assert_eq!(limits.queued_max_request_bytes, None, "-1 disables the cap");
        assert_eq!(limits.connections_max_idle, Duration::from_millis(500));
        assert_eq!(limits.max_connections_per_ip, Some(3));
        for (bad, setting) in [
            ("queued_max_request_bytes = 0", "queued_max_request_bytes"),
            ("queued_max_request_bytes = -2", "queued_max_request_bytes"),
            ("connections_max_idle_ms = 0", "connections_max_idle_ms"),
            ("max_connections_per_ip = 0", "max_connections_per_ip"),
        ] {
            let err = Config::parse(bad).unwrap().connection_limits().unwrap_err();
            assert!(err.to_string().contains(setting), "{bad}: {err}");
        }
    }
}
