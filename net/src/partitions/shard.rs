//! Each shard's share of the broker: its snapshot of the topics and the logs of the
//! partitions it owns. Shard 0 also makes every topic change.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use runnel_engine::log::{Log, LogConfig, LogSet, OpenOptions, RecoveryReport};
use runnel_engine::rt::{self, LocalEvent};

use super::assignment;
use super::authority::{self, CreatedTopic, Decider, TopicSpec};
use super::brokers::Brokers;
use super::cleaner_config::cleaner_config;
use super::configs::broker_state::BrokerConfigs;
use super::configs::ops::{self, ConfigOp};
use super::configs::topic_defs::topic_config;
use super::offline::{self, OfflinePartitions};
use super::topic_config;
use super::topics::{self, TopicMeta, Topics};
use super::{Partition, TopicPartition};

/// How often each shard applies retention and forgets expired producers, unless the config
/// file says (`log_retention_check_interval_ms`; Kafka's default is 5 minutes, but segments are
/// large and checking is cheap).
const RETENTION_CHECK: Duration = Duration::from_secs(30);

/// Partition logs a shard opens at once at start-up and on topic changes: enough to keep the
/// blocking pool's threads and the disk busy, few enough to bound the files and memory a burst
/// of opens holds.
const OPENS_AT_ONCE: usize = 64;

thread_local! {
    static STATE: RefCell<Option<Rc<ShardState>>> = const { RefCell::new(None) };
}

/// One shard's state.
#[derive(Debug)]
pub struct ShardState {
    pub data_dir: PathBuf,
    /// The data directory was shut down cleanly: logs may skip recovery.
    pub clean_shutdown: bool,
    /// What topics get where they set nothing: replaced (by shard 0) when the broker's dynamic
    /// configs change.
    defaults: RefCell<Arc<TopicDefaults>>,
    topics: RefCell<Arc<Topics>>,
    /// The partitions this shard owns, open.
    pub logs: Rc<LogSet<TopicPartition, Partition>>,
    /// The broker's partitions that failed to open (shared by every shard).
    pub offline: Arc<OfflinePartitions>,
    /// A task is retrying this shard's offline partitions.
    retrying: Cell<bool>,
    /// One reconciliation (opening and closing logs) at a time.
    reconciling: Cell<bool>,
    reconciled: LocalEvent,
    /// Shard 0: one topic change at a time, from validation until every shard has applied it
    /// (so a topic re-created under a deleted one's name never meets its old partitions).
    changing: Cell<bool>,
    changed: LocalEvent,
}

/// This shard's state.
///
/// # Panics
/// On a thread that is not a started shard.
pub fn current() -> Rc<ShardState> {
    STATE.with(|s| {
        s.borrow()
            .clone()
            .expect("shard state installed by start_shard")
    })
}

/// The broker's defaults for topics (Kafka's `num.partitions` and `log.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    /// Partitions of a topic created without a count, or auto-created.
    pub num_partitions: i32,
    /// Topic configs (Kafka names) for topics that don't set them: `broker`'s, merged.
    pub configs: BTreeMap<String, String>,
    /// The broker-level configs they come from, by source.
    pub broker: BrokerConfigs,
    /// Counts changes since start-up, so a shard never replaces newer defaults by older ones.
    pub version: u64,
}

impl TopicDefaults {
    pub fn new(num_partitions: i32, broker: BrokerConfigs, version: u64) -> TopicDefaults {
        TopicDefaults {
            num_partitions,
            configs: broker.topic_defaults(),
            broker,
            version,
        }
    }
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults::new(1, BrokerConfigs::default(), 0)
    }
}

/// Sets up this shard: installs its state, opens the logs of its partitions, starts retention
/// and the log cleaner.
pub async fn start_shard(
    data_dir: PathBuf,
    clean_shutdown: bool,
    topics: Arc<Topics>,
    defaults: Arc<TopicDefaults>,
    offline: Arc<OfflinePartitions>,
) -> Rc<ShardState> {
    let state = Rc::new(ShardState {
        data_dir,
        clean_shutdown,
        defaults: RefCell::new(defaults),
        topics: RefCell::new(topics),
        logs: LogSet::new(),
        offline,
        retrying: Cell::new(false),
        reconciling: Cell::new(false),
        reconciled: LocalEvent::new(),
        changing: Cell::new(false),
        changed: LocalEvent::new(),
    });
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    state.reconcile().await;
    let every = state
        .defaults()
        .broker
        .static_number("log.retention.check.interval.ms")
        .map_or(
            RETENTION_CHECK,
            |ms| Duration::from_millis(ms.max(1) as u64),
        );
    rt::spawn_local(state.logs.clone().run_housekeeping(every));
    let cleaner = cleaner_config(&state.defaults().broker, rt::shard_count());
    if cleaner.enabled {
        rt::spawn_local(state.logs.clone().run_cleaner(cleaner));
    }
    state
}

/// The turn to make a topic change; passed on when dropped (even if the change is abandoned).
pub(super) struct ChangeTurn(Rc<ShardState>);

impl Drop for ChangeTurn {
    fn drop(&mut self) {
        self.0.changing.set(false);
        self.0.changed.notify_all();
    }
}

/// Waits for the turn to make a topic change (on shard 0).
pub(super) async fn change_turn() -> ChangeTurn {
    assert_eq!(rt::shard_id(), 0, "topic changes are made on shard 0");
    let state = current();
    while state.changing.replace(true) {
        state.changed.wait().await;
    }
    ChangeTurn(state)
}

impl ShardState {
    pub fn topics(&self) -> Arc<Topics> {
        self.topics.borrow().clone()
    }

    /// What topics get where they set nothing (the broker's defaults in force now).
    pub fn defaults(&self) -> Arc<TopicDefaults> {
        self.defaults.borrow().clone()
    }

    /// Adopts newer broker defaults and applies them to the open logs.
    pub async fn apply_defaults(&self, defaults: Arc<TopicDefaults>) {
        if defaults.version > self.defaults.borrow().version {
            *self.defaults.borrow_mut() = defaults;
        }
        self.reconcile().await;
    }

    /// Installs new defaults on this shard at once (shard 0, so the next change sees them).
    pub(super) fn set_defaults(&self, defaults: Arc<TopicDefaults>) {
        *self.defaults.borrow_mut() = defaults;
    }

    /// Partition `tp` if this shard owns it and its log is open.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Partition> {
        self.logs.get(tp)
    }

    /// Adopts a newer topics snapshot and opens / closes logs to match it.
    pub async fn apply(&self, topics: Arc<Topics>) {
        if topics.version > self.topics.borrow().version {
            *self.topics.borrow_mut() = topics;
        }
        self.reconcile().await;
    }

    /// Makes the open logs match the current snapshot: partitions placed here are open,
    /// partitions of deleted (or re-created) topics are closed and their data removed.
    async fn reconcile(&self) {
        while self.reconciling.replace(true) {
            self.reconciled.wait().await;
        }
        let offline = loop {
            let target = self.topics();
            self.close_removed(&target).await;
            let offline = self.open_placed(&target).await;
            if self.topics().version == target.version {
                break offline;
            }
        };
        self.reconciling.set(false);
        self.reconciled.notify_all();
        if offline && !self.retrying.replace(true) {
            rt::spawn_local(retry_offline());
        }
    }

    /// The partitions `topics` places on this shard, with their topics: those this broker
    /// hosts (a lone broker hosts all; in a cluster, those it holds a replica of).
    fn placed_here<'a>(&self, topics: &'a Topics) -> BTreeMap<TopicPartition, &'a Arc<TopicMeta>> {
        let me = rt::shard_id();
        topics
            .by_name
            .values()
            .flat_map(|topic| {
                topic
                    .shards
                    .iter()
                    .enumerate()
                    .filter(move |&(p, &s)| s == me && topic.hosts(p))
                    .map(move |(p, _)| (topic.partition(p), topic))
            })
            .collect()
    }

    async fn close_removed(&self, topics: &Topics) {
        let placed = self.placed_here(topics);
        let stale: Vec<(TopicPartition, Partition)> = self
            .logs
            .snapshot()
            .into_iter()
            .filter(|(tp, partition)| {
                placed
                    .get(tp)
                    .is_none_or(|topic| *topic.id != *partition.topic_id)
            })
            .collect();
        for (tp, partition) in stale {
            self.logs.remove(&tp);
            partition.stop_replicating();
            let log = partition.log();
            if let Err(e) = log.close().await {
                tracing::warn!(partition = %tp, error = %e, "closing a deleted partition failed");
            }
            if let Err(e) = rt::fs::remove_dir_all(log.dir()).await {
                tracing::warn!(partition = %tp, error = %e, "removing a deleted partition failed");
            }
            tracing::info!(partition = %tp, "partition deleted");
        }
    }

    /// Opens every partition placed here that isn't open yet; open ones get their topic's
    /// current configs. Returns whether any partition stays offline.
    ///
    /// Opens run [`OPENS_AT_ONCE`] at a time: each is a few file-system calls on the blocking
    /// pool (and a recovery scan after a crash), so a shard with thousands of partitions
    /// would otherwise start one round trip at a time.
    async fn open_placed(&self, topics: &Topics) -> bool {
        let mut configs: BTreeMap<&str, (LogConfig, i32)> = BTreeMap::new();
        let mut to_open = Vec::new();
        for (tp, topic) in self.placed_here(topics) {
            let (config, min_insync) = configs
                .entry(&topic.name)
                .or_insert_with(|| self.log_config_of(topic))
                .clone();
            let placement = topic.placement(tp.partition).cloned();
            if let Some(open) = self.logs.get(&tp) {
                if open.log().config() != config {
                    open.log().set_config(config);
                }
                if let Some(placement) = &placement {
                    open.follow_placement(placement, min_insync).await;
                }
                continue;
            }
            to_open.push((tp, topic.id.clone(), config, (placement, min_insync)));
        }
        let mut offline = false;
        for batch in to_open.chunks(OPENS_AT_ONCE) {
            let opening: Vec<_> = batch
                .iter()
                .map(|(tp, _, config, _)| {
                    let dir = self.data_dir.join(tp.dir_name());
                    let options = OpenOptions {
                        clean_shutdown: self.clean_shutdown,
                        ..OpenOptions::default()
                    };
                    let config = config.clone();
                    rt::spawn_local(async move { Log::open(&dir, config, options).await })
                })
                .collect();
            for ((tp, topic_id, _, (placement, min_insync)), opened) in batch.iter().zip(opening) {
                let adopted = self.adopt(tp, topic_id, opened.await);
                if let Some(partition) = adopted.then(|| self.logs.get(tp)).flatten() {
                    if let Some(placement) = placement {
                        partition.follow_placement(placement, *min_insync).await;
                    }
                }
                offline |= !adopted;
            }
        }
        offline
    }

    /// The log settings of `topic` (the broker's defaults under the topic's own configs) and
    /// its `min.insync.replicas`.
    fn log_config_of(&self, topic: &TopicMeta) -> (LogConfig, i32) {
        let defaults = self.defaults();
        let configs = topic_config::effective(&defaults.configs, &topic.configs);
        let min_insync = topic_config::min_insync_replicas(&configs);
        let mut config = topic_config::log_config(&configs).unwrap_or_else(|e| {
            tracing::error!(topic = %topic.name, error = %e, "bad stored topic config; using defaults");
            LogConfig::default()
        });
        if let Some(ms) = defaults.broker.static_number("producer.id.expiration.ms") {
            config.producer_id_expiration_ms = ms;
        }
        (config, min_insync)
    }

    /// Takes in a partition's opened log, or records it offline; returns whether it is open.
    fn adopt(
        &self,
        tp: &TopicPartition,
        topic_id: &str,
        opened: std::io::Result<(Log, RecoveryReport)>,
    ) -> bool {
        match opened {
            Ok((log, report)) => {
                if !report.problems.is_empty() || report.bytes_truncated > 0 {
                    tracing::warn!(partition = %tp, ?report, "recovered");
                }
                if self.offline.clear(tp) {
                    tracing::info!(partition = %tp, "partition opened; back online");
                }
                let partition = Partition::leader(tp.clone(), topic_id, log);
                self.logs.insert(tp.clone(), partition);
                true
            }
            Err(e) => {
                if self.offline.mark(tp, e.to_string()) {
                    tracing::error!(partition = %tp, error = %e, "cannot open partition; it is offline (KAFKA_STORAGE_ERROR) and opening is retried with back-off");
                }
                false
            }
        }
    }

    /// Whether a partition placed on this shard is offline.
    fn any_offline_here(&self) -> bool {
        let topics = self.topics();
        self.placed_here(&topics)
            .keys()
            .any(|tp| self.logs.get(tp).is_none())
    }
}

/// Retries opening this shard's offline partitions with back-off until none is left or the
/// shard shuts down.
async fn retry_offline() {
    let state = current();
    for attempt in 0.. {
        let wait = rt::sleep(offline::retry_delay(attempt));
        if let rt::Either::Right(()) = rt::select(wait, rt::shutdown_requested()).await {
            break;
        }
        state.reconcile().await;
        if !state.any_offline_here() {
            break;
        }
    }
    state.retrying.set(false);
}

/// Why a topic could not be created; each maps to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("topic {0:?} already exists")]
    Exists(String),
    #[error("topic {0:?} does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// INVALID_REQUEST: a request Kafka refuses as malformed (a static config altered, a
    /// config named twice, another broker's resource).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    Storage(String),
    /// Any other Kafka error the cluster's controller answered with (NOT_CONTROLLER and
    /// REQUEST_TIMED_OUT when none answered in time: both retriable).
    #[error("{message}")]
    Refused { code: i16, message: String },
}

/// Checks a topic creation without making it, in Kafka's order: the name, whether it is
/// taken in `registry` (when given), the partition count and the configs. In a cluster no
/// registry is given: whether the name is taken is the controller's to say, and this broker's
/// registry may still show a topic whose deletion the controller has committed.
pub fn validate_new_topic(
    registry: Option<&Topics>,
    name: &str,
    partitions: i32,
    configs: &BTreeMap<String, String>,
) -> Result<(), CreateError> {
    if let Some(reason) = topics::invalid_topic_name(name) {
        return Err(CreateError::InvalidName(reason));
    }
    if registry.is_some_and(|topics| topics.get(name).is_some()) {
        return Err(CreateError::Exists(name.to_owned()));
    }
    if !(1..=100_000).contains(&partitions) {
        return Err(CreateError::InvalidPartitions(format!(
            "{partitions} partitions: must be between 1 and 100000"
        )));
    }
    let defaults = current().defaults();
    topic_config::log_config(&topic_config::effective(&defaults.configs, configs))
        .map_err(CreateError::InvalidConfig)?;
    Ok(())
}

/// Creates a topic with the default replication (internal topics, auto-creation), on shard 0.
/// Alone, `partitions` is the count; in a cluster -1 asks for the controller's default.
pub async fn create_topic(
    name: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
) -> Result<CreatedTopic, CreateError> {
    let topic = TopicSpec {
        name,
        partitions,
        replication_factor: -1,
        assignment: Vec::new(),
        configs,
    };
    create_topic_as(topic, false, authority::AUTO_CREATE_TIMEOUT).await
}

/// Creates `topic` (on shard 0), or only checks it when `validate_only`. In a cluster the
/// active controller decides, within `timeout`; alone the registry changes here, the caller
/// having checked everything (validate-only requests never get here) and resolved the
/// partition count.
pub async fn create_topic_as(
    topic: TopicSpec,
    validate_only: bool,
    timeout: Duration,
) -> Result<CreatedTopic, CreateError> {
    if let Decider::Cluster(authority) = authority::decider()? {
        return authority.create_topic(topic, validate_only, timeout).await;
    }
    if validate_only {
        return Ok(CreatedTopic {
            id: uuid::Uuid::nil(),
            partitions: topic.partitions,
            replication_factor: 1,
        });
    }
    let meta = create_local_topic(topic.name, topic.partitions, topic.configs).await?;
    Ok(CreatedTopic {
        id: meta.uuid(),
        partitions: meta.shards.len() as i32,
        replication_factor: 1,
    })
}

/// Creates a topic in this broker's registry. Runs on shard 0, which serializes changes: the
/// registry is updated and saved without yielding, then every shard adopts the new snapshot
/// (opening its partitions) before this returns.
async fn create_local_topic(
    name: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
) -> Result<Arc<TopicMeta>, CreateError> {
    let _turn = change_turn().await;
    let state = current();
    let old = state.topics();
    validate_new_topic(Some(&old), &name, partitions, &configs)?;
    let shards = old.place(partitions as usize, rt::shard_count());
    let meta = Arc::new(TopicMeta {
        name: name.as_str().into(),
        id: topics::new_topic_id().map_err(|e| CreateError::Storage(e.to_string()))?,
        shards,
        configs,
        controller: None,
    });
    commit(&state, with_topic(&old, meta.clone())).await?;
    Ok(meta)
}

/// Deletes a topic (on shard 0); answers its id. In a cluster the active controller decides,
/// within `timeout`. Alone, its partitions' logs are closed and their data removed on every
/// owning shard before this returns.
pub async fn delete_topic(name: String, timeout: Duration) -> Result<uuid::Uuid, CreateError> {
    if let Decider::Cluster(authority) = authority::decider()? {
        let id = authority.delete_topic(name.clone(), timeout).await?;
        current().offline.forget_topic(&name);
        return Ok(id);
    }
    delete_local_topic(name).await.map(|meta| meta.uuid())
}

async fn delete_local_topic(name: String) -> Result<Arc<TopicMeta>, CreateError> {
    let _turn = change_turn().await;
    let (state, old, meta) = existing_topic(&name)?;
    let mut new = Topics::clone(&old);
    new.by_name.remove(name.as_str());
    new.version += 1;
    commit_deletion(&state, new).await?;
    state.offline.forget_topic(&name);
    Ok(meta)
}

/// Grows a topic to `count` partitions (on shard 0), with the new partitions' replicas as
/// `assignments` gives them when it does. In a cluster the active controller checks and
/// decides, within `timeout`; alone they are checked against `brokers` here.
pub async fn create_partitions(
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    brokers: Brokers,
    validate_only: bool,
    timeout: Duration,
) -> Result<(), CreateError> {
    if let Decider::Cluster(authority) = authority::decider()? {
        return authority
            .create_partitions(name, count, assignments, validate_only, timeout)
            .await;
    }
    let _turn = change_turn().await;
    let (state, old, meta) = existing_topic(&name)?;
    let current_count = meta.shards.len();
    let wanted = usize::try_from(count).unwrap_or(0);
    if wanted == current_count {
        return Err(CreateError::InvalidPartitions(format!(
            "Topic already has {current_count} partition(s)."
        )));
    }
    if wanted < current_count {
        return Err(CreateError::InvalidPartitions(format!(
            "The topic {name} currently has {current_count} partition(s); {count} would not \
             be an increase."
        )));
    }
    if wanted > 100_000 {
        return Err(CreateError::InvalidPartitions(format!(
            "{count} partitions: must be at most 100000"
        )));
    }
    if let Some(assignments) = &assignments {
        // Every partition has one replica, this broker's, until the cluster keeps replica
        // lists per partition.
        assignment::check_new_partitions(assignments, wanted - current_count, 1, &brokers)?;
    }
    if validate_only {
        return Ok(());
    }
    let mut grown = TopicMeta::clone(&meta);
    grown
        .shards
        .extend(old.place(wanted - current_count, rt::shard_count()));
    commit(&state, with_topic(&old, Arc::new(grown))).await
}

/// Installs the registry the controller's metadata calls for (cluster mode; on shard 0).
/// `derive` is given the current registry under the change turn, so no other change
/// interleaves, and answers the next one, or `None` when nothing is to change. Topics it
/// leaves out, or replaces by one of another id, lose their partitions' data as
/// [`delete_topic`] removes it. Returns `None` when nothing changed, else the names of the
/// topics removed or replaced.
pub async fn install_from_metadata(
    derive: impl FnOnce(&Topics) -> Option<Topics>,
) -> Result<Option<Vec<Arc<str>>>, CreateError> {
    let _turn = change_turn().await;
    let state = current();
    let old = state.topics();
    let Some(mut new) = derive(&old) else {
        return Ok(None);
    };
    new.version = old.version + 1;
    let gone: Vec<Arc<str>> = old
        .by_name
        .iter()
        .filter(|(name, meta)| new.get(name).is_none_or(|now| now.id != meta.id))
        .map(|(name, _)| name.clone())
        .collect();
    if gone.is_empty() {
        commit(&state, new).await?;
    } else {
        commit_deletion(&state, new).await?;
        for name in &gone {
            state.offline.forget_topic(name);
        }
    }
    Ok(Some(gone))
}

/// The next registry: `old` with `topic` added or replaced.
fn with_topic(old: &Topics, topic: Arc<TopicMeta>) -> Topics {
    let mut new = Topics::clone(old);
    new.by_name.insert(topic.name.clone(), topic);
    new.version += 1;
    new
}

/// How a topic's configs change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// The whole set (AlterConfigs): what is left out returns to its default.
    Replace(BTreeMap<String, String>),
    /// Operations on some keys, the rest kept (IncrementalAlterConfigs).
    Incremental(Vec<ConfigOp>),
}

/// Changes a topic's configs (on shard 0); every shard applies them to its open logs. The
/// names and values are checked here; in a cluster the active controller then decides, within
/// `timeout`.
pub async fn alter_topic_configs(
    name: String,
    change: ConfigChange,
    validate_only: bool,
    timeout: Duration,
) -> Result<(), CreateError> {
    if let Decider::Cluster(authority) = authority::decider()? {
        let changes = cluster_config_changes(&name, change)?;
        return authority
            .alter_topic_configs(name, changes, validate_only, timeout)
            .await;
    }
    let _turn = change_turn().await;
    let (state, old, meta) = existing_topic(&name)?;
    // Merged here, under the turn, so concurrent incremental changes don't lose each other.
    let configs = merged_configs(&meta.configs, change)?;
    checked_configs(&state, &configs)?;
    if validate_only {
        return Ok(());
    }
    let mut altered = TopicMeta::clone(&meta);
    altered.configs = configs;
    commit(&state, with_topic(&old, Arc::new(altered))).await
}

/// A topic's configs once `change` is applied to `configs`.
fn merged_configs(
    configs: &BTreeMap<String, String>,
    change: ConfigChange,
) -> Result<BTreeMap<String, String>, CreateError> {
    Ok(match change {
        ConfigChange::Replace(configs) => configs,
        ConfigChange::Incremental(changes) => {
            let mut configs = configs.clone();
            // APPEND and SUBTRACT start from the topic config's own default, as in Kafka.
            let schema =
                |name: &str| topic_config(name).map(|c| (c.def.config_type, c.def.default));
            ops::apply(&mut configs, &changes, &schema).map_err(CreateError::InvalidConfig)?;
            configs
        }
    })
}

/// Checks a topic's configs as the broker's defaults complete them.
fn checked_configs(
    state: &ShardState,
    configs: &BTreeMap<String, String>,
) -> Result<(), CreateError> {
    topic_config::log_config(&topic_config::effective(&state.defaults().configs, configs))
        .map(|_| ())
        .map_err(CreateError::InvalidConfig)
}

/// The config entries a change sets (`Some`) or removes (`None`), for the controller, checked
/// against this broker's view of the topic's configs (empty if it has not seen the topic yet:
/// the controller then says whether it exists). Only the names the change touches are sent,
/// so changes to other names made meanwhile through other brokers are kept; APPEND and
/// SUBTRACT are resolved here, against this broker's view.
fn cluster_config_changes(
    name: &str,
    change: ConfigChange,
) -> Result<Vec<(String, Option<String>)>, CreateError> {
    let state = current();
    let old = state
        .topics()
        .get(name)
        .map(|meta| meta.configs.clone())
        .unwrap_or_default();
    let (new, changes) = config_changes(&old, change)?;
    checked_configs(&state, &new)?;
    Ok(changes)
}

/// A topic's configs once `change` is applied to `old`, and the entries that differ from
/// `old` among those the change names (every one, for a replacement), set or removed.
fn config_changes(
    old: &BTreeMap<String, String>,
    change: ConfigChange,
) -> Result<ConfigsAndChanges, CreateError> {
    let touched: Vec<String> = match &change {
        ConfigChange::Replace(configs) => old.keys().chain(configs.keys()).cloned().collect(),
        ConfigChange::Incremental(ops) => ops.iter().map(|op| op.name().to_owned()).collect(),
    };
    let new = merged_configs(old, change)?;
    let mut changes: Vec<(String, Option<String>)> = touched
        .into_iter()
        .map(|key| {
            let value = new.get(&key).cloned();
            (key, value)
        })
        .collect();
    changes.sort();
    changes.dedup();
    Ok((new, changes))
}

type ConfigsAndChanges = (BTreeMap<String, String>, Vec<(String, Option<String>)>);

/// What a change to an existing topic starts from: shard 0's state, the current topics, the
/// topic.
type ChangeBase = (Rc<ShardState>, Arc<Topics>, Arc<TopicMeta>);

/// The starting point of a change to topic `name` (on shard 0).
fn existing_topic(name: &str) -> Result<ChangeBase, CreateError> {
    assert_eq!(rt::shard_id(), 0, "topic changes are made on shard 0");
    let state = current();
    let topics = state.topics();
    let meta = topics
        .get(name)
        .cloned()
        .ok_or_else(|| CreateError::Unknown(name.to_owned()))?;
    Ok((state, topics, meta))
}

/// Saves a new registry, installs it on shard 0 at once (so the next change sees it), then on
/// every shard.
async fn commit(state: &ShardState, new: Topics) -> Result<(), CreateError> {
    new.save(&state.data_dir)
        .await
        .map_err(|e| CreateError::Storage(format!("saving topics: {e}")))?;
    let new = Arc::new(new);
    *state.topics.borrow_mut() = new.clone();
    broadcast(new).await;
    Ok(())
}

/// [`commit`] for a change that frees space (a deletion): when the disk is too full to save the
/// registry, the deleted partitions' data is removed first and the save tried again, so a
/// full disk can be freed by deleting topics.
async fn commit_deletion(state: &ShardState, new: Topics) -> Result<(), CreateError> {
    let full = match new.save(&state.data_dir).await {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => true,
        Err(e) => return Err(CreateError::Storage(format!("saving topics: {e}"))),
    };
    let new = Arc::new(new);
    *state.topics.borrow_mut() = new.clone();
    broadcast(new.clone()).await;
    if full {
        tracing::warn!("disk full: removed the deleted topic's data before saving the topic list");
        new.save(&state.data_dir).await.map_err(|e| {
            CreateError::Storage(format!(
                "the topic's data is removed, but the topic list can't be saved: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Gives every shard the new snapshot and waits until each has opened its partitions.
async fn broadcast(topics: Arc<Topics>) {
    let handles: Vec<_> = (0..rt::shard_count())
        .map(|shard| {
            let topics = topics.clone();
            rt::spawn_local(rt::run_on(shard, move || async move {
                current().apply(topics).await;
            }))
        })
        .collect();
    for handle in handles {
        if handle.await.is_err() {
            tracing::warn!("a shard stopped before adopting a topic change");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_replacement_sets_what_it_names_and_removes_the_rest() {
        let old = map(&[("retention.ms", "1000"), ("segment.bytes", "2048")]);
        let change = ConfigChange::Replace(map(&[("retention.ms", "5000")]));
        let (new, changes) = config_changes(&old, change).unwrap();
        assert_eq!(new, map(&[("retention.ms", "5000")]));
        assert_eq!(
            changes,
            vec![
                ("retention.ms".to_string(), Some("5000".to_string())),
                ("segment.bytes".to_string(), None),
            ]
        );
    }

    #[test]
    fn incremental_changes_send_only_the_names_they_touch() {
        let old = map(&[("retention.ms", "1000"), ("cleanup.policy", "delete")]);
        let change = ConfigChange::Incremental(vec![
            ConfigOp::Append("cleanup.policy".into(), "compact".into()),
            ConfigOp::Delete("retention.ms".into()),
        ]);
        let (_, changes) = config_changes(&old, change).unwrap();
        assert_eq!(
            changes,
            vec![
                (
                    "cleanup.policy".to_string(),
                    Some("delete,compact".to_string())
                ),
                ("retention.ms".to_string(), None),
            ]
        );
    }
}
