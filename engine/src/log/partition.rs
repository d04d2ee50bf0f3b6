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

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::batch::{self, TimestampType};
use super::checkpoint::Checkpoint;
use super::config::LogConfig;
use super::error::{AppendError, ReadError, StorageError};
use super::index::TimestampOffset;
use super::read::{self, FileRange, ReadResult};
use super::recovery::{self, RecoveryReport};
use super::retention::{self, RetentionInput, SegmentSummary};
use super::segment::{self, Segment};
use super::write_layout::WriteLayout;
use crate::flush::{FlushPolicy, GroupCommit};
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

/// A partition's log. Cheap to clone; all clones are the same log.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Rc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    dir_file: File,
    config: RefCell<LogConfig>,
    clock: Clock,
    state: RefCell<State>,
    group_commit: GroupCommit,
    /// A write completed (the high watermark may have moved), or the log failed.
    progress: LocalEvent,
    /// Ends an `interval` flush's wait early once `flush.bytes` are unsynced.
    flush_kick: LocalEvent,
    checkpoint_busy: Cell<bool>,
    checkpoint_done: LocalEvent,
    /// Tasks the log spawned (seals, flush timers, preallocation) still running.
    background: Cell<usize>,
    background_done: LocalEvent,
    stats: Cell<LogStats>,
}

#[derive(Debug)]
struct State {
    segments: BTreeMap<i64, Segment>,
    /// Offset the next append gets (the log end offset).
    next_offset: i64,
    /// Offsets below this are written and readable.
    high_watermark: i64,
    log_start_offset: i64,
    /// Writes in assignment order; completed ones leave from the front.
    pending: VecDeque<PendingWrite>,
    /// Sequence number of `pending[0]`.
    first_pending_seq: u64,
    failed: Option<StorageError>,
    closed: bool,
    /// Every segment's data and indexes are durable (set by `close`).
    all_sealed: bool,
    /// A segment file was created since the directory was last synced.
    dir_dirty: bool,
    /// Bytes appended; bytes written (in order, as the high watermark moves); bytes written
    /// as of the start of the last successful sync round.
    appended_total: u64,
    written_total: u64,
    synced_total: u64,
    /// An `interval` flush task is waiting to run.
    flush_pending: bool,
    /// `flush.bytes` was reached while it waited: it should not wait any longer.
    flush_kicked: bool,
}

#[derive(Debug)]
struct PendingWrite {
    segment: i64,
    len: u64,
    end_position: u64,
    end_offset: i64,
    done: bool,
}

impl State {
    fn active(&self) -> &Segment {
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
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            // The partition directory's own entry must be durable before anything in it is.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open_dir(parent)?.fsync().await?;
            }
        }
        let checkpoint = Checkpoint::read(&dir)?;
        let mut loaded = recovery::load(&dir, &config, options.clean_shutdown, checkpoint).await?;
        // Sealed segments whose indexes were rebuilt get them written now, so the checkpoint
        // can move past them.
        let active_base = *loaded.segments.keys().next_back().expect("a segment");
        for segment in loaded.segments.values_mut() {
            if segment.indexes_dirty && segment.base_offset != active_base {
                segment.index_snapshot().write(&dir).await?;
                segment.indexes_dirty = false;
            }
        }
        let next_offset = loaded.segments[&active_base].next_offset;
        let state = State {
            segments: loaded.segments,
            next_offset,
            high_watermark: next_offset,
            log_start_offset: loaded.log_start_offset,
            pending: VecDeque::new(),
            first_pending_seq: 0,
            failed: None,
            closed: false,
            all_sealed: false,
            dir_dirty: false,
            appended_total: 0,
            written_total: 0,
            synced_total: 0,
            flush_pending: false,
            flush_kicked: false,
        };
        let log = Log {
            inner: Rc::new(Inner {
                dir_file: File::open_dir(&dir)?,
                dir,
                config: RefCell::new(config),
                clock: options.clock,
                group_commit: GroupCommit::new(loaded.durable_offset),
                state: RefCell::new(state),
                progress: LocalEvent::new(),
                flush_kick: LocalEvent::new(),
                checkpoint_busy: Cell::new(false),
                checkpoint_done: LocalEvent::new(),
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

    /// Offsets below this are written and readable.
    pub fn high_watermark(&self) -> i64 {
        self.inner.state.borrow().high_watermark
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
            self.inner.flush_kick.notify_all();
            self.inner.background_done.wait().await;
        }
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
        let placed = self.place(records.into());
        let inner = self.inner.clone();
        async move {
            let (info, flush) = placed?;
            let end = info.last_offset + 1;
            inner.wait_written(end).await?;
            match flush {
                FlushPolicy::Always => inner.sync_to(end).await?,
                FlushPolicy::Interval { ms, bytes } => inner.schedule_flush(ms, bytes),
                FlushPolicy::Never => {}
            }
            Ok(info)
        }
    }

    /// The synchronous part of [`append`](Self::append): validates, rolls if need be, assigns
    /// offsets and a file position, and starts the write. Returns what was assigned and the
    /// flush policy the append is under.
    fn place(&self, records: Bytes) -> Result<(AppendInfo, FlushPolicy), AppendError> {
        let inner = &self.inner;
        let config = inner.config.borrow().clone();
        let batches = batch::split_and_validate(&records, config.max_message_bytes)?;
        let segment_bytes = config.effective_segment_bytes();
        if records.len() as u64 > segment_bytes {
            return Err(AppendError::RecordListTooLarge {
                size: records.len(),
                max: segment_bytes,
            });
        }
        let now = inner.clock.now_ms();
        let append_time = (config.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let record_count: i64 = batches
            .iter()
            .map(|(_, h)| i64::from(h.last_offset_delta) + 1)
            .sum();
        // A segment spans at most i32::MAX offsets (relative offsets in the index). Counts of
        // compressed batches can't be checked without decompressing, so bound them here.
        if record_count > i64::from(i32::MAX) {
            return Err(batch::BatchError::Invalid("record set claims too many records").into());
        }

        // Synchronous part: roll if need be, assign offsets and a file position.
        let (file, position, seq, info, parts) = {
            let mut st = inner.state.borrow_mut();
            if let Some(e) = &st.failed {
                return Err(e.clone().into());
            }
            if st.closed {
                return Err(AppendError::Closed);
            }
            let rolled =
                self.roll_if_needed(&mut st, &config, records.len() as u64, record_count, now)?;
            let base_offset = st.next_offset;
            let mut offset = base_offset;
            let active = st.active_mut();
            let position = active.size;
            let mut layout = WriteLayout::new(&records, append_time.is_some(), batches.len());
            for (at, header) in &batches {
                let len = header.total_len().expect("validated");
                let mut max_timestamp = header.max_timestamp;
                layout.add_batch(*at, len, offset, append_time);
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
            let preallocate = Self::preallocation(active, &config);
            st.next_offset = offset;
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
            if let Some(old) = rolled {
                inner.spawn_background(Inner::seal(inner.clone(), old));
            }
            if let Some((from, len)) = preallocate {
                let file = file.clone();
                inner.spawn_background(async move {
                    // Best effort: without it the writes allocate as they go.
                    let _ = file.fallocate(libc::FALLOC_FL_KEEP_SIZE, from, len).await;
                });
            }
            let info = AppendInfo {
                base_offset,
                last_offset: offset - 1,
                log_append_time: append_time,
                log_start_offset,
            };
            (file, position, seq, info, layout.finish())
        };
        inner.bump_stats(|s| {
            s.appends += 1;
            s.appended_bytes += records.len() as u64;
        });

        // The write runs in its own task: an appender that stops waiting must not leave a
        // hole that holds the high watermark back forever.
        let writer = inner.clone();
        rt::spawn_local(async move {
            let started = std::time::Instant::now();
            let (result, _parts) = file.write_all_vectored_at(parts, position).await;
            super::observe::write_took(started.elapsed());
            writer.write_completed(seq, result);
        });
        Ok((info, config.flush))
    }

    /// Rolls to a new segment when the incoming `len` bytes / `records` wouldn't fit the
    /// active one, or it is older than `segment.ms`. Returns the sealed segment's base.
    fn roll_if_needed(
        &self,
        st: &mut State,
        config: &LogConfig,
        len: u64,
        records: i64,
        now: i64,
    ) -> Result<Option<i64>, StorageError> {
        let next_offset = st.next_offset;
        let active = st.active();
        if active.size == 0 {
            return Ok(None);
        }
        let too_big = active.size + len > config.effective_segment_bytes();
        let too_old = active.first_append_ms.is_some_and(|first| {
            now.saturating_sub(first) >= config.segment_ms.as_millis().min(i64::MAX as u128) as i64
        });
        let offsets_overflow = next_offset + records - active.base_offset > i64::from(i32::MAX);
        let index_full = active.indexes.offsets.len() >= config.max_index_entries();
        if !(too_big || too_old || offsets_overflow || index_full) {
            return Ok(None);
        }
        let old = active.base_offset;
        let segment = Segment::create(&self.inner.dir, next_offset, config.index_interval_bytes)
            .map_err(|e| StorageError::io("creating a segment", &e))?;
        st.segments.insert(next_offset, segment);
        st.dir_dirty = true;
        self.inner.bump_stats(|s| s.segments_rolled += 1);
        Ok(Some(old))
    }

    /// The next range to fallocate when an append passes the reserved space.
    fn preallocation(active: &mut Segment, config: &LogConfig) -> Option<(u64, u64)> {
        let step = config.preallocate_bytes;
        if step == 0 || active.size <= active.preallocated_to {
            return None;
        }
        let from = active.preallocated_to;
        let until = (from + step)
            .min(config.effective_segment_bytes())
            .max(active.size);
        active.preallocated_to = until;
        Some((from, until - from))
    }

    /// Plans a read from `offset`: byte ranges of segment files holding whole batches, the
    /// first being the batch that contains `offset`, up to `max_bytes` (the last range may end
    /// inside a batch) and never past the high watermark. With `min_one_batch` the first
    /// batch is returned whole even when it is larger than `max_bytes` (KIP-74).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadResult, ReadError> {
        struct View {
            file: Rc<File>,
            start: u64,
            readable: u64,
            /// The segment's offsets end here.
            next_offset: i64,
        }
        let (views, mut result) = {
            let st = self.inner.state.borrow();
            let result = ReadResult {
                high_watermark: st.high_watermark,
                log_start_offset: st.log_start_offset,
                ..ReadResult::default()
            };
            if offset < st.log_start_offset || offset > st.high_watermark {
                return Err(out_of_range(offset, &st));
            }
            if offset == st.high_watermark {
                return Ok(result);
            }
            let views: Vec<View> = st
                .segments
                .range(..=offset)
                .next_back()
                .into_iter()
                .map(|(_, s)| (s, s.indexes.offsets.lookup(offset).position.into()))
                .chain(st.segments.range(offset + 1..).map(|(_, s)| (s, 0)))
                .map(|(s, start)| View {
                    file: s.log.clone(),
                    start,
                    readable: s.written,
                    next_offset: s.next_offset,
                })
                .collect();
            (views, result)
        };
        let mut remaining = max_bytes;
        let mut first_batch_len = None;
        for view in views {
            let mut from = view.start;
            if first_batch_len.is_none() {
                let found = read::find_batch(&view.file, from, view.readable, |h| {
                    h.last_offset() >= offset
                })
                .await
                .map_err(|e| StorageError::io("reading a segment", &e))?;
                let Some((position, header)) = found else {
                    if offset < view.next_offset {
                        // Below the high watermark and inside this segment: the data must be
                        // there. Skipping to the next segment would hide records.
                        let what = format!("offset {offset} missing from its segment");
                        return Err(StorageError(what).into());
                    }
                    continue;
                };
                from = position;
                first_batch_len = header.total_len().map(|l| l as u64);
            }
            let available = view.readable.saturating_sub(from);
            let mut take = available.min(remaining);
            if result.ranges.is_empty() && min_one_batch {
                take = take.max(first_batch_len.unwrap_or(0).min(available));
            }
            if take == 0 {
                break;
            }
            result.ranges.push(FileRange {
                file: view.file,
                position: from,
                len: take,
            });
            result.bytes += take;
            remaining = remaining.saturating_sub(take);
            if remaining == 0 || take < available {
                break;
            }
        }
        Ok(result)
    }

    /// The first record at or after `timestamp` (ListOffsets by time): its offset and
    /// timestamp, or `None` when every record is older. Exact for uncompressed batches;
    /// within compressed ones, the batch's base offset.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, ReadError> {
        let (candidates, log_start) = {
            let st = self.inner.state.borrow();
            let candidates: Vec<(Rc<File>, u64, u64)> = st
                .segments
                .values()
                .filter(|s| s.next_offset > st.log_start_offset)
                .filter(|s| s.max_timestamp().is_some_and(|m| m.timestamp >= timestamp))
                .map(|s| {
                    let from = s.indexes.times.lookup(timestamp).offset;
                    let position = s.indexes.offsets.lookup(from).position;
                    (s.log.clone(), u64::from(position), s.written)
                })
                .collect();
            (candidates, st.log_start_offset)
        };
        for (file, position, readable) in candidates {
            let found = read::find_batch(&file, position, readable, |h| {
                h.max_timestamp >= timestamp && h.last_offset() >= log_start
            })
            .await
            .map_err(|e| StorageError::io("reading a segment", &e))?;
            let Some((position, header)) = found else {
                continue;
            };
            let len = header.total_len().expect("a length find_batch accepted");
            if position + len as u64 > readable {
                return Err(StorageError("a batch runs past its segment's data".into()).into());
            }
            let (result, bytes) = file.read_exact_at(Vec::with_capacity(len), position).await;
            result.map_err(|e| StorageError::io("reading a segment", &e))?;
            let (offset, ts) = read::first_record_at_or_after(&bytes, &header, timestamp);
            return Ok(Some(TimestampOffset {
                timestamp: ts,
                offset: offset.max(log_start),
            }));
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the last offset of the batch holding it
    /// (ListOffsets MAX_TIMESTAMP); `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        let st = self.inner.state.borrow();
        st.segments
            .values()
            .filter(|s| s.next_offset > st.log_start_offset)
            .filter_map(|s| s.max_timestamp())
            .filter(|m| m.offset < st.high_watermark)
            .fold(None, |best: Option<TimestampOffset>, m| match best {
                Some(b) if b.timestamp >= m.timestamp => Some(b),
                _ => Some(m),
            })
    }

    /// DeleteRecords: moves the log start offset to `before` (`-1`: the high watermark) and
    /// removes the segments wholly below it. Returns the new log start offset.
    pub async fn delete_records(&self, before: i64) -> Result<i64, ReadError> {
        let start = {
            let st = self.inner.state.borrow_mut();
            let before = if before == -1 {
                st.high_watermark
            } else {
                before
            };
            if before < 0 || before > st.high_watermark {
                return Err(out_of_range(before, &st));
            }
            before
        };
        // The new start must never outrun durable data: after a crash, recovery could
        // otherwise find the start past the end.
        self.inner.sync_to(start).await?;
        let start = {
            let mut st = self.inner.state.borrow_mut();
            st.log_start_offset = st.log_start_offset.max(start);
            st.log_start_offset
        };
        // Retention removes the segments now below the start, and records the new start in
        // the checkpoint when it deleted any; otherwise record it here.
        if self.enforce_retention().await? == 0 {
            self.inner.write_checkpoint().await?;
        }
        Ok(start.max(self.log_start_offset()))
    }

    /// Deletes the segments retention (`retention.ms`, `retention.bytes`, the log start
    /// offset) no longer keeps. Returns how many went.
    pub async fn enforce_retention(&self) -> Result<usize, StorageError> {
        let now = self.inner.clock.now_ms();
        let config = self.config();
        let removed: Vec<i64> = {
            let mut st = self.inner.state.borrow_mut();
            let summaries: Vec<SegmentSummary> = st
                .segments
                .values()
                .map(|s| SegmentSummary {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    size: s.size,
                    max_timestamp: s.max_timestamp().map(|m| m.timestamp),
                })
                .collect();
            let input = RetentionInput {
                now_ms: now,
                retention_ms: config.retention_ms,
                retention_bytes: config.retention_bytes,
                log_start_offset: st.log_start_offset,
                high_watermark: st.high_watermark,
            };
            let count = retention::segments_to_delete(&summaries, &input);
            let removed: Vec<i64> = summaries[..count].iter().map(|s| s.base_offset).collect();
            for base in &removed {
                st.segments.remove(base);
            }
            let first = *st.segments.keys().next().expect("the active segment stays");
            st.log_start_offset = st.log_start_offset.max(first);
            removed
        };
        if removed.is_empty() {
            return Ok(0);
        }
        // The segments left the map above; their files and the new start must follow even if
        // the caller stops waiting, so that part runs in its own task.
        let inner = self.inner.clone();
        let count = removed.len();
        let deletion = self.inner.spawn_background(async move {
            for &base in &removed {
                segment::remove_segment_files(&inner.dir, base)
                    .map_err(|e| StorageError::io("deleting a segment", &e))?;
            }
            inner
                .dir_file
                .fsync()
                .await
                .map_err(|e| StorageError::io("syncing the partition directory", &e))?;
            inner.bump_stats(|s| s.segments_deleted += removed.len() as u64);
            inner.write_checkpoint().await
        });
        deletion.await?;
        tracing::debug!(dir = %self.inner.dir.display(), segments = count, "retention deleted segments");
        Ok(count)
    }

    /// Syncs everything appended so far, whatever the flush policy.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        self.inner.sync_to(end).await
    }

    /// Stops appends, waits for writes in flight, syncs data and indexes and records a
    /// checkpoint that lets the next open skip recovery (with the data directory's
    /// clean-shutdown marker, written once every log is closed).
    pub async fn close(&self) -> Result<(), StorageError> {
        self.inner.state.borrow_mut().closed = true;
        self.inner.flush_kick.notify_all();
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
        let (file, size, preallocated_to) = {
            let st = self.inner.state.borrow();
            let active = st.active();
            (active.log.clone(), active.size, active.preallocated_to)
        };
        release_preallocation(&file, size, preallocated_to).await;
        self.inner.state.borrow_mut().all_sealed = true;
        self.inner.write_checkpoint().await
    }
}

impl Inner {
    /// Spawns a task that [`Log::quiesce`] waits for.
    fn spawn_background<T: 'static>(
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

    fn bump_stats(&self, update: impl FnOnce(&mut LogStats)) {
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
                    st.high_watermark = write.end_offset;
                    st.written_total += write.len;
                }
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
    async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        loop {
            {
                let st = self.state.borrow();
                if st.high_watermark >= end {
                    return Ok(());
                }
                if let Some(e) = &st.failed {
                    return Err(e.clone());
                }
            }
            self.progress.wait().await;
        }
    }

    /// Waits until every offset below `target` is durable, joining the group commit.
    async fn sync_to(self: &Rc<Self>, target: i64) -> Result<(), StorageError> {
        loop {
            if let Some(e) = &self.state.borrow().failed {
                return Err(e.clone());
            }
            if self.group_commit.synced() >= target && !self.state.borrow().dir_dirty {
                return Ok(());
            }
            self.wait_written(target).await?;
            if self.group_commit.try_begin() {
                rt::spawn_local(Inner::sync_round(self.clone()));
            }
            self.group_commit.round_done().await;
        }
    }

    /// One group-commit round: syncs every segment holding written but unsynced data (and
    /// the directory after a segment was created), then declares it durable.
    async fn sync_round(self: Rc<Self>) {
        let synced = self.group_commit.synced();
        let (goal, files, sync_dir, written) = {
            let mut st = self.state.borrow_mut();
            let goal = st.high_watermark;
            let files: Vec<Rc<File>> = st
                .segments
                .values()
                .filter(|s| s.next_offset > synced && s.base_offset < goal)
                .map(|s| s.log.clone())
                .collect();
            let sync_dir = std::mem::take(&mut st.dir_dirty);
            (goal, files, sync_dir, st.written_total)
        };
        let mut result = Ok(());
        let started = std::time::Instant::now();
        for file in &files {
            result = file.fdatasync().await;
            self.bump_stats(|s| s.fdatasyncs += 1);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && sync_dir {
            result = self.dir_file.fsync().await;
        }
        super::observe::sync_took(started.elapsed());
        match result {
            Ok(()) => {
                self.state.borrow_mut().synced_total = written;
                self.group_commit.end_round(Some(goal));
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "fdatasync failed; the log refuses appends until reopened");
                let mut st = self.state.borrow_mut();
                st.failed.get_or_insert(StorageError::io("fdatasync", &e));
                st.dir_dirty |= sync_dir;
                drop(st);
                self.progress.notify_all();
                self.group_commit.end_round(None);
            }
        }
    }

    /// `interval` policy: makes sure a sync runs within `ms`, or now once `bytes` are
    /// unsynced.
    fn schedule_flush(self: &Rc<Self>, ms: Duration, bytes: Option<u64>) {
        let mut st = self.state.borrow_mut();
        let unsynced = st.appended_total - st.synced_total;
        let over = bytes.is_some_and(|limit| unsynced >= limit);
        if st.flush_pending {
            if over {
                // The flag covers a task not yet polled (not yet waiting for the kick).
                st.flush_kicked = true;
                drop(st);
                self.flush_kick.notify_all();
            }
            return;
        }
        st.flush_pending = true;
        drop(st);
        let delay = if over { Duration::ZERO } else { ms };
        let inner = self.clone();
        self.spawn_background(async move {
            if !inner.state.borrow().flush_kicked {
                let _ = rt::select(rt::sleep(delay), inner.flush_kick.wait()).await;
            }
            let target = {
                let mut st = inner.state.borrow_mut();
                st.flush_pending = false;
                st.flush_kicked = false;
                st.high_watermark
            };
            // A failure is recorded in the log's state; appenders see it.
            let _ = inner.sync_to(target).await;
        });
    }

    /// After a roll: syncs the old segment, writes its indexes, releases its unused
    /// preallocated space and moves the checkpoint past it.
    async fn seal(self: Rc<Self>, base: i64) {
        let end = match self.state.borrow().segments.get(&base) {
            Some(segment) => segment.next_offset,
            None => return,
        };
        if self.sync_to(end).await.is_err() {
            return;
        }
        let Some((snapshot, file, size, preallocated_to)) = ({
            let mut st = self.state.borrow_mut();
            st.segments
                .get_mut(&base)
                .map(|s| (s.index_snapshot(), s.log.clone(), s.size, s.preallocated_to))
        }) else {
            return;
        };
        release_preallocation(&file, size, preallocated_to).await;
        if let Err(e) = snapshot.write(&self.dir).await {
            tracing::warn!(dir = %self.dir.display(), base, error = %e, "writing a sealed segment's indexes failed; recovery will rebuild them");
            return;
        }
        if let Some(segment) = self.state.borrow_mut().segments.get_mut(&base) {
            segment.indexes_dirty = false;
        }
        if let Err(e) = self.write_checkpoint().await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing the checkpoint failed");
        }
    }

    /// Writes the checkpoint from the current state; one writer at a time.
    async fn write_checkpoint(&self) -> Result<(), StorageError> {
        while self.checkpoint_busy.replace(true) {
            self.checkpoint_done.wait().await;
        }
        // Released even if this future is dropped mid-write.
        let _turn = CheckpointTurn(self);
        let checkpoint = self.state.borrow().checkpoint();
        let result = checkpoint.write(&self.dir, &self.dir_file).await;
        result.map_err(|e| StorageError::io("writing the checkpoint", &e))
    }
}

/// Holds the log's turn to write its checkpoint; passes it on when dropped.
struct CheckpointTurn<'a>(&'a Inner);

impl Drop for CheckpointTurn<'_> {
    fn drop(&mut self) {
        self.0.checkpoint_busy.set(false);
        self.0.checkpoint_done.notify_all();
    }
}

/// Gives back the blocks fallocate reserved past a segment's data.
async fn release_preallocation(file: &File, size: u64, preallocated_to: u64) {
    if preallocated_to > size {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // Best effort: the space is only wasted, never wrong.
        let _ = file.fallocate(mode, size, preallocated_to - size).await;
    }
}

fn out_of_range(offset: i64, st: &State) -> ReadError {
    ReadError::OffsetOutOfRange {
        offset,
        log_start_offset: st.log_start_offset,
        high_watermark: st.high_watermark,
    }
}
