//! Driving group commit: waiting for durability, and the sync rounds that provide it.
//!
//! A round runs in its own task, so an appender that gives up waiting never cancels a sync
//! that others depend on. The log keeps its own state and says, through [`SyncTarget`], what a
//! round must cover; this module keeps the order of things: a round starts only once the data
//! it covers is written, one round at a time, and a failed sync is never retried (the kernel
//! may have dropped the dirty pages, "fsyncgate"), so the log fails instead.

use std::future::Future;
use std::io;
use std::rc::Rc;

use super::{GroupCommit, IntervalFlush};
use crate::log::StorageError;
use crate::rt::{self, File};

/// What one sync round covers.
#[derive(Debug)]
pub(crate) struct SyncRound {
    /// Every offset below this is written and lives in `files`: durable once they are synced.
    pub goal: i64,
    /// Segment files holding written data not yet synced.
    pub files: Vec<Rc<File>>,
    /// Sync the directory too: an entry was created since its last sync.
    pub sync_dir: bool,
    /// The log's count of bytes written when the round started, handed back with its outcome.
    pub written_bytes: u64,
}

/// A log as the flush code sees it.
pub(crate) trait SyncTarget: 'static {
    fn group_commit(&self) -> &GroupCommit;

    fn interval_flush(&self) -> &IntervalFlush;

    /// Why the log refuses writes, if it does.
    fn failure(&self) -> Option<StorageError>;

    /// A directory entry (a new segment) is not yet durable.
    fn dir_dirty(&self) -> bool;

    /// Offsets below this are written.
    fn high_watermark(&self) -> i64;

    /// Bytes appended and not yet covered by a successful round.
    fn unsynced_bytes(&self) -> u64;

    /// Waits until every offset below `end` is written, or the log fails.
    fn wait_written(&self, end: i64) -> impl Future<Output = Result<(), StorageError>>;

    /// What a round starting now covers, given that offsets below `synced` are durable. Takes
    /// the directory's dirty flag: the round now owns that sync.
    fn plan_round(&self, synced: i64) -> SyncRound;

    /// The partition directory, for its fsync.
    fn dir(&self) -> &File;

    /// Records a finished round in the log: its outcome and how many fdatasyncs it made. On
    /// failure the log must refuse further appends and take back the directory's dirty flag.
    fn round_finished(&self, round: SyncRound, result: &io::Result<()>, fdatasyncs: u64);

    /// Runs `task` as one of the log's background tasks (those it waits for when quiescing).
    fn spawn_background(self: &Rc<Self>, task: impl Future<Output = ()> + 'static);
}

/// Waits until every offset below `target` is durable, joining the group commit.
pub(crate) async fn sync_to<T: SyncTarget>(log: &Rc<T>, target: i64) -> Result<(), StorageError> {
    loop {
        if let Some(e) = log.failure() {
            return Err(e);
        }
        if log.group_commit().synced() >= target && !log.dir_dirty() {
            return Ok(());
        }
        log.wait_written(target).await?;
        if log.group_commit().try_begin() {
            rt::spawn_local(sync_round(log.clone()));
        }
        log.group_commit().round_done().await;
    }
}

/// One group-commit round: syncs every segment holding written but unsynced data (and the
/// directory after a segment was created), then declares it durable.
async fn sync_round<T: SyncTarget>(log: Rc<T>) {
    let round = log.plan_round(log.group_commit().synced());
    let mut result = Ok(());
    let mut fdatasyncs = 0;
    let started = std::time::Instant::now();
    for file in &round.files {
        result = file.fdatasync().await;
        fdatasyncs += 1;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() && round.sync_dir {
        result = log.dir().fsync().await;
    }
    crate::log::observe::sync_took(started.elapsed());
    let durable_to = result.is_ok().then_some(round.goal);
    log.round_finished(round, &result, fdatasyncs);
    log.group_commit().end_round(durable_to);
}
