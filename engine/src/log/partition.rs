//! A partition's log: segments in offset order, appends at the end, reads anywhere.
//!
//! One `Log` lives on its partition's owning shard and is used only there (it is `!Send`;
//! clones share it). Appends are assigned offsets and file positions synchronously, in call
//! order, then written concurrently; the high watermark (what readers see) advances only over
//! a gap-free prefix of completed writes. An append returns once its bytes are readable and,
//! under `flush.policy = always`, durable (see [`crate::flush`]).
//!
//! A failed write or sync puts the log in a failed state: every later append gets
//! KAFKA_STORAGE_ERROR until the log is reopened, which runs recovery. Reads of what was
//! already visible keep working.
//!
//! This file holds the log's state and the write path; the rest of what a log does lives
//! beside it: rolling and sealing segments (roll.rs), read planning (read.rs), removing
//! segments for retention and DeleteRecords (delete.rs), and making data durable
//! ([`crate::flush`], which sees the log through [`SyncTarget`]).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::batch::{self, TimestampType};
use super::checkpoint::{Checkpoint, CheckpointWriter};
use super::compaction::{self, LogCompaction};
use super::config::LogConfig;
use super::error::{AppendError, ReadError, StorageError};
use super::exclusive::Exclusive;
use super::leader_epochs::{self, LeaderEpochCache};
use super::producers::{self, ProducerEntry, ProducerStates, ProducerUpdate, Verdict};
use super::recovery::{self, RecoveryReport};
use super::roll;
use super::segment::{self, Segment};
use super::txn::{self, AbortedTxnEntry, CompletedTxn, EndTxnMarker, Unreplicated};
use super::write_layout::WriteLayout;
use crate::flush::{self, FlushPolicy, GroupCommit, IntervalFlush, SyncRound, SyncTarget};
use crate::rt::{self, EventWait, File, LocalEvent};

/// Where the log gets the time: the system clock, or a hand-set one for tests.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Rc<Cell<i64>>),
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            Clock::Manual(ms) => ms.get(),
        }
    }
}

/// How to open a log.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The data directory was shut down cleanly (the broker found its clean-shutdown marker,
    /// [`CLEAN_SHUTDOWN_FILE`](super::CLEAN_SHUTDOWN_FILE)): skip recovery of the logs that
    /// were closed cleanly too.
    pub clean_shutdown: bool,
    pub clock: Clock,
}

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The time stamped into the batches of a LogAppendTime topic.
    pub log_append_time: Option<i64>,
    pub log_start_offset: i64,
}

/// Counters of one log, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub appended_bytes: u64,
    /// Group-commit rounds run.
    pub sync_rounds: u64,
    /// fdatasync calls on segment files (directory syncs not counted).
    pub fdatasyncs: u64,
    pub segments_rolled: u64,
    pub segments_deleted: u64,
}

/// Who an append comes from, which decides the producer checks it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// A produce request: data batches only (sequence, epoch and transaction rules).
    Client,
    /// Transactional data the broker's group coordinator writes for a producer (epoch and
    /// transaction rules, no sequences).
    Coordinator,
    /// A transaction marker from the coordinator (epoch and coordinator epoch rules).
    Marker {
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
    },
    /// A follower writing its leader's batches verbatim (see replication.rs): offsets come
    /// from the batches, nothing is checked against producer state, which records them.
    Replica,
}

/// A partition's log. Cheap to clone; all clones are the same log.
#[derive(Debug, Clone)]
pub struct Log {
    pub(super) inner: Rc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) dir: PathBuf,
    /// The partition directory, open for the fsyncs that make its entries durable.
    pub(super) dir_file: File,
    pub(super) config: RefCell<LogConfig>,
    pub(super) clock: Clock,
    pub(super) state: RefCell<State>,
    group_commit: GroupCommit,
    interval_flush: IntervalFlush,
    /// A write completed or the replicated cap moved (the high watermark may have moved), or
    /// the log failed.
    pub(super) progress: LocalEvent,
    /// A rolled segment's files were created (or creating them failed).
    pub(super) segment_created: LocalEvent,
    checkpoint: CheckpointWriter,
    /// Held while segments are removed or replaced (retention, DeleteRecords, the cleaner's
    /// swap), so those never interleave.
    pub(super) surgery: Exclusive,
    /// One write of the leader epoch cache file at a time, each of the cache as it is then.
    epochs_writer: Exclusive,
    /// The cleaner's position in this log and what it has done.
    pub(super) compaction: RefCell<LogCompaction>,
    /// Tasks the log spawned (seals, flush timers, preallocation) still running.
    background: Cell<usize>,
    background_done: LocalEvent,
    stats: Cell<LogStats>,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) segments: BTreeMap<i64, Segment>,
    /// Offset the next append gets (the log end offset).
    pub(super) next_offset: i64,
    /// Offsets below this are written (the gap-free prefix of completed writes): this
    /// replica's log end as followers and ISR tracking see it. Consumers read below the
    /// [high watermark](State::high_watermark), which the replicated cap may hold lower.
    pub(super) written_end: i64,
    /// The high watermark replication allows (the leader's, on a follower; the ISR's
    /// acknowledged end, on a leader); `None`: no replication, the written end is the high
    /// watermark.
    pub(super) replicated_cap: Option<i64>,
    /// The leader epoch stamped into the batches this log writes as leader; `None`: not
    /// replicated, batches are written with the epoch they came with.
    pub(super) leader_epoch: Option<i32>,
    /// This replica follows the partition's leader: only follower appends are written.
    pub(super) follower: bool,
    /// Which leader epoch began where (KIP-101), persisted in `leader-epoch-checkpoint`.
    pub(super) epochs: LeaderEpochCache,
    /// A truncation is under way: appends are refused until it is done.
    pub(super) truncating: bool,
    pub(super) log_start_offset: i64,
    /// Writes in assignment order; completed ones leave from the front.
    pub(super) pending: VecDeque<PendingWrite>,
    /// Sequence number of `pending[0]`.
    first_pending_seq: u64,
    pub(super) failed: Option<StorageError>,
    /// Idempotent producers' sequences and open transactions, checked and updated as appends
    /// are placed.
    pub(super) producers: ProducerStates,
    /// Transactions whose marker is placed but not yet below the high watermark.
    pub(super) unreplicated: Unreplicated,
    pub(super) closed: bool,
    /// Every segment's data and indexes are durable (set by `close`).
    pub(super) all_sealed: bool,
    /// A segment file was created since the directory was last synced.
    pub(super) dir_dirty: bool,
    /// Bytes appended; bytes written (in order, as the high watermark moves); bytes written
    /// as of the start of the last successful sync round.
    pub(super) appended_total: u64,
    pub(super) written_total: u64,
    pub(super) synced_total: u64,
}

#[derive(Debug)]
pub(super) struct PendingWrite {
    segment: i64,
    len: u64,
    end_position: u64,
    end_offset: i64,
    done: bool,
}

impl State {
    pub(super) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Everything below this was synced with its indexes: recovery starts here.
    fn recovery_point(&self) -> i64 {
        if self.all_sealed {
            return self.next_offset;
        }
        let active = self.active().base_offset;
        self.segments
            .values()
            .find(|s| s.indexes_dirty || s.base_offset == active)
            .map_or(self.next_offset, |s| s.base_offset)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            recovery_point: self.recovery_point(),
            log_start_offset: self.log_start_offset,
            closed_cleanly: self.closed && self.all_sealed,
        }
    }

    /// The first offset not yet stable: an open transaction's, or one whose marker is not
    /// yet readable. Never below the log start offset (as Kafka: a transaction whose start
    /// was deleted still holds the LSO, at the start).
    pub(super) fn first_unstable_offset(&self) -> Option<i64> {
        txn::first_unstable_offset(
            self.producers.first_open_txn_offset(),
            self.unreplicated.first_offset(self.high_watermark()),
        )
        .map(|first| first.max(self.log_start_offset))
    }

    /// The last stable offset: read_committed consumers read below it.
    pub(super) fn last_stable_offset(&self) -> i64 {
        txn::last_stable_offset(self.first_unstable_offset(), self.high_watermark())
    }

    /// The high watermark consumers read below: the written end, held back by the replicated
    /// cap when there is one, and never below the log start (Kafka's `updateHighWatermark`
    /// bounds it the same way).
    pub(super) fn high_watermark(&self) -> i64 {
        let capped = self
            .replicated_cap
            .map_or(self.written_end, |cap| cap.min(self.written_end));
        capped.max(self.log_start_offset.min(self.written_end))
    }

    /// OFFSET_OUT_OF_RANGE for `offset` against the readable end `end` (the written end for
    /// reads: an offset between the high watermark and it reads nothing, as in Kafka, where
    /// only offsets past the log end are out of range; the high watermark for DeleteRecords).
    pub(super) fn out_of_range(&self, offset: i64, end: i64) -> ReadError {
        ReadError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            high_watermark: end,
        }
    }
}

impl Log {
    /// Opens (creating if need be) the log in `dir`, recovering it unless the data directory
    /// was shut down cleanly. Must run on a shard.
    pub async fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        options: OpenOptions,
    ) -> io::Result<(Log, RecoveryReport)> {
        let dir = dir.into();
        if !rt::fs::try_exists(&dir).await.unwrap_or(false) {
            rt::fs::create_dir_all(&dir).await?;
            // The partition directory's own entry must be durable before anything in it is.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                rt::fs::open_dir(parent).await?.fsync().await?;
            }
        }
        let checkpoint = Checkpoint::read(&dir).await?;
        let mut loaded = recovery::load(&dir, &config, options.clean_shutdown, checkpoint).await?;
        let active_base = *loaded.segments.keys().next_back().expect("a segment");
        let next_offset = loaded.segments[&active_base].next_offset;
        // A log that never took part in replication has no epoch file and gets none. A
        // damaged one is not rebuilt by scanning the whole log (a cost on every open of a
        // large partition): the cache starts empty, learns the epochs of the batches replayed
        // below (those past the last producer snapshot), and the warning goes in the report.
        // An incomplete cache only makes a follower truncate further and fetch again.
        let (mut epochs, epochs_loaded) = match leader_epochs::read(&dir).await? {
            leader_epochs::Read::Missing => (None, None),
            leader_epochs::Read::Loaded(cache) => (Some(cache.clone()), Some(cache)),
            leader_epochs::Read::Corrupt => {
                loaded.report.problems.push(format!(
                    "{}: unreadable; leader epochs rebuilt from the batches replayed",
                    leader_epochs::LEADER_EPOCH_FILE
                ));
                (Some(LeaderEpochCache::default()), None)
            }
        };
        let (producers, rebuilt) = producers::rebuild(
            &dir,
            &mut loaded.segments,
            next_offset,
            options.clock.now_ms(),
            epochs.as_mut(),
        )
        .await
        .map_err(|e| io::Error::other(e.0))?;
        loaded.report.producers = rebuilt;
        // Epochs past the recovered end began in data a crash lost; those before the log
        // start describe deleted data.
        if let Some(cache) = epochs.as_mut() {
            cache.truncate_from_end(next_offset);
            cache.truncate_from_start(loaded.log_start_offset);
            if epochs_loaded.as_ref() != Some(cache) {
                leader_epochs::write(&dir, cache.encode()).await?;
            }
        }
        // Sealed segments whose indexes were rebuilt (transaction indexes included, which
        // rebuilding producer state may have changed) get them written now, so the
        // checkpoint can move past them.
        for segment in loaded.segments.values_mut() {
            if segment.indexes_dirty && segment.base_offset != active_base {
                segment.index_snapshot().write(&dir).await?;
                segment.indexes_dirty = false;
            }
        }
        let state = State {
            segments: loaded.segments,
            next_offset,
            written_end: next_offset,
            replicated_cap: None,
            leader_epoch: None,
            follower: false,
            epochs: epochs.unwrap_or_default(),
            truncating: false,
            log_start_offset: loaded.log_start_offset,
            pending: VecDeque::new(),
            first_pending_seq: 0,
            failed: None,
            producers,
            // The high watermark starts at the end: every marker is readable.
            unreplicated: Unreplicated::default(),
            closed: false,
            all_sealed: false,
            dir_dirty: false,
            appended_total: 0,
            written_total: 0,
            synced_total: 0,
        };
        let log = Log {
            inner: Rc::new(Inner {
                dir_file: rt::fs::open_dir(&dir).await?,
                dir,
                config: RefCell::new(config),
                clock: options.clock,
                group_commit: GroupCommit::new(loaded.durable_offset),
                interval_flush: IntervalFlush::default(),
                state: RefCell::new(state),
                progress: LocalEvent::new(),
                segment_created: LocalEvent::new(),
                checkpoint: CheckpointWriter::default(),
                surgery: Exclusive::default(),
                epochs_writer: Exclusive::default(),
                compaction: RefCell::new(LogCompaction::new(loaded.cleaner)),
                background: Cell::new(0),
                background_done: LocalEvent::new(),
                stats: Cell::new(LogStats::default()),
            }),
        };
        log.inner
            .write_checkpoint()
            .await
            .map_err(|e| io::Error::other(e.0))?;
        Ok((log, loaded.report))
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config.borrow().clone()
    }

    /// Applies new settings; they govern the next append, roll, flush and retention pass.
    pub fn set_config(&self, config: LogConfig) {
        *self.inner.config.borrow_mut() = config;
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// The high watermark: consumers read below it. Offsets below the
    /// [written end](Self::written_end), held back by the
    /// [replicated cap](Self::set_replicated_high_watermark) when there is one.
    pub fn high_watermark(&self) -> i64 {
        self.inner.state.borrow().high_watermark()
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().next_offset
    }

    /// Offsets below this are on stable storage.
    pub fn durable_offset(&self) -> i64 {
        self.inner.group_commit.synced()
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .values()
            .map(|s| s.size)
            .sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.inner.state.borrow().segments.keys().copied().collect()
    }

    pub fn stats(&self) -> LogStats {
        let mut stats = self.inner.stats.get();
        stats.sync_rounds = self.inner.group_commit.rounds();
        stats
    }

    /// Waits until the tasks the log runs in the background (sealing rolled segments, timed
    /// flushes, preallocation) have finished. Tests that simulate a crash by dropping a log
    /// call this first, so no task of the old log writes into the directory it reopens.
    pub async fn quiesce(&self) {
        while self.inner.background.get() > 0 {
            self.inner.interval_flush.hurry();
            self.inner.background_done.wait().await;
        }
    }

    /// The idempotent producers this log knows, by producer id (for DescribeProducers), each
    /// with its open transaction (`current_txn_first_offset`) if it has one here.
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        let st = self.inner.state.borrow();
        let mut producers: Vec<_> = st
            .producers
            .iter()
            .map(|(id, entry)| (id, entry.clone()))
            .collect();
        producers.sort_unstable_by_key(|(id, _)| *id);
        producers
    }

    /// Forgets producers idle for longer than `producer.id.expiration.ms`; returns how many.
    pub fn expire_producers(&self) -> usize {
        let now = self.inner.clock.now_ms();
        let expiration = self.inner.config.borrow().producer_id_expiration_ms;
        self.inner
            .state
            .borrow_mut()
            .producers
            .expire(now, expiration)
    }

    /// Why the log refuses appends, if it does.
    pub fn failure(&self) -> Option<StorageError> {
        self.inner.state.borrow().failed.clone()
    }

    /// Completes when the high watermark may have moved (or the log failed) after this call:
    /// what a long-polling fetch waits for. Take it before checking the high watermark, so
    /// progress in between is not missed.
    pub fn changed(&self) -> EventWait<'_> {
        self.inner.progress.wait()
    }

    /// Appends a produce request's record set (one or more RecordBatch v2). Validates every
    /// batch first; on any refusal nothing is written. The returned future completes once the
    /// records are readable and, under `flush.policy = always`, durable.
    ///
    /// The records are placed in the log when this is called, not when the future is first
    /// polled: offsets and file positions follow call order, so a connection can start its
    /// next pipelined append without waiting for this one to be written (the write is already
    /// under way). Dropping the future doesn't undo the append, but its share of the flush
    /// policy runs only when it completes (the `always` sync it waits for, the `interval`
    /// flush it schedules): a dropped append is made durable by the next append's flush, or by
    /// the segment's seal or the log's close.
    pub fn append(
        &self,
        records: impl Into<Bytes>,
    ) -> impl Future<Output = Result<AppendInfo, AppendError>> + 'static {
        // Into the topic's compression.type first (a no-op under `producer`): what is placed,
        // validated and stored is the batch as the topic keeps it.
        let placed = self
            .recompressed(records.into())
            .and_then(|records| self.place(records, Placement::Client));
        self.finish_append(placed)
    }

    /// The asynchronous part of an append: waits until the placed records are written and
    /// applies the flush policy.
    pub(super) fn finish_append(
        &self,
        placed: Result<(AppendInfo, FlushPolicy), AppendError>,
    ) -> impl Future<Output = Result<AppendInfo, AppendError>> + 'static {
        let inner = self.inner.clone();
        async move {
            let (info, flush) = placed?;
            let end = info.last_offset + 1;
            inner.wait_written(end).await?;
            match flush {
                FlushPolicy::Always => flush::sync_to(&inner, end).await?,
                FlushPolicy::Interval { ms, bytes } => {
                    flush::schedule_interval_flush(&inner, ms, bytes)
                }
                FlushPolicy::Never => {}
            }
            Ok(info)
        }
    }

    /// The synchronous part of [`append`](Self::append) and
    /// [`append_marker`](Self::append_marker): validates, checks the producer rules, rolls if
    /// need be, assigns offsets and a file position, and starts the write. Returns what was
    /// assigned and the flush policy the append is under.
    pub(super) fn place(
        &self,
        records: Bytes,
        placement: Placement,
    ) -> Result<(AppendInfo, FlushPolicy), AppendError> {
        let max_message_bytes = self.inner.config.borrow().max_message_bytes;
        let batches = batch::split_and_validate(&records, max_message_bytes)?;
        self.place_batches(records, batches, placement)
    }

    /// [`place`](Self::place) for records already split into validated `batches`. A
    /// [`Placement::Replica`] caller has checked their offsets follow the log's end, in
    /// this same synchronous step.
    pub(super) fn place_batches(
        &self,
        records: Bytes,
        batches: Vec<(usize, batch::BatchHeader)>,
        placement: Placement,
    ) -> Result<(AppendInfo, FlushPolicy), AppendError> {
        let inner = &self.inner;
        let config = inner.config.borrow().clone();
        let replica = placement == Placement::Replica;
        if config.cleanup_policy.compact && placement == Placement::Client {
            let limit = batch::decompression_limit(config.max_message_bytes);
            for (at, header) in &batches {
                let len = header.total_len().expect("validated");
                compaction::check_keys(&records[*at..*at + len], header, limit)?;
            }
        }
        let segment_bytes = config.effective_segment_bytes();
        if records.len() as u64 > segment_bytes {
            return Err(AppendError::RecordListTooLarge {
                size: records.len(),
                max: segment_bytes,
            });
        }
        let now = inner.clock.now_ms();
        // A follower keeps the leader's timestamps as they are.
        let append_time =
            (config.timestamp_type == TimestampType::LogAppendTime && !replica).then_some(now);
        // The offsets the records span: their count for a leader, which assigns them densely;
        // first to last for a follower (a compacted leader's batches leave gaps).
        let span: i64 = if replica {
            let first = batches.first().map_or(0, |(_, h)| h.base_offset);
            batches.last().map_or(0, |(_, h)| h.last_offset()) - first + 1
        } else {
            batches
                .iter()
                .map(|(_, h)| i64::from(h.last_offset_delta) + 1)
                .sum()
        };
        // A segment spans at most i32::MAX offsets (relative offsets in the index). Counts of
        // compressed batches can't be checked without decompressing, so bound them here.
        if span > i64::from(i32::MAX) {
            return Err(batch::BatchError::Invalid("record set claims too many records").into());
        }
        // A follower's markers, decoded before anything changes. One that doesn't decode is
        // written all the same (the leader wrote it) and ends nothing, as on replay.
        let markers: Vec<Option<EndTxnMarker>> = if replica {
            batches
                .iter()
                .map(|(at, header)| {
                    let len = header.total_len().expect("validated");
                    header
                        .is_control()
                        .then(|| txn::marker::decode_marker(&records[*at..*at + len], header))
                        .and_then(Result::ok)
                        .flatten()
                })
                .collect()
        } else {
            Vec::new()
        };

        // Synchronous part: roll if need be, assign offsets and a file position.
        let mut completed: Vec<(CompletedTxn, Option<AbortedTxnEntry>)> = Vec::new();
        let (file, info_segment, position, seq, info, parts) = {
            let mut st = inner.state.borrow_mut();
            if let Some(e) = &st.failed {
                return Err(e.clone().into());
            }
            if st.closed || st.truncating {
                return Err(AppendError::Closed);
            }
            if st.follower && !replica {
                return Err(AppendError::NotLeader);
            }
            let base_offset = if replica {
                batches
                    .first()
                    .map_or(st.next_offset, |(_, h)| h.base_offset)
            } else {
                st.next_offset
            };
            // Idempotent producers' batches are checked against the offsets they are about to
            // get, in this same step, so a retry racing its original can't pass twice.
            let mut first_offset = st.next_offset;
            let firsts = batches.iter().map(|(_, header)| {
                let first = first_offset;
                first_offset += i64::from(header.last_offset_delta) + 1;
                (first, header)
            });
            let mut marker_completed = None;
            let checked = match placement {
                Placement::Client => st.producers.check_client_append(firsts, now)?,
                Placement::Coordinator => {
                    Verdict::Append(st.producers.check_coordinator_append(firsts, now)?)
                }
                Placement::Marker {
                    producer_id,
                    epoch,
                    marker,
                } => {
                    let at = st.next_offset;
                    let (update, completed) =
                        st.producers
                            .check_marker(producer_id, epoch, marker, at, now)?;
                    marker_completed = completed;
                    Verdict::Append(update)
                }
                // Recorded batch by batch below, once placed.
                Placement::Replica => Verdict::Append(ProducerUpdate::default()),
            };
            let producer_update = match checked {
                Verdict::Append(update) => update,
                Verdict::Duplicate(original) => {
                    let info = AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        log_append_time: append_time.map(|_| original.max_timestamp),
                        log_start_offset: st.log_start_offset,
                    };
                    // Nothing is written; the caller still waits for the original to be
                    // readable (and durable, under `always`) before answering.
                    return Ok((info, config.flush));
                }
            };
            let rolled = roll::roll_if_needed(
                inner,
                &mut st,
                &config,
                records.len() as u64,
                base_offset,
                base_offset + span,
                now,
            );
            // The state as of the new segment's base, saved once the old segment is sealed.
            let rolled = rolled.map(|old| (old, producers::snapshot::encode(&st.producers)));
            // A leader stamps its epoch (only once one is set: a lone broker writes batches as
            // they came) and records where it began, as Kafka's leader appends do; a follower
            // learns each newer epoch from the leader's stamps.
            let stamp = if replica { None } else { st.leader_epoch };
            let mut epochs_changed = false;
            let mut offset = base_offset;
            let active = st.active_mut();
            let position = active.size;
            let mut layout = if replica {
                WriteLayout::verbatim(&records)
            } else {
                WriteLayout::new(&records, append_time.is_some(), batches.len())
            };
            for (at, header) in &batches {
                let len = header.total_len().expect("validated");
                let mut max_timestamp = header.max_timestamp;
                if replica {
                    offset = header.base_offset;
                } else {
                    layout.add_batch(*at, len, offset, stamp, append_time);
                }
                if let Some(time) = append_time {
                    max_timestamp = time;
                }
                let last = offset + i64::from(header.last_offset_delta);
                active
                    .indexes
                    .add_batch((position + *at as u64) as u32, last, max_timestamp, len);
                offset = last + 1;
            }
            let end_position = position + records.len() as u64;
            active.size = end_position;
            active.next_offset = offset;
            active.indexes_dirty = true;
            active.first_append_ms.get_or_insert(now);
            let segment = active.base_offset;
            let file = active.log.clone();
            let preallocate = active
                .next_preallocation(config.preallocate_bytes, config.effective_segment_bytes());
            st.next_offset = offset;
            st.producers.commit(producer_update);
            if let Some(done) = marker_completed {
                // An abort is indexed in the segment holding its marker, with the LSO as of
                // right after it (Kafka's `UnifiedLog.append`).
                let entry = done.aborted.then(|| AbortedTxnEntry {
                    producer_id: done.producer_id,
                    first_offset: done.first_offset,
                    last_offset: done.last_offset,
                    last_stable_offset: st.producers.last_stable_offset_after(&done),
                });
                completed.push((done, entry));
            }
            if replica {
                for ((_, header), marker) in batches.iter().zip(&markers) {
                    completed.extend(producers::apply_stored_batch(
                        &mut st.producers,
                        header,
                        *marker,
                        now,
                    ));
                    epochs_changed |= st
                        .epochs
                        .observe_batch(header.partition_leader_epoch, header.base_offset);
                }
            } else if let Some(epoch) = stamp {
                epochs_changed |= st.epochs.observe_batch(epoch, base_offset);
            }
            for (done, entry) in completed.drain(..) {
                if let Some(entry) = entry {
                    let active = st.active_mut();
                    active.aborted.push(entry);
                    active.indexes_dirty = true;
                }
                st.unreplicated.push(done);
            }
            st.appended_total += records.len() as u64;
            let seq = st.first_pending_seq + st.pending.len() as u64;
            st.pending.push_back(PendingWrite {
                segment,
                len: records.len() as u64,
                end_position,
                end_offset: offset,
                done: false,
            });
            let log_start_offset = st.log_start_offset;
            drop(st);
            if let Some((old, producers)) = rolled {
                inner.spawn_background(roll::seal(inner.clone(), old, producers));
            }
            if epochs_changed {
                let persisting = inner.clone();
                inner.spawn_background(async move {
                    // A lost write is made good by the next open: replay learns the epochs
                    // of the batches past the last snapshot again.
                    if let Err(e) = persisting.persist_epochs().await {
                        tracing::warn!(dir = %persisting.dir.display(), error = %e.0, "writing the leader epoch cache failed");
                    }
                });
            }
            if let Some((from, len)) = preallocate {
                let (inner, file) = (inner.clone(), file.clone());
                inner.clone().spawn_background(async move {
                    // Best effort: without it the writes allocate as they go.
                    if let Ok(file) = roll::segment_file(&inner, segment, file).await {
                        let _ = file.fallocate(libc::FALLOC_FL_KEEP_SIZE, from, len).await;
                    }
                });
            }
            let info = AppendInfo {
                base_offset,
                last_offset: offset - 1,
                log_append_time: append_time,
                log_start_offset,
            };
            (file, segment, position, seq, info, layout.finish())
        };
        inner.bump_stats(|s| {
            s.appends += 1;
            s.appended_bytes += records.len() as u64;
        });

        // The write runs in its own task: an appender that stops waiting must not leave a
        // hole that holds the high watermark back forever.
        let writer = inner.clone();
        rt::spawn_local(async move {
            // A failure to create the file already failed the log.
            let Ok(file) = roll::segment_file(&writer, info_segment, file).await else {
                return;
            };
            let started = std::time::Instant::now();
            let (result, _parts) = file.write_all_vectored_at(parts, position).await;
            super::observe::write_took(started.elapsed());
            writer.write_completed(seq, result);
        });
        Ok((info, config.flush))
    }

    /// Syncs everything appended so far, whatever the flush policy.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        flush::sync_to(&self.inner, end).await
    }

    /// Stops appends, waits for writes in flight, syncs data and indexes and records a
    /// checkpoint that lets the next open skip recovery (with the data directory's
    /// clean-shutdown marker, written once every log is closed).
    pub async fn close(&self) -> Result<(), StorageError> {
        self.inner.state.borrow_mut().closed = true;
        self.inner.interval_flush.hurry();
        self.sync().await?;
        self.quiesce().await;
        let snapshots: Vec<_> = {
            let mut st = self.inner.state.borrow_mut();
            st.segments
                .values_mut()
                .filter(|s| s.indexes_dirty)
                .map(|s| {
                    s.indexes_dirty = false;
                    s.index_snapshot()
                })
                .collect()
        };
        for snapshot in snapshots {
            snapshot
                .write(&self.inner.dir)
                .await
                .map_err(|e| StorageError::io("writing indexes", &e))?;
        }
        // Synced above: the next open loads this and replays nothing. A log never written to
        // has no producers and no older snapshot to supersede, so it gets no file (and
        // shutdown no two syncs per untouched partition).
        let snapshot = {
            let st = self.inner.state.borrow();
            (st.next_offset > 0)
                .then(|| (st.next_offset, producers::snapshot::encode(&st.producers)))
        };
        if let Some((end, producers)) = snapshot {
            producers::snapshot::write(&self.inner.dir, end, producers)
                .await
                .map_err(|e| StorageError::io("writing the producer snapshot", &e))?;
        }
        let (file, size, preallocated_to) = {
            let st = self.inner.state.borrow();
            let active = st.active();
            (active.log.clone(), active.size, active.preallocated_to)
        };
        // Synced and quiesced: a rolled segment's file exists by now.
        if let Some(file) = file {
            segment::release_preallocation(&file, size, preallocated_to).await;
        }
        self.inner.state.borrow_mut().all_sealed = true;
        self.inner.write_checkpoint().await
    }
}

impl Inner {
    /// Spawns a task that [`Log::quiesce`] waits for.
    pub(super) fn spawn_background<T: 'static>(
        self: &Rc<Self>,
        task: impl std::future::Future<Output = T> + 'static,
    ) -> rt::JoinHandle<T> {
        self.background.set(self.background.get() + 1);
        let inner = self.clone();
        rt::spawn_local(async move {
            let output = task.await;
            inner.background.set(inner.background.get() - 1);
            inner.background_done.notify_all();
            output
        })
    }

    pub(super) fn bump_stats(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    /// Records a finished write and advances the high watermark over completed writes.
    fn write_completed(&self, seq: u64, result: io::Result<()>) {
        let mut st = self.state.borrow_mut();
        match result {
            Ok(()) => {
                let index = (seq - st.first_pending_seq) as usize;
                st.pending[index].done = true;
                while st.pending.front().is_some_and(|p| p.done) {
                    let write = st.pending.pop_front().expect("checked");
                    st.first_pending_seq += 1;
                    if let Some(segment) = st.segments.get_mut(&write.segment) {
                        segment.written = write.end_position;
                    }
                    st.written_end = write.end_offset;
                    st.written_total += write.len;
                }
                let high_watermark = st.high_watermark();
                st.unreplicated.advance(high_watermark);
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "segment write failed; the log refuses appends until reopened");
                st.failed
                    .get_or_insert(StorageError::io("writing a segment", &e));
            }
        }
        drop(st);
        self.progress.notify_all();
    }

    /// Waits until every offset below `end` is written (readable).
    pub(super) async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        loop {
            {
                let st = self.state.borrow();
                if st.written_end >= end {
                    return Ok(());
                }
                if let Some(e) = &st.failed {
                    return Err(e.clone());
                }
            }
            self.progress.wait().await;
        }
    }

    /// Records the current state in the checkpoint; one writer at a time.
    pub(super) async fn write_checkpoint(&self) -> Result<(), StorageError> {
        self.checkpoint
            .write(&self.dir, || self.state.borrow().checkpoint())
            .await
            .map_err(|e| StorageError::io("writing the checkpoint", &e))
    }

    /// Writes the leader epoch cache file as the cache is when this write's turn comes; one
    /// write at a time, so an older cache never lands after a newer one.
    pub(super) async fn persist_epochs(&self) -> Result<(), StorageError> {
        let _turn = self.epochs_writer.acquire().await;
        let text = self.state.borrow().epochs.encode();
        leader_epochs::write(&self.dir, text)
            .await
            .map_err(|e| StorageError::io("writing the leader epoch cache", &e))
    }

    /// Waits until no sync round is in flight. Surgery that moves the log end back calls it
    /// once appends are refused, so no round ends after it with a stale durable mark.
    pub(super) async fn sync_idle(&self) {
        while self.group_commit.in_flight() {
            self.group_commit.round_done().await;
        }
    }

    /// The log end moved back to `end`: the durable mark follows (see
    /// [`GroupCommit::truncate_to`]). Call synchronously after [`sync_idle`](Self::sync_idle).
    pub(super) fn truncate_synced(&self, end: i64) {
        self.group_commit.truncate_to(end);
    }

    /// Records a failure that leaves the log refusing appends until it is reopened.
    pub(super) fn fail(&self, error: StorageError) {
        self.state.borrow_mut().failed.get_or_insert(error);
        self.progress.notify_all();
    }
}

impl SyncTarget for Inner {
    fn group_commit(&self) -> &GroupCommit {
        &self.group_commit
    }

    fn interval_flush(&self) -> &IntervalFlush {
        &self.interval_flush
    }

    fn failure(&self) -> Option<StorageError> {
        self.state.borrow().failed.clone()
    }

    fn dir_dirty(&self) -> bool {
        self.state.borrow().dir_dirty
    }

    /// What syncs cover: everything written, whatever consumers may read.
    fn high_watermark(&self) -> i64 {
        self.state.borrow().written_end
    }

    fn unsynced_bytes(&self) -> u64 {
        let st = self.state.borrow();
        st.appended_total - st.synced_total
    }

    fn wait_written(&self, end: i64) -> impl Future<Output = Result<(), StorageError>> {
        Inner::wait_written(self, end)
    }

    fn plan_round(&self, synced: i64) -> SyncRound {
        let mut st = self.state.borrow_mut();
        let goal = st.written_end;
        // Segments with offsets below the high watermark have their files: writes wait for
        // them.
        let files = st
            .segments
            .values()
            .filter(|s| s.next_offset > synced && s.base_offset < goal)
            .filter_map(|s| s.log.clone())
            .collect();
        SyncRound {
            goal,
            files,
            sync_dir: std::mem::take(&mut st.dir_dirty),
            written_bytes: st.written_total,
        }
    }

    fn dir(&self) -> &File {
        &self.dir_file
    }

    fn round_finished(&self, round: SyncRound, result: &io::Result<()>, fdatasyncs: u64) {
        self.bump_stats(|s| s.fdatasyncs += fdatasyncs);
        match result {
            Ok(()) => self.state.borrow_mut().synced_total = round.written_bytes,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "fdatasync failed; the log refuses appends until reopened");
                self.state.borrow_mut().dir_dirty |= round.sync_dir;
                self.fail(StorageError::io("fdatasync", e));
            }
        }
    }

    fn spawn_background(self: &Rc<Self>, task: impl Future<Output = ()> + 'static) {
        Inner::spawn_background(self, task);
    }
}
