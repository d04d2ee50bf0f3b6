//! Idempotent producers on a real log: retries answered with their first offsets and not
//! written again, refusals that leave the log untouched, and producer state that survives a
//! clean restart, a crash and segment rolls. Every test runs on both backends.

mod common;

use common::{crash_log as crash, open_log as open, quiet_log_config as config};

use std::cell::Cell;
use std::rc::Rc;

use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::producers::ProducerError;
use runnel_engine::log::{AppendError, Clock, Log, LogConfig, OpenOptions};

const PID: i64 = 4242;

/// `count` records from producer `pid`, epoch `epoch`, starting at sequence `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..count {
        builder.push(&Record {
            key: None,
            value: Some(vec![i as u8; 200]),
            headers: vec![],
            timestamp: 1_000 + i as i64,
        });
    }
    builder.build()
}

/// Appends `batches` batches of 2 records from `PID` epoch 0 starting at sequence `from_seq`;
/// returns their base offsets.
async fn append_run(log: &Log, from_seq: i32, batches: i32) -> Vec<i64> {
    let mut offsets = Vec::new();
    for i in 0..batches {
        let info = log
            .append(idempotent_batch(PID, 0, from_seq + i * 2, 2))
            .await
            .expect("in-sequence append");
        offsets.push(info.base_offset);
    }
    offsets
}

/// Retries the last five batches of a run that ended before `next_seq`, checking each gets
/// its original offsets and the log doesn't grow.
async fn retries_are_recognised(log: &Log, next_seq: i32, offsets: &[i64]) {
    let end = log.log_end_offset();
    for back in 1..=5 {
        let seq = next_seq - back * 2;
        let info = log
            .append(idempotent_batch(PID, 0, seq, 2))
            .await
            .expect("a retry is answered");
        assert_eq!(
            info.base_offset,
            offsets[offsets.len() - back as usize],
            "retry of sequence {seq}"
        );
        assert_eq!(info.last_offset, info.base_offset + 1);
    }
    assert_eq!(log.log_end_offset(), end, "retries wrote nothing");
}

on_both_backends! {
    fn retries_get_their_original_offsets_and_refusals_change_nothing(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            let offsets = append_run(&log, 0, 8).await;
            retries_are_recognised(&log, 16, &offsets).await;
            let end = log.log_end_offset();
            let gap = log.append(idempotent_batch(PID, 0, 18, 1)).await.unwrap_err();
            assert!(matches!(gap, AppendError::Producer(ProducerError::OutOfOrderSequence { expected: 16, got: 18, .. })), "{gap:?}");
            let unknown = log.append(idempotent_batch(PID + 1, 0, 5, 1)).await.unwrap_err();
            assert!(matches!(unknown, AppendError::Producer(ProducerError::UnknownProducerId { .. })), "{unknown:?}");
            // A new epoch from 0 is accepted, and fences the old one.
            log.append(idempotent_batch(PID, 1, 0, 1)).await.unwrap();
            let fenced = log.append(idempotent_batch(PID, 0, 16, 1)).await.unwrap_err();
            assert!(matches!(fenced, AppendError::Producer(ProducerError::InvalidProducerEpoch { current: 1, got: 0, .. })), "{fenced:?}");
            assert_eq!(log.log_end_offset(), end + 1, "only the new epoch's batch was written");
        });
    }

    fn producer_state_survives_a_clean_restart_without_replaying(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            let offsets = append_run(&log, 0, 6).await;
            log.close().await.unwrap();
            drop(log);
            let (log, report) = open(dir.path(), config()).await;
            assert_eq!(report.producers.snapshot_offset, Some(12));
            assert_eq!(report.producers.batches_replayed, 0);
            retries_are_recognised(&log, 12, &offsets).await;
            log.append(idempotent_batch(PID, 0, 12, 2)).await.expect("the sequence goes on");
        });
    }

    fn producer_state_is_rebuilt_from_the_log_after_a_crash(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            let offsets = append_run(&log, 0, 6).await;
            crash(log).await;
            let (log, report) = open(dir.path(), config()).await;
            assert_eq!(report.producers.snapshot_offset, None);
            assert_eq!(report.producers.batches_replayed, 6);
            retries_are_recognised(&log, 12, &offsets).await;
            let gap = log.append(idempotent_batch(PID, 0, 13, 1)).await.unwrap_err();
            assert!(matches!(gap, AppendError::Producer(ProducerError::OutOfOrderSequence { .. })));
        });
    }

    fn rolls_snapshot_the_state_so_a_crash_replays_only_the_tail(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            let offsets = append_run(&log, 0, 60).await;
            let bases = log.segment_bases();
            assert!(bases.len() > 5, "segments rolled: {bases:?}");
            log.quiesce().await;
            let snapshots: Vec<_> = std::fs::read_dir(dir.path()).unwrap()
                .filter_map(|e| e.unwrap().file_name().into_string().ok())
                .filter(|n| n.ends_with(".snapshot"))
                .collect();
            assert_eq!(snapshots.len(), 2, "the newest two are kept: {snapshots:?}");
            let active = *bases.last().unwrap();
            assert!(dir.path().join(format!("{active:020}.snapshot")).exists());
            crash(log).await;
            let (log, report) = open(dir.path(), config).await;
            assert_eq!(report.producers.snapshot_offset, Some(active));
            let tail_batches = (120 - active) / 2;
            assert_eq!(report.producers.batches_replayed, tail_batches as u64);
            retries_are_recognised(&log, 120, &offsets).await;
        });
    }

    fn a_snapshot_past_the_recovered_end_is_discarded(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            append_run(&log, 0, 3).await;
            log.close().await.unwrap();
            drop(log);
            // A snapshot describing offsets the log doesn't have (as if synced data were lost)
            // must not be trusted: its producer would look further along than the log is.
            let stale = dir.path().join(format!("{:020}.snapshot", 6));
            let future = dir.path().join(format!("{:020}.snapshot", 1_000));
            std::fs::copy(&stale, &future).unwrap();
            let (log, report) = open(dir.path(), config()).await;
            assert_eq!(report.producers.snapshot_offset, Some(6));
            assert!(!future.exists());
            log.append(idempotent_batch(PID, 0, 6, 2)).await.unwrap();
        });
    }

    fn idle_producers_expire(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(1_000_000));
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let config = LogConfig { producer_id_expiration_ms: 60_000, ..config() };
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            append_run(&log, 0, 2).await;
            clock.set(1_000_000 + 59_999);
            assert_eq!(log.expire_producers(), 0);
            clock.set(1_000_000 + 60_000);
            assert_eq!(log.expire_producers(), 1);
            assert!(log.producers().is_empty());
            let unknown = log.append(idempotent_batch(PID, 0, 4, 2)).await.unwrap_err();
            assert!(matches!(unknown, AppendError::Producer(ProducerError::UnknownProducerId { .. })));
        });
    }
}
