//! Replication's storage side on a real runtime and real files, on both backends: stamping,
//! the replicated high watermark, follower appends and reads, the leader epoch cache on a
//! log, truncation and what survives reopening after it.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::flush::FlushPolicy;
use crate::log::batch::{self, BatchHeader};
use crate::log::builder::{sample_batch, BatchBuilder, Record};
use crate::log::leader_epochs::LEADER_EPOCH_FILE;
use crate::log::{
    AppendError, EndTxnMarker, Isolation, Log, LogConfig, MarkerKind, OpenOptions, ReadError,
    ReplicaAppendError,
};
use crate::rt::{self, BackendChoice, Runtime, RuntimeConfig};

/// Runs `work` on a one-shard runtime of each backend under test (`RUNNEL_TEST_BACKENDS`,
/// as the integration tests).
fn on_both_backends<F, Fut>(work: F)
where
    F: Fn() -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let enabled = |name: &str| match std::env::var("RUNNEL_TEST_BACKENDS") {
        Ok(list) => list.split(',').any(|b| b.trim() == name),
        Err(_) => true,
    };
    for (name, backend) in [
        ("uring", BackendChoice::Uring),
        ("epoll", BackendChoice::Epoll),
    ] {
        if !enabled(name) {
            continue;
        }
        let config = RuntimeConfig {
            cores: 1,
            backend,
            pin_threads: false,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(config, |_| async {}).expect("runtime starts");
        runtime
            .handle()
            .run_on(0, work.clone())
            .expect("shard runs the work");
        runtime.join().expect("runtime stops");
    }
}

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, OpenOptions::default())
        .await
        .expect("log opens")
        .0
}

/// Everything from `from` to the written end, as a follower fetches it.
async fn fetch_all(log: &Log, from: i64) -> Vec<u8> {
    let result = log
        .read_replica(from, u64::MAX)
        .await
        .expect("replica read");
    result.copy_out().await.expect("readable")
}

/// The batches in `bytes`, with their headers.
fn batches(bytes: &[u8]) -> Vec<BatchHeader> {
    batch::split_and_validate_stored(bytes, usize::MAX)
        .expect("whole valid batches")
        .into_iter()
        .map(|(_, h)| h)
        .collect()
}

fn idempotent(pid: i64, seq: i32, count: usize, transactional: bool) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(pid, 0, seq);
    if transactional {
        builder = builder.transactional();
    }
    for i in 0..count {
        builder.push(&Record {
            key: None,
            value: Some(vec![i as u8; 50]),
            headers: vec![],
            timestamp: 1_000,
        });
    }
    builder.build()
}

/// A stored batch of `count` records at `base` stamped with `epoch`, as a leader holds it.
fn leader_batch(base: i64, count: usize, epoch: i32) -> Vec<u8> {
    let mut bytes = sample_batch(count, 100, 1_000);
    batch::set_base_offset(&mut bytes, base);
    batch::set_partition_leader_epoch(&mut bytes, epoch);
    bytes
}

async fn expect_wakes(wait: impl Future<Output = ()>) {
    rt::timeout(Duration::from_secs(5), wait)
        .await
        .expect("changed() fired");
}

#[test]
fn a_set_leader_epoch_is_stamped_into_every_batch_and_the_crc_holds() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        let unstamped = sample_batch(2, 10, 1_000);
        let original = BatchHeader::parse(&unstamped)
            .unwrap()
            .partition_leader_epoch;
        log.append(unstamped).await.unwrap();
        log.set_leader_epoch(7);
        log.append(sample_batch(3, 10, 1_000)).await.unwrap();
        log.append_marker(
            5,
            0,
            EndTxnMarker {
                kind: MarkerKind::Commit,
                coordinator_epoch: 0,
            },
        )
        .await
        .unwrap();
        let bytes = fetch_all(&log, 0).await;
        let epochs: Vec<i32> = batches(&bytes)
            .iter()
            .map(|h| h.partition_leader_epoch)
            .collect();
        assert_eq!(epochs, [original, 7, 7], "unset: as it came; set: stamped");
        for (at, header) in batch::split_and_validate_stored(&bytes, usize::MAX).unwrap() {
            let len = header.total_len().unwrap();
            batch::validate(&bytes[at..at + len], usize::MAX).expect("CRC still valid");
        }
        assert_eq!(
            log.leader_epochs(),
            [(7, 2)],
            "the leader's own epoch is cached"
        );
    });
}

#[test]
fn the_replicated_cap_bounds_consumers_but_not_followers() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        for _ in 0..5 {
            log.append(sample_batch(2, 10, 1_000)).await.unwrap();
        }
        assert_eq!((log.high_watermark(), log.written_end()), (10, 10));
        let wait = log.changed();
        log.set_replicated_high_watermark(Some(4));
        expect_wakes(wait).await;
        assert_eq!((log.high_watermark(), log.written_end()), (4, 10));
        assert_eq!(log.last_stable_offset(), 4, "the LSO respects the cap");
        let read = log.read(0, u64::MAX, true).await.unwrap();
        assert_eq!(read.high_watermark, 4);
        let bytes = read.copy_out().await.unwrap();
        assert_eq!(
            batches(&bytes).last().unwrap().last_offset(),
            3,
            "stops at the cap"
        );
        // Between the cap and the written end: empty, not out of range.
        for offset in [4, 7, 10] {
            let read = log.read(offset, u64::MAX, true).await.unwrap();
            assert_eq!(read.bytes, 0, "offset {offset}");
        }
        let committed = log
            .read_isolated(6, u64::MAX, true, Isolation::ReadCommitted)
            .await
            .unwrap();
        assert_eq!(committed.bytes, 0);
        assert!(matches!(
            log.read(11, u64::MAX, true).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        // A follower reads to the written end.
        let replica = fetch_all(&log, 4).await;
        assert_eq!(batches(&replica).len(), 3);
        // A cap inside a batch hides that batch whole.
        log.set_replicated_high_watermark(Some(5));
        let read = log.read(4, u64::MAX, true).await.unwrap();
        assert_eq!(read.bytes, 0);
        // Past the written end, the written end rules; lifting the cap wakes waiters too.
        log.set_replicated_high_watermark(Some(100));
        assert_eq!(log.high_watermark(), 10);
        let wait = log.changed();
        log.set_replicated_high_watermark(None);
        expect_wakes(wait).await;
        assert_eq!(log.high_watermark(), 10);
        // DeleteRecords is bounded by the capped high watermark.
        log.set_replicated_high_watermark(Some(4));
        assert!(log.delete_records(6).await.is_err());
        assert_eq!(log.delete_records(4).await.unwrap(), 4);
    });
}

#[test]
fn a_timestamp_lookup_finds_nothing_past_the_replicated_cap() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        for i in 0..5 {
            log.append(sample_batch(2, 10, 1_000 * (i + 1)))
                .await
                .unwrap();
        }
        log.set_replicated_high_watermark(Some(4));
        let found = log.offset_for_timestamp(2_000).await.unwrap().unwrap();
        assert_eq!(found.offset, 2);
        // Offset 4 holds the first record at 3000, but it is above the cap.
        assert!(log.offset_for_timestamp(3_000).await.unwrap().is_none());
        log.set_replicated_high_watermark(None);
        let found = log.offset_for_timestamp(3_000).await.unwrap().unwrap();
        assert_eq!(found.offset, 4);
    });
}

#[test]
fn a_follower_writes_its_leaders_batches_verbatim() {
    on_both_backends(|| async {
        let leader_dir = tempfile::tempdir().unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let leader = open(leader_dir.path(), config()).await;
        leader.set_leader_epoch(3);
        leader.append(idempotent(9, 0, 2, false)).await.unwrap();
        leader.append(idempotent(9, 2, 3, false)).await.unwrap();
        leader.append(idempotent(11, 0, 2, true)).await.unwrap();
        leader
            .append_marker(
                11,
                0,
                EndTxnMarker {
                    kind: MarkerKind::Abort,
                    coordinator_epoch: 1,
                },
            )
            .await
            .unwrap();
        leader.append(idempotent(12, 0, 1, true)).await.unwrap();
        let fetched = fetch_all(&leader, 0).await;

        let small = LogConfig {
            segment_bytes: 1024,
            ..config()
        };
        let follower = open(follower_dir.path(), small.clone()).await;
        let info = follower.append_replica(fetched.clone()).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 8));
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(fetch_all(&follower, 0).await, fetched, "byte for byte");
        assert_eq!(follower.leader_epochs(), [(3, 0)]);
        // Transactions: the abort is indexed, the open one holds the LSO.
        assert_eq!(follower.last_stable_offset(), 8);
        assert_eq!(follower.aborted_transactions(0, 9).len(), 1);

        // Overlap is refused and nothing is written.
        let again = follower.append_replica(fetched.clone()).await.unwrap_err();
        assert_eq!(
            again,
            ReplicaAppendError::OutOfOrder {
                expected: 9,
                got: 0
            }
        );
        assert_eq!(follower.log_end_offset(), 9);

        // A gap is fine; a new epoch is learned; segments roll at the batch's own offset.
        let bases_before = follower.segment_bases();
        follower
            .append_replica(leader_batch(20, 4, 5))
            .await
            .unwrap();
        follower
            .append_replica(leader_batch(24, 4, 5))
            .await
            .unwrap();
        assert_eq!(follower.log_end_offset(), 28);
        assert_eq!(follower.leader_epochs(), [(3, 0), (5, 20)]);
        let bases = follower.segment_bases();
        assert!(bases.len() > bases_before.len(), "{bases:?}");
        assert!(bases.contains(&20) || bases.contains(&24), "{bases:?}");
        let tail = fetch_all(&follower, 20).await;
        assert_eq!(
            batches(&tail)
                .iter()
                .map(|h| h.base_offset)
                .collect::<Vec<_>>(),
            [20, 24]
        );

        // Producer state as the leader's: the next sequence is accepted, a retry is a
        // duplicate, and a producer with an open transaction must stay transactional.
        let next = follower.append(idempotent(9, 5, 1, false)).await.unwrap();
        assert_eq!(next.base_offset, 28);
        let retry = follower.append(idempotent(9, 2, 3, false)).await.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), (2, 4));
        assert!(matches!(
            follower.append(idempotent(12, 1, 1, false)).await,
            Err(AppendError::Producer(_))
        ));
        follower.close().await.unwrap();

        // Reopened, the follower has what it had.
        let reopened = open(follower_dir.path(), small).await;
        assert_eq!(reopened.log_end_offset(), 29);
        assert_eq!(reopened.leader_epochs(), [(3, 0), (5, 20)]);
        assert_eq!(
            &fetch_all(&reopened, 0).await[..fetched.len()],
            &fetched[..]
        );
    });
}

#[test]
fn a_follower_refuses_leader_appends_and_takes_its_leaders_batches() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        assert!(!log.is_follower(), "a lone broker's log leads");
        log.append(sample_batch(2, 10, 1_000)).await.unwrap();
        log.set_follower(true);
        assert!(log.is_follower());
        let marker = EndTxnMarker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 0,
        };
        let refused = [
            log.append(sample_batch(1, 10, 1_000)).await,
            log.append_for_coordinator(idempotent(21, 0, 1, true)).await,
            log.append_marker(5, 0, marker).await,
        ];
        for result in refused {
            assert_eq!(result.unwrap_err(), AppendError::NotLeader);
        }
        assert_eq!(log.log_end_offset(), 2, "nothing written");

        // The leader's batches still arrive.
        let info = log.append_replica(leader_batch(2, 3, 4)).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (2, 4));

        // Leading again: appends are taken once more.
        log.set_follower(false);
        let info = log.append(sample_batch(1, 10, 1_000)).await.unwrap();
        assert_eq!(info.base_offset, 5);
        log.append_marker(5, 0, marker).await.unwrap();
    });
}

#[test]
fn the_leader_epoch_cache_persists_and_answers_offsets_for_leader_epoch() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        assert!(
            !dir.path().join(LEADER_EPOCH_FILE).exists(),
            "no file for a lone log"
        );
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        log.assign_leader_epoch(1, 0).await.unwrap();
        log.append(sample_batch(4, 10, 1_000)).await.unwrap();
        log.assign_leader_epoch(4, 4).await.unwrap();
        log.append(sample_batch(4, 10, 1_000)).await.unwrap();
        assert_eq!(log.latest_leader_epoch(), Some(4));
        assert_eq!(log.end_offset_for_epoch(4), (4, 8));
        assert_eq!(log.end_offset_for_epoch(2), (1, 4));
        assert_eq!(log.end_offset_for_epoch(0), (0, 0));
        assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(text, "0\n2\n1 0\n4 4\n");
        log.close().await.unwrap();
        drop(log);

        let log = open(dir.path(), config()).await;
        assert_eq!(log.leader_epochs(), [(1, 0), (4, 4)]);
        log.close().await.unwrap();
        drop(log);

        // Epochs past the recovered end are dropped on open; a damaged file is reported.
        std::fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n3\n1 0\n4 4\n6 50\n").unwrap();
        let log = open(dir.path(), config()).await;
        assert_eq!(log.leader_epochs(), [(1, 0), (4, 4)]);
        log.close().await.unwrap();
        drop(log);
        std::fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n7\ngarbage").unwrap();
        let (log, report) = Log::open(dir.path(), config(), OpenOptions::default())
            .await
            .unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(LEADER_EPOCH_FILE)),
            "{report:?}"
        );
        assert_eq!(log.log_end_offset(), 8);
        log.close().await.unwrap();
    });
}

/// A follower log of 2-record batches at offsets 0, 2, ... 18, in segments of about three
/// batches, stamped with epoch 1 up to offset 10 and epoch 2 from there.
async fn follower_with_segments(dir: &Path) -> (Log, Vec<Vec<u8>>) {
    let log = open(
        dir,
        LogConfig {
            segment_bytes: 600,
            ..config()
        },
    )
    .await;
    let mut written = Vec::new();
    for i in 0..10 {
        let bytes = leader_batch(i * 2, 2, if i < 5 { 1 } else { 2 });
        log.append_replica(bytes.clone()).await.unwrap();
        written.push(bytes);
    }
    (log, written)
}

#[test]
fn truncate_to_cuts_mid_segment_at_boundaries_and_across_segments() {
    on_both_backends(|| async {
        for target in [7, 6, 0] {
            let dir = tempfile::tempdir().unwrap();
            let (log, written) = follower_with_segments(dir.path()).await;
            let bases = log.segment_bases();
            assert!(bases.len() >= 3, "{bases:?}");
            let wait = log.changed();
            log.truncate_to(target).await.unwrap();
            expect_wakes(wait).await;
            // The batch holding the target goes whole.
            let end = target / 2 * 2;
            assert_eq!(log.log_end_offset(), end, "target {target}");
            assert_eq!((log.written_end(), log.high_watermark()), (end, end));
            assert!(log.segment_bases().iter().all(|&b| b <= end));
            let kept: Vec<u8> = written[..(end / 2) as usize].concat();
            if end > 0 {
                assert_eq!(fetch_all(&log, 0).await, kept);
            }
            let expected_epochs: Vec<(i32, i64)> = [(1, 0), (2, 10)]
                .into_iter()
                .filter(|&(_, start)| start < end)
                .collect();
            assert_eq!(log.leader_epochs(), expected_epochs);
            // Truncating at or past the end does nothing.
            log.truncate_to(end + 5).await.unwrap();
            assert_eq!(log.log_end_offset(), end);
            // Fetching continues from the new end.
            log.append_replica(leader_batch(end, 3, 3)).await.unwrap();
            assert_eq!(log.log_end_offset(), end + 3);
            assert_eq!(log.latest_leader_epoch(), Some(3));
            let state = (
                log.log_end_offset(),
                log.segment_bases(),
                fetch_all(&log, 0).await,
            );
            // A crash keeps it; so does a clean close.
            log.quiesce().await;
            drop(log);
            let reopened = open(dir.path(), config()).await;
            let again = (
                reopened.log_end_offset(),
                reopened.segment_bases(),
                fetch_all(&reopened, 0).await,
            );
            assert_eq!(again, state, "target {target}, after a crash");
            reopened.close().await.unwrap();
            drop(reopened);
            let reopened = open(dir.path(), config()).await;
            assert_eq!(reopened.log_end_offset(), state.0);
            assert_eq!(reopened.leader_epochs().last(), Some(&(3, end)));
        }
    });
}

#[test]
fn truncate_at_a_segment_boundary_removes_the_later_segments() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, written) = follower_with_segments(dir.path()).await;
        let boundary = log.segment_bases()[1];
        log.set_replicated_high_watermark(Some(18));
        log.truncate_to(boundary).await.unwrap();
        assert_eq!(log.log_end_offset(), boundary);
        assert_eq!(log.high_watermark(), boundary, "the cap follows the end");
        assert_eq!(log.replicated_high_watermark(), Some(boundary));
        assert_eq!(*log.segment_bases().last().unwrap(), boundary);
        assert_eq!(
            fetch_all(&log, 0).await,
            written[..(boundary / 2) as usize].concat()
        );
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), config()).await;
        assert_eq!(log.log_end_offset(), boundary);
    });
}

#[test]
fn producer_state_forgets_truncated_batches() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config()).await;
        for seq in 0..5 {
            log.append(idempotent(9, seq * 2, 2, false)).await.unwrap();
        }
        // A snapshot below the cut (a clean close), then more.
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), config()).await;
        for seq in 5..8 {
            log.append(idempotent(9, seq * 2, 2, false)).await.unwrap();
        }
        log.truncate_to(12).await.unwrap();
        assert_eq!(log.log_end_offset(), 12);
        // Sequence 12 is next again, not a duplicate of the truncated batch.
        let info = log.append(idempotent(9, 12, 2, false)).await.unwrap();
        assert_eq!(info.base_offset, 12);
        // Sequence 14 was truncated too: it follows now.
        let info = log.append(idempotent(9, 14, 2, false)).await.unwrap();
        assert_eq!(info.base_offset, 14);
        // A retry of a kept batch is still recognised.
        let retry = log.append(idempotent(9, 10, 2, false)).await.unwrap();
        assert_eq!(retry.base_offset, 10);
    });
}

#[test]
fn truncating_fully_restarts_the_log_elsewhere() {
    on_both_backends(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = follower_with_segments(dir.path()).await;
        log.truncate_to(0).await.unwrap();
        assert_eq!((log.log_end_offset(), log.log_start_offset()), (0, 0));
        log.append_replica(leader_batch(0, 2, 1)).await.unwrap();
        log.truncate_fully_and_start_at(100).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(log.segment_bases(), [100]);
        assert!(log.leader_epochs().is_empty());
        assert!(log.producers().is_empty());
        assert!(matches!(
            log.append_replica(leader_batch(98, 2, 4)).await,
            Err(ReplicaAppendError::OutOfOrder {
                expected: 100,
                got: 98
            })
        ));
        log.append_replica(leader_batch(100, 2, 4)).await.unwrap();
        assert!(log.read(100, u64::MAX, true).await.unwrap().bytes > 0);
        log.quiesce().await;
        drop(log);
        let log = open(dir.path(), config()).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
        assert_eq!(log.leader_epochs(), [(4, 100)]);
        // Below the first segment, truncate_to restarts the log too.
        log.truncate_to(50).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 50));
        assert!(fetch_all(&log, 50).await.is_empty(), "an empty log");
    });
}
