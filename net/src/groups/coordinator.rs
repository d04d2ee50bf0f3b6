//! The group coordinator of one shard: the groups whose `__consumer_offsets` partition this
//! shard owns, their committed offsets, and the records that make both durable.
//!
//! Every group operation runs here, on the owning shard, so a group is only ever touched by
//! one thread. Changes to membership go through [`Group`]; whenever a group asks to be stored
//! its record is appended to its offsets partition (in a task of its own, so a request that
//! stops waiting can't lose the write) and the group is told how that went. Deadlines (session
//! and rebalance timeouts) are advanced by a ticker that runs only while some group has
//! members, so an idle broker doesn't wake up for them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::txn::marker::{decode_key, ControlType, MarkerKind};
use runnel_engine::log::AppendError;
use runnel_engine::rt::{self, LocalEvent};

use super::group::{
    join_error, sync_error, wall_ms, Group, GroupState, JoinRequest, JoinResult, SyncResult, Timing,
};
use super::records::{self, GroupValue, Key, OffsetValue};
use super::txn_offsets::{self, OffsetPartition, PendingTxnOffsets, PlacedOffset};
use super::OFFSETS_TOPIC;
use crate::config::GroupsConfig;
use crate::kafka::error_code as ec;
use crate::partitions::replay::replay;
use crate::partitions::{shard, TopicPartition};

/// How often deadlines are checked while groups have members.
const TICK: Duration = Duration::from_millis(100);
/// Kafka's fixed wait for a member that joined during a rebalance.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

thread_local! {
    static COORDINATOR: RefCell<Option<Rc<Coordinator>>> = const { RefCell::new(None) };
}

/// This shard's coordinator.
///
/// # Panics
/// On a thread where [`start`] has not run.
pub fn current() -> Rc<Coordinator> {
    COORDINATOR.with(|c| {
        c.borrow()
            .clone()
            .expect("coordinator installed by groups::start")
    })
}

/// This shard's coordinator, if [`start`] has installed it: a shard still starting has its
/// partitions open before its coordinator exists.
pub fn try_current() -> Option<Rc<Coordinator>> {
    COORDINATOR.with(|c| c.borrow().clone())
}

/// This broker stopped leading `__consumer_offsets` partition `partition`: the coordinator of
/// the current shard (the partition's owner) unloads it
/// ([`Coordinator::unload_partition`]). Nothing to do on a shard whose coordinator has not
/// started: it has loaded nothing.
pub fn partition_lost(partition: i32) {
    if let Some(coordinator) = try_current() {
        coordinator.unload_partition(partition);
    }
}

/// Installs this shard's coordinator, loads the offsets partitions it owns, and starts the
/// offset expiry task.
pub async fn start(config: GroupsConfig) {
    let coordinator = Rc::new(Coordinator {
        timing: Timing {
            initial_rebalance_delay: Duration::from_millis(config.initial_rebalance_delay_ms),
            new_member_join_timeout: NEW_MEMBER_JOIN_TIMEOUT,
        },
        config,
        groups: RefCell::new(HashMap::new()),
        loaded: RefCell::new(HashSet::new()),
        loading: RefCell::new(HashSet::new()),
        load_done: LocalEvent::new(),
        unloads: RefCell::new(HashMap::new()),
        ticking: Cell::new(false),
        incarnations: Cell::new(0),
    });
    COORDINATOR.with(|c| *c.borrow_mut() = Some(coordinator.clone()));
    let topics = shard::current().topics();
    if let Some(topic) = topics.get(OFFSETS_TOPIC) {
        let me = rt::shard_id();
        // Only the partitions this broker leads: the others are coordinated elsewhere.
        for (partition, owner) in topic.led_here().collect::<Vec<_>>() {
            if owner == me {
                if let Err(code) = coordinator.ensure_loaded(partition as i32).await {
                    tracing::error!(partition, code, "cannot load group state");
                }
            }
        }
    }
    rt::spawn_local(coordinator.clone().expire_offsets_forever());
}

#[derive(Debug)]
pub struct Coordinator {
    pub config: GroupsConfig,
    timing: Timing,
    groups: RefCell<HashMap<String, Group>>,
    /// Offsets partitions whose records have been read into `groups`.
    loaded: RefCell<HashSet<i32>>,
    loading: RefCell<HashSet<i32>>,
    load_done: LocalEvent,
    /// How many times each offsets partition was unloaded: a load (or a write) begun before
    /// an unload sees the count change and leaves the partition alone.
    unloads: RefCell<HashMap<i32, u64>>,
    ticking: Cell<bool>,
    /// Numbers each group object, so a commit that was written while its group was deleted
    /// (and maybe made again) doesn't land in the new one.
    incarnations: Cell<u64>,
}

/// One partition's commit in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// One partition's committed offset, as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: i16,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub error: i16,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

impl Coordinator {
    /// Reads partition `partition`'s records into memory once; later calls return at once.
    pub async fn ensure_loaded(self: &Rc<Self>, partition: i32) -> Result<(), i16> {
        loop {
            if self.loaded.borrow().contains(&partition) {
                return Ok(());
            }
            let wait = self.load_done.wait();
            if self.loading.borrow_mut().insert(partition) {
                break;
            }
            wait.await;
        }
        let era = self.era(partition);
        let result = self.load(partition, era).await;
        self.loading.borrow_mut().remove(&partition);
        if result.is_ok() {
            self.loaded.borrow_mut().insert(partition);
        }
        self.load_done.notify_all();
        result
    }

    /// How many times `partition` has been unloaded so far.
    fn era(&self, partition: i32) -> u64 {
        self.unloads.borrow().get(&partition).copied().unwrap_or(0)
    }

    /// Reads `partition`'s records into `groups`, unless it is unloaded (its era moves on
    /// from `era`) while they are read: then nothing is kept and the answer is NOT_COORDINATOR.
    async fn load(self: &Rc<Self>, partition: i32, era: u64) -> Result<(), i16> {
        let offsets = offsets_partition(partition)?;
        let log = offsets.log();
        // A follower's copy may be behind its leader's: groups are coordinated by the leader.
        if log.is_follower() {
            return Err(ec::NOT_COORDINATOR);
        }
        let started = Instant::now();
        let mut state: HashMap<String, LoadedGroup> = HashMap::new();
        let replayed = replay(log, |header, records| {
            if header.is_control() {
                // A transaction's marker decides the offsets it committed here.
                let decided = records
                    .first()
                    .and_then(|r| r.key.as_deref())
                    .map(decode_key);
                if let Some(Ok(ControlType::Marker(kind))) = decided {
                    let commit = kind == MarkerKind::Commit;
                    complete_loaded_txn(&mut state, header.producer_id, commit);
                }
                return;
            }
            let txn_producer = header.is_transactional().then_some(header.producer_id);
            for record in records {
                let at = LoadedRecord {
                    log_offset: record.offset,
                    txn_producer,
                };
                apply_record(
                    &mut state,
                    at,
                    record.key.as_deref(),
                    record.value.as_deref(),
                );
            }
        })
        .await
        .map_err(|e| {
            tracing::error!(partition, error = %e, "cannot load the offsets partition");
            ec::COORDINATOR_LOAD_IN_PROGRESS
        })?;
        let records_read = replayed.records;
        if self.era(partition) != era {
            tracing::info!(partition, "offsets partition unloaded while loading it");
            return Err(ec::NOT_COORDINATOR);
        }
        let now = Instant::now();
        // A group whose metadata and offsets were all deleted is gone.
        state.retain(|_, loaded| {
            loaded.group.is_some() || !loaded.offsets.is_empty() || !loaded.pending.is_empty()
        });
        let count = state.len();
        let mut groups = self.groups.borrow_mut();
        for (id, loaded) in state {
            let mut group = match loaded.group {
                Some(value) => Group::from_value(id.clone(), value, now),
                None => {
                    // Offsets without group metadata (commits outside group management):
                    // they expire by their commit times alone.
                    let mut group = Group::new(id.clone());
                    group.state_since_ms = 0;
                    group
                }
            };
            group.offsets = loaded.offsets;
            group.pending_txn_offsets = loaded.pending;
            group.incarnation = self.next_incarnation();
            groups.insert(id, group);
        }
        drop(groups);
        if count > 0 {
            tracing::info!(
                partition,
                groups = count,
                records = records_read,
                ms = started.elapsed().as_millis() as u64,
                "loaded group state"
            );
            self.ensure_ticking();
        }
        Ok(())
    }

    /// Gives up offsets partition `partition`: this broker no longer leads it (Kafka's
    /// `GroupMetadataManager.removeGroupsForPartition`). Its groups and committed offsets
    /// are forgotten here (the log keeps them, for the new leader and for this broker's next
    /// leadership, which loads them again), members waiting for a JoinGroup or SyncGroup
    /// answer get NOT_COORDINATOR, and a load under way keeps nothing. Writes for the
    /// partition still in flight finish or fail as they will; none starts after this.
    pub fn unload_partition(self: &Rc<Self>, partition: i32) {
        *self.unloads.borrow_mut().entry(partition).or_insert(0) += 1;
        let was_loaded = self.loaded.borrow_mut().remove(&partition);
        let mut unloaded = self.take_groups_of(partition);
        for group in &mut unloaded {
            group.unload();
        }
        if was_loaded || !unloaded.is_empty() {
            tracing::info!(partition, groups = unloaded.len(), "unloaded group state");
        }
    }

    /// Removes and returns the groups held for offsets partition `partition`.
    fn take_groups_of(&self, partition: i32) -> Vec<Group> {
        let partitions = super::offsets_partition_count(self.config.offsets_topic_num_partitions);
        let mut groups = self.groups.borrow_mut();
        let ids: Vec<String> = groups
            .keys()
            .filter(|id| super::partition_for(id, partitions) == partition)
            .cloned()
            .collect();
        ids.iter().filter_map(|id| groups.remove(id)).collect()
    }

    /// Whether offsets partition `partition` is loaded here (its groups coordinated here).
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Runs `f` on the group (created if `create`); `None` if there is none.
    fn with_group<T>(&self, id: &str, create: bool, f: impl FnOnce(&mut Group) -> T) -> Option<T> {
        let mut groups = self.groups.borrow_mut();
        if create && !groups.contains_key(id) {
            let mut group = Group::new(id.to_owned());
            group.incarnation = self.next_incarnation();
            groups.insert(id.to_owned(), group);
        }
        groups.get_mut(id).map(f)
    }

    /// After a change: store the group if it asks, keep the ticker running if needed.
    fn after_change(self: &Rc<Self>, partition: i32, id: &str) {
        let store = self.with_group(id, false, |g| {
            g.take_store_request()
                .map(|value| (g.generation, g.incarnation, value))
        });
        if let Some(Some((generation, incarnation, value))) = store {
            let this = self.clone();
            let id = id.to_owned();
            rt::spawn_local(async move {
                let key = records::encode_key(&Key::Group { group: id.clone() });
                let value = records::encode_group_value(&value);
                let ok = this
                    .append(partition, vec![(key, Some(value))], None)
                    .await
                    .is_ok();
                if !ok {
                    tracing::warn!(group = %id, "storing the group failed");
                }
                // Only into the group that asked: the partition may have been unloaded (and
                // loaded again) meanwhile.
                let same = this.with_group(&id, false, |g| {
                    let same = g.incarnation == incarnation;
                    if same {
                        g.stored(generation, ok, Instant::now());
                    }
                    same
                });
                if same == Some(true) {
                    this.after_change(partition, &id);
                }
            });
        }
        self.ensure_ticking();
    }

    fn next_incarnation(&self) -> u64 {
        let next = self.incarnations.get() + 1;
        self.incarnations.set(next);
        next
    }

    fn ensure_ticking(self: &Rc<Self>) {
        if self.ticking.get() {
            return;
        }
        if self.groups.borrow().values().any(Group::needs_ticks) {
            self.ticking.set(true);
            rt::spawn_local(self.clone().tick_while_needed());
        }
    }

    async fn tick_while_needed(self: Rc<Self>) {
        loop {
            if let rt::Either::Right(()) =
                rt::select(rt::sleep(TICK), rt::shutdown_requested()).await
            {
                return;
            }
            let now = Instant::now();
            // Only groups with members or a rebalance under way have deadlines (groups that
            // only hold offsets are skipped); only those the tick changed get stored.
            let (to_store, still_needed) = {
                let mut groups = self.groups.borrow_mut();
                let mut to_store = Vec::new();
                let mut still_needed = false;
                for g in groups.values_mut().filter(|g| g.needs_ticks()) {
                    g.tick(now, &self.timing);
                    if g.wants_store() {
                        to_store.push(g.id.clone());
                    }
                    still_needed |= g.needs_ticks();
                }
                (to_store, still_needed)
            };
            let partitions =
                super::offsets_partition_count(self.config.offsets_topic_num_partitions);
            for id in &to_store {
                // The ticker is running, so this only stores what the tick changed.
                self.after_change(super::partition_for(id, partitions), id);
            }
            if !still_needed {
                self.ticking.set(false);
                // A group may have started needing ticks while this one was deciding to stop.
                self.ensure_ticking();
                return;
            }
        }
    }

    /// Appends `(key, value)` records (a `None` value is a tombstone) to the offsets partition,
    /// in the transaction of `producer` (id, epoch) if given; returns the first record's log
    /// offset (the others follow it).
    async fn append(
        &self,
        partition: i32,
        entries: Vec<Entry>,
        producer: Option<(i64, i16)>,
    ) -> Result<i64, i16> {
        // Unloaded (no longer led here) or not loaded yet: its groups are not this
        // coordinator's to write, whatever task still holds them.
        if !self.loaded.borrow().contains(&partition) {
            return Err(ec::NOT_COORDINATOR);
        }
        let offsets = offsets_partition(partition)?;
        let log = offsets.log();
        let now = wall_ms();
        let mut builder = match producer {
            // Sequences are the client's business, not the coordinator's (Kafka writes 0).
            Some((id, epoch)) => BatchBuilder::new().producer(id, epoch, 0).transactional(),
            None => BatchBuilder::new(),
        };
        for (key, value) in entries {
            builder.push(&Record {
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp: now,
            });
        }
        let appended = match producer {
            Some(_) => log.append_for_coordinator(builder.build()).await,
            None => log.append(builder.build()).await,
        };
        let info = appended.map_err(|e| match e {
            AppendError::Batch(_) | AppendError::RecordListTooLarge { .. } => {
                ec::INVALID_COMMIT_OFFSET_SIZE
            }
            // A transactional commit from a fenced producer (INVALID_PRODUCER_EPOCH) and the
            // like reach the client as they are, as Kafka's GroupMetadataManager passes them:
            // they are not retriable.
            AppendError::Producer(_) => crate::route::errors::append_error(&e),
            // The partition's leadership moved away (Kafka's NOT_LEADER_OR_FOLLOWER ->
            // NOT_COORDINATOR): the client looks the coordinator up again.
            AppendError::NotLeader => ec::NOT_COORDINATOR,
            _ => ec::COORDINATOR_NOT_AVAILABLE,
        })?;
        // Acknowledged once every in-sync replica has it (Kafka writes offsets with acks=all).
        offsets
            .wait_replicated(info.last_offset + 1, REPLICATION_TIMEOUT)
            .await
            .map_err(replication_error)?;
        Ok(info.base_offset)
    }

    fn check_session_timeout(&self, timeout: Duration) -> bool {
        let ms = timeout.as_millis() as u64;
        (self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms).contains(&ms)
    }

    pub async fn join(
        self: Rc<Self>,
        partition: i32,
        group_id: String,
        req: JoinRequest,
    ) -> JoinResult {
        if group_id.is_empty() {
            return join_error(ec::INVALID_GROUP_ID, &req.member_id);
        }
        if !self.check_session_timeout(req.session_timeout) {
            return join_error(ec::INVALID_SESSION_TIMEOUT, &req.member_id);
        }
        let create = req.member_id.is_empty();
        let member_id = req.member_id.clone();
        let answer = self.with_group(&group_id, create, |g| {
            g.join(req, Instant::now(), &self.timing, super::new_member_id)
        });
        self.after_change(partition, &group_id);
        match answer {
            None => join_error(ec::UNKNOWN_MEMBER_ID, &member_id),
            Some(answer) => answer
                .get()
                .await
                .unwrap_or_else(|| join_error(ec::COORDINATOR_NOT_AVAILABLE, &member_id)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        self: Rc<Self>,
        partition: i32,
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        protocol_type: Option<String>,
        protocol: Option<String>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let answer = self.with_group(&group_id, false, |g| {
            g.sync(
                &member_id,
                instance_id.as_deref(),
                generation,
                protocol_type.as_deref(),
                protocol.as_deref(),
                assignments,
                Instant::now(),
            )
        });
        self.after_change(partition, &group_id);
        match answer {
            None => sync_error(ec::UNKNOWN_MEMBER_ID),
            Some(answer) => answer
                .get()
                .await
                .unwrap_or_else(|| sync_error(ec::COORDINATOR_NOT_AVAILABLE)),
        }
    }

    pub fn heartbeat(
        self: Rc<Self>,
        partition: i32,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let code = self
            .with_group(group_id, false, |g| {
                g.heartbeat(member_id, instance_id, generation, Instant::now())
            })
            .unwrap_or(ec::UNKNOWN_MEMBER_ID);
        self.after_change(partition, group_id);
        code
    }

    /// LeaveGroup: one error per (member id, instance id); `Err` for the whole request.
    pub fn leave(
        self: Rc<Self>,
        partition: i32,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let now = Instant::now();
        let codes = self
            .with_group(group_id, false, |g| {
                if g.state == GroupState::Dead {
                    return Err(ec::COORDINATOR_NOT_AVAILABLE);
                }
                Ok(members
                    .iter()
                    .map(|(member, instance)| {
                        g.leave(member, instance.as_deref(), now, &self.timing)
                    })
                    .collect())
            })
            // No such group: each member is unknown (Kafka's answer from v3).
            .unwrap_or_else(|| Ok(vec![ec::UNKNOWN_MEMBER_ID; members.len()]))?;
        self.after_change(partition, group_id);
        Ok(codes)
    }

    /// OffsetCommit: one error code per entry, in order.
    pub async fn commit(
        self: Rc<Self>,
        partition: i32,
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        entries: Vec<CommitEntry>,
    ) -> Vec<i16> {
        // A group unknown here is made only for commits outside group management. (An empty
        // group id is allowed here, as Kafka allows it for offsets.)
        let verdict = self
            .with_group(&group_id, generation < 0, |g| {
                g.validate_commit(&member_id, instance_id.as_deref(), generation)
                    .map(|()| g.incarnation)
            })
            .unwrap_or(Err(ec::ILLEGAL_GENERATION));
        let incarnation = match verdict {
            Ok(incarnation) => incarnation,
            Err(code) => return vec![code; entries.len()],
        };
        self.store_offsets(partition, &group_id, incarnation, entries, None)
            .await
    }

    /// TxnOffsetCommit: the offsets are written in the producer's transaction (a
    /// transactional batch of its id and epoch) and held until its marker reaches this
    /// partition: a COMMIT applies them, an ABORT drops them. One error code per entry.
    pub async fn txn_commit(
        self: Rc<Self>,
        partition: i32,
        group_id: String,
        commit: TxnCommit,
        entries: Vec<CommitEntry>,
    ) -> Vec<i16> {
        // Kafka makes the group if it doesn't exist yet (offsets outside group management).
        let verdict = self
            .with_group(&group_id, true, |g| {
                g.validate_txn_commit(
                    &commit.member_id,
                    commit.instance_id.as_deref(),
                    commit.generation,
                )
                .map(|()| g.incarnation)
            })
            .unwrap_or(Err(ec::COORDINATOR_NOT_AVAILABLE));
        let incarnation = match verdict {
            Ok(incarnation) => incarnation,
            Err(code) => return vec![code; entries.len()],
        };
        let producer = (commit.producer_id, commit.producer_epoch);
        self.store_offsets(partition, &group_id, incarnation, entries, Some(producer))
            .await
    }

    /// Writes a commit's offsets (in the transaction of `producer`, id and epoch, if given)
    /// and, once written, sets them in the group, or holds them for the transaction's
    /// marker. One error code per entry.
    async fn store_offsets(
        &self,
        partition: i32,
        group_id: &str,
        incarnation: u64,
        entries: Vec<CommitEntry>,
        producer: Option<(i64, i16)>,
    ) -> Vec<i16> {
        let (mut codes, writes, staged) = self.offset_records(group_id, entries);
        if staged.is_empty() {
            return codes;
        }
        match self.append(partition, writes, producer).await {
            Ok(base_offset) => {
                // Into the same group object only: if it was deleted meanwhile, the deletion's
                // tombstones follow this commit in the log too.
                self.with_group(group_id, false, |g| {
                    if g.incarnation != incarnation || g.state == GroupState::Dead {
                        return;
                    }
                    for (record, (_, partition, value)) in staged.into_iter().enumerate() {
                        let placed = PlacedOffset {
                            value,
                            log_offset: base_offset + record as i64,
                        };
                        match producer {
                            None => g.apply_offset(partition, placed),
                            Some((producer_id, _)) => {
                                g.pending_txn_offsets.stage(producer_id, partition, placed)
                            }
                        }
                    }
                });
            }
            Err(code) => {
                for (i, ..) in staged {
                    codes[i] = code;
                }
            }
        }
        codes
    }

    /// The records of a commit's entries: the error code of each entry (NONE for those to be
    /// written), the records, and what each written entry will set (entry index, partition,
    /// value), in record order.
    fn offset_records(&self, group_id: &str, entries: Vec<CommitEntry>) -> OffsetRecords {
        let mut codes = vec![ec::NONE; entries.len()];
        let topics = shard::current().topics();
        let now = wall_ms();
        let mut writes = Vec::new();
        let mut staged = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let known = topics
                .get(&entry.topic)
                .is_some_and(|t| (0..t.shards.len() as i32).contains(&entry.partition));
            if !known {
                codes[i] = ec::UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if entry.metadata.len() > self.config.offset_metadata_max_bytes {
                codes[i] = ec::OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            let value = OffsetValue {
                offset: entry.offset,
                leader_epoch: entry.leader_epoch,
                metadata: entry.metadata,
                commit_timestamp: now,
            };
            let key = Key::Offset {
                group: group_id.to_owned(),
                topic: entry.topic.clone(),
                partition: entry.partition,
            };
            writes.push((
                records::encode_key(&key),
                Some(records::encode_offset_value(&value)),
            ));
            staged.push((
                i,
                OffsetPartition {
                    topic: entry.topic,
                    partition: entry.partition,
                },
                value,
            ));
        }
        (codes, writes, staged)
    }

    /// A transaction's marker was written to offsets partition `partition`: the offsets its
    /// producer committed in the groups of that partition are applied (`commit`) or dropped.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let partitions = super::offsets_partition_count(self.config.offsets_topic_num_partitions);
        for group in self.groups.borrow_mut().values_mut() {
            if !group.pending_txn_offsets.has_producer(producer_id)
                || super::partition_for(&group.id, partitions) != partition
            {
                continue;
            }
            let decided = group.pending_txn_offsets.complete(producer_id);
            if commit && group.state != GroupState::Dead {
                txn_offsets::apply_committed(&mut group.offsets, decided);
            }
        }
    }

    /// OffsetFetch: `topics` None means every committed partition. With `require_stable`, a
    /// partition an open transaction has committed an offset for gets UNSTABLE_OFFSET_COMMIT.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        let groups = self.groups.borrow();
        let group = groups.get(group_id);
        let found = |partition: OffsetPartition| {
            let unstable = require_stable
                && group.is_some_and(|g| g.pending_txn_offsets.is_unstable(&partition));
            let value = group
                .and_then(|g| g.offsets.get(&partition))
                .map(|placed| &placed.value)
                .filter(|_| !unstable);
            FetchedOffset {
                offset: value.map_or(-1, |v| v.offset),
                leader_epoch: value.map_or(-1, |v| v.leader_epoch),
                metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
                error: if unstable {
                    ec::UNSTABLE_OFFSET_COMMIT
                } else {
                    ec::NONE
                },
                topic: partition.topic,
                partition: partition.partition,
            }
        };
        match topics {
            Some(topics) => topics
                .into_iter()
                .flat_map(|(topic, partitions)| {
                    partitions
                        .into_iter()
                        .map(move |partition| OffsetPartition {
                            topic: topic.clone(),
                            partition,
                        })
                })
                .map(found)
                .collect(),
            None => {
                let mut all: Vec<OffsetPartition> = group
                    .map(|g| g.offsets.keys().cloned().collect())
                    .unwrap_or_default();
                all.sort();
                all.into_iter().map(found).collect()
            }
        }
    }

    pub fn list(&self) -> Vec<Listed> {
        self.groups
            .borrow()
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| Listed {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect()
    }

    /// DescribeGroups for one group; `None` if there is no such group.
    pub fn describe(&self, group_id: &str) -> Option<Described> {
        let groups = self.groups.borrow();
        let g = groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol.clone().unwrap_or_default()
        } else {
            String::new()
        };
        Some(Described {
            error: ec::NONE,
            state: g.state.name().to_owned(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members()
                .iter()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        })
    }

    /// DeleteGroups for one group: only empty groups; their offsets go too.
    pub async fn delete(self: Rc<Self>, partition: i32, group_id: String) -> i16 {
        let keys = self.with_group(&group_id, false, |g| match g.state {
            GroupState::Dead => Err(ec::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {
                let mut keys: Vec<Key> = g
                    .offsets
                    .keys()
                    .map(|p| Key::Offset {
                        group: g.id.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition,
                    })
                    .collect();
                keys.push(Key::Group {
                    group: g.id.clone(),
                });
                let kept = (g.offsets.clone(), g.pending_txn_offsets.clone());
                g.mark_dead();
                Ok((keys, kept, g.incarnation))
            }
            _ => Err(ec::NON_EMPTY_GROUP),
        });
        let (keys, kept, incarnation) = match keys {
            None => return ec::GROUP_ID_NOT_FOUND,
            Some(Err(code)) => return code,
            Some(Ok(deleted)) => deleted,
        };
        let tombstones = keys
            .iter()
            .map(|k| (records::encode_key(k), None))
            .collect();
        let result = self.append(partition, tombstones, None).await;
        let mut groups = self.groups.borrow_mut();
        let same = groups
            .get(&group_id)
            .is_some_and(|g| g.incarnation == incarnation);
        match result {
            Ok(_) => {
                if same {
                    groups.remove(&group_id);
                }
                ec::NONE
            }
            Err(code) => {
                // Nothing was written: the group (and its offsets) are still there on disk.
                if let Some(g) = groups.get_mut(&group_id).filter(|_| same) {
                    g.revive(kept.0, kept.1);
                }
                code
            }
        }
    }

    /// OffsetDelete: removes committed offsets the group is not consuming. `Err` for the
    /// whole request; else one code per partition.
    pub async fn delete_offsets(
        self: Rc<Self>,
        partition: i32,
        group_id: String,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let subscribed = self
            .with_group(&group_id, false, |g| match g.state {
                GroupState::Dead => Err(ec::GROUP_ID_NOT_FOUND),
                GroupState::Empty => Ok(Some(HashSet::new())),
                _ if g.protocol_type.as_deref() == Some("consumer") => {
                    Ok(super::subscribed_topics(g))
                }
                _ => Err(ec::NON_EMPTY_GROUP),
            })
            .unwrap_or(Err(ec::GROUP_ID_NOT_FOUND))?;
        let mut codes = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        let mut removed = Vec::new();
        for (topic, p) in partitions {
            if subscribed.as_ref().is_none_or(|s| s.contains(&topic)) {
                codes.push(ec::GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            codes.push(ec::NONE);
            let key = Key::Offset {
                group: group_id.clone(),
                topic: topic.clone(),
                partition: p,
            };
            tombstones.push((records::encode_key(&key), None));
            removed.push(OffsetPartition {
                topic,
                partition: p,
            });
        }
        if !tombstones.is_empty() {
            self.append(partition, tombstones, None).await?;
            self.with_group(&group_id, false, |g| {
                for key in &removed {
                    g.offsets.remove(key);
                    g.pending_txn_offsets.forget_partition(key);
                }
            });
        }
        Ok(codes)
    }

    /// A topic was deleted: its committed offsets go too (tombstones), so a topic created again
    /// under the name doesn't resume from them. Returns how many were removed.
    pub async fn forget_topic(self: Rc<Self>, topic: String) -> usize {
        let partitions = super::offsets_partition_count(self.config.offsets_topic_num_partitions);
        let mut by_partition: HashMap<i32, Vec<Entry>> = HashMap::new();
        let mut removed = 0;
        for g in self.groups.borrow_mut().values_mut() {
            g.pending_txn_offsets.forget_topic(&topic);
            let gone: Vec<OffsetPartition> = g
                .offsets
                .keys()
                .filter(|p| p.topic == topic)
                .cloned()
                .collect();
            for p in gone {
                g.offsets.remove(&p);
                removed += 1;
                let key = Key::Offset {
                    group: g.id.clone(),
                    topic: p.topic,
                    partition: p.partition,
                };
                by_partition
                    .entry(super::partition_for(&g.id, partitions))
                    .or_default()
                    .push((records::encode_key(&key), None));
            }
        }
        for (partition, tombstones) in by_partition {
            if let Err(code) = self.append(partition, tombstones, None).await {
                tracing::warn!(partition, code, %topic, "writing a deleted topic's offsets failed");
            }
        }
        removed
    }

    /// Expires offsets of empty groups (`offsets.retention.minutes` after the group emptied
    /// or the offset was committed, whichever is later), forever.
    async fn expire_offsets_forever(self: Rc<Self>) {
        let interval =
            Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1));
        loop {
            match rt::select(rt::sleep(interval), rt::shutdown_requested()).await {
                rt::Either::Left(()) => {
                    self.expire_offsets(wall_ms()).await;
                }
                rt::Either::Right(()) => return,
            }
        }
    }

    /// One expiry pass at `now_ms`; returns how many offsets expired.
    pub async fn expire_offsets(self: &Rc<Self>, now_ms: i64) -> usize {
        let retention = (self.config.offsets_retention_minutes as i64).saturating_mul(60_000);
        let mut by_partition: HashMap<i32, Vec<Entry>> = HashMap::new();
        let mut expired = 0;
        let partitions = super::offsets_partition_count(self.config.offsets_topic_num_partitions);
        {
            let mut groups = self.groups.borrow_mut();
            let mut emptied = Vec::new();
            for g in groups.values_mut().filter(|g| g.state == GroupState::Empty) {
                let since = g.state_since_ms;
                // An offset a transaction is about to replace is not expired (as in Kafka).
                let old: Vec<OffsetPartition> = g
                    .offsets
                    .iter()
                    .filter(|(p, placed)| {
                        let committed = placed.value.commit_timestamp;
                        committed.max(since).saturating_add(retention) <= now_ms
                            && !g.pending_txn_offsets.is_unstable(p)
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                let partition = super::partition_for(&g.id, partitions);
                for p in old {
                    g.offsets.remove(&p);
                    expired += 1;
                    let key = Key::Offset {
                        group: g.id.clone(),
                        topic: p.topic,
                        partition: p.partition,
                    };
                    by_partition
                        .entry(partition)
                        .or_default()
                        .push((records::encode_key(&key), None));
                }
                if g.offsets.is_empty()
                    && g.pending_txn_offsets.is_empty()
                    && g.state_since_ms.saturating_add(retention) <= now_ms
                {
                    emptied.push((g.id.clone(), partition));
                }
            }
            for (id, partition) in emptied {
                groups.remove(&id);
                by_partition
                    .entry(partition)
                    .or_default()
                    .push((records::encode_key(&Key::Group { group: id }), None));
            }
        }
        for (partition, tombstones) in by_partition {
            if let Err(code) = self.append(partition, tombstones, None).await {
                tracing::warn!(partition, code, "writing expired offsets failed");
            }
        }
        if expired > 0 {
            tracing::info!(expired, "expired committed offsets");
        }
        expired
    }
}

/// A record to append: key and value (`None`: a tombstone), both in Kafka's encoding.
type Entry = (Vec<u8>, Option<Vec<u8>>);

/// [`Coordinator::offset_records`]' answer.
type OffsetRecords = (
    Vec<i16>,
    Vec<Entry>,
    Vec<(usize, OffsetPartition, OffsetValue)>,
);

/// Who commits offsets in a transaction (TxnOffsetCommit).
#[derive(Debug, Clone)]
pub struct TxnCommit {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Empty, and generation -1, from producers before KIP-447.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
}

/// What loading has found for one group so far.
#[derive(Default)]
struct LoadedGroup {
    group: Option<GroupValue>,
    offsets: HashMap<OffsetPartition, PlacedOffset>,
    /// Offsets of transactions whose markers were not read yet.
    pending: PendingTxnOffsets,
}

/// Where a record being loaded sits, and the transaction that wrote it, if any.
#[derive(Debug, Clone, Copy)]
struct LoadedRecord {
    log_offset: i64,
    txn_producer: Option<i64>,
}

/// A marker of `producer_id` was read: its offsets in every group loaded so far are decided.
fn complete_loaded_txn(state: &mut HashMap<String, LoadedGroup>, producer_id: i64, commit: bool) {
    for loaded in state.values_mut() {
        let decided = loaded.pending.complete(producer_id);
        if commit {
            txn_offsets::apply_committed(&mut loaded.offsets, decided);
        }
    }
}

/// Applies one `__consumer_offsets` record; records that can't be read are logged and skipped.
fn apply_record(
    state: &mut HashMap<String, LoadedGroup>,
    at: LoadedRecord,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let Some(key) = key else {
        return;
    };
    let key = match records::decode_key(key) {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(error = %e, "skipping an unreadable offsets key");
            return;
        }
    };
    match (key, value) {
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            Some(value),
        ) => match records::decode_offset_value(value) {
            Ok(value) => {
                let loaded = state.entry(group).or_default();
                let partition = OffsetPartition { topic, partition };
                let placed = PlacedOffset {
                    value,
                    log_offset: at.log_offset,
                };
                match at.txn_producer {
                    Some(producer_id) => loaded.pending.stage(producer_id, partition, placed),
                    None => {
                        txn_offsets::apply_if_newer(&mut loaded.offsets, partition, placed);
                    }
                }
            }
            Err(e) => tracing::warn!(%group, error = %e, "skipping an unreadable offset"),
        },
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            None,
        ) => {
            if let Some(g) = state.get_mut(&group) {
                let partition = OffsetPartition { topic, partition };
                // As at run time (OffsetDelete, a deleted topic): pending ones go too.
                g.pending.forget_partition(&partition);
                g.offsets.remove(&partition);
            }
        }
        (Key::Group { group }, Some(value)) => match records::decode_group_value(value) {
            Ok(value) => state.entry(group).or_default().group = Some(value),
            Err(e) => tracing::warn!(%group, error = %e, "skipping unreadable group metadata"),
        },
        // As in Kafka, a group tombstone ends the group's metadata; its offsets have
        // tombstones of their own.
        (Key::Group { group }, None) => {
            if let Some(g) = state.get_mut(&group) {
                g.group = None;
                // The group was deleted: offsets its open transactions committed went with it.
                g.pending = PendingTxnOffsets::default();
            }
        }
    }
}

/// This shard's log of `__consumer_offsets` partition `partition`: only the shard that owns
/// the partition coordinates its groups.
///
/// A partition placed on this shard whose log is not open yet (the topic was created a moment
/// ago by another request, or is still opening) is COORDINATOR_LOAD_IN_PROGRESS, as Kafka
/// answers while it loads a partition: clients retry that quietly, where NOT_COORDINATOR
/// surfaces as an error in librdkafka's consumer.
/// How long an offset commit waits for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms`).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The error a coordinator write answers when its records did not reach the in-sync replicas
/// (Kafka's `GroupMetadataManager` mapping): retriable either way.
pub(crate) fn replication_error(code: i16) -> i16 {
    match code {
        ec::NOT_LEADER_OR_FOLLOWER => ec::NOT_COORDINATOR,
        _ => ec::COORDINATOR_NOT_AVAILABLE,
    }
}

fn offsets_partition(partition: i32) -> Result<crate::partitions::Partition, i16> {
    let shard = shard::current();
    if let Some(open) = shard.partition(&TopicPartition::new(OFFSETS_TOPIC, partition)) {
        return Ok(open);
    }
    // Unknown here: the topic's creation hasn't reached this shard yet.
    let topics = shard.topics();
    if topics.get(OFFSETS_TOPIC).is_none() {
        return Err(ec::COORDINATOR_LOAD_IN_PROGRESS);
    }
    // Led here but not open yet: loading. Led by another shard or broker: not this one.
    match crate::route::coordinator_shard(&topics, OFFSETS_TOPIC, partition) {
        Ok(owner) if owner == rt::shard_id() => Err(ec::COORDINATOR_LOAD_IN_PROGRESS),
        _ => Err(ec::NOT_COORDINATOR),
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
