//! Transactions (KIP-98) on a real log: transactional batches and markers, the last stable
//! offset and read_committed reads, the aborted transaction index across segment rolls,
//! restarts (clean and after a crash), retention, and the cleaner held below the LSO. Every
//! test runs on both backends.

mod common;

use common::{crash_log as crash, open_log as open, quiet_log_config};

use std::cell::Cell;
use std::rc::Rc;

use runnel_engine::log::batch::{BatchHeader, HEADER_LEN};
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::compaction::{Cleaner, CleanerConfig};
use runnel_engine::log::producers::ProducerError;
use runnel_engine::log::records;
use runnel_engine::log::txn::{index as txn_index, marker};
use runnel_engine::log::{
    AbortedTxn, AppendError, CleanupPolicy, Clock, EndTxnMarker, Isolation, Log, LogConfig,
    MarkerKind, OpenOptions, ReadError, CHECKPOINT_FILE,
};

fn config() -> LogConfig {
    quiet_log_config()
}

const P1: i64 = 100;
const P2: i64 = 200;
const P3: i64 = 300;

/// `count` records of 100 bytes from `pid` (epoch 0) from sequence `seq`, transactional or not.
fn records(pid: i64, seq: i32, count: usize, transactional: bool) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(pid, 0, seq);
    if transactional {
        builder = builder.transactional();
    }
    for i in 0..count {
        builder.push(&Record {
            key: Some(format!("k{}", i % 3).into_bytes()),
            value: Some(vec![i as u8; 100]),
            headers: vec![],
            timestamp: 1_000 + i as i64,
        });
    }
    builder.build()
}

fn plain(count: usize) -> Vec<u8> {
    records(-1, -1, count, false)
}

fn end(kind: MarkerKind, coordinator_epoch: i32) -> EndTxnMarker {
    EndTxnMarker {
        kind,
        coordinator_epoch,
    }
}

/// The batches (headers) a read returned, as a client would split them.
async fn batches(log: &Log, offset: i64, isolation: Isolation) -> Vec<BatchHeader> {
    let read = log
        .read_isolated(offset, u64::MAX, true, isolation)
        .await
        .expect("in range");
    let bytes = read.copy_out().await.unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = BatchHeader::parse(&bytes[at..]).unwrap();
        at += header.total_len().unwrap();
        out.push(header);
    }
    out
}

fn aborted(producer_id: i64, first_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset,
    }
}

/// The entries of the `.txnindex` file of segment `base`, `None` when there is no file.
fn txn_index_file(dir: &std::path::Path, base: i64) -> Option<Vec<txn_index::AbortedTxnEntry>> {
    let bytes = std::fs::read(dir.join(format!("{base:020}.txnindex"))).ok()?;
    let decoded = txn_index::decode(&bytes);
    assert_eq!(decoded.damaged_bytes, 0);
    Some(decoded.entries)
}

/// One keyed batch from `pid` at `seq` (`pid` -1: no producer).
fn keyed(pid: i64, seq: i32, transactional: bool, pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = BatchBuilder::new().producer(pid, 0, seq);
    if transactional {
        builder = builder.transactional();
    }
    for (key, value) in pairs {
        builder.push(&Record {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp: 1_000,
        });
    }
    builder.build()
}

/// What a read from the start returns (uncompressed batches): `(offset, key, value)` per
/// data record and `(offset, "MARKER", "")` per control batch.
async fn everything(log: &Log) -> Vec<(i64, String, String)> {
    let read = log
        .read(log.log_start_offset(), u64::MAX, true)
        .await
        .unwrap();
    let bytes = read.copy_out().await.unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = BatchHeader::parse(&bytes[at..]).unwrap();
        let len = header.total_len().unwrap();
        if header.is_control() {
            out.push((header.base_offset, "MARKER".to_string(), String::new()));
        } else {
            for record in records::walk(&bytes[at + HEADER_LEN..at + len]) {
                let record = record.unwrap();
                let text =
                    |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
                out.push((
                    header.base_offset + i64::from(record.offset_delta),
                    text(record.key),
                    text(record.value),
                ));
            }
        }
        at += len;
    }
    out
}

/// Runs cleaning passes until none is due, once the segments rolled so far are sealed;
/// at least one must run.
async fn clean_fully(log: &Log, cleaner: &mut Cleaner) {
    log.quiesce().await;
    let mut passes = 0;
    while log.clean(cleaner).await.unwrap().is_some() {
        passes += 1;
        assert!(passes < 100, "passes keep being due");
    }
    assert!(passes > 0, "no pass ran");
}

/// `count` keyed filler records, one per batch, with 200-byte values.
async fn filler(log: &Log, from: usize, count: usize) {
    for i in from..from + count {
        let value = "f".repeat(200);
        log.append(keyed(-1, -1, false, &[(&format!("f{i}"), &value)]))
            .await
            .unwrap();
    }
}

on_both_backends! {
    fn commit_and_abort_move_the_lso_and_only_aborts_are_reported(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(plain(2)).await.unwrap(); // 0..2
            assert_eq!(log.last_stable_offset(), 2);
            log.append(records(P1, 0, 3, true)).await.unwrap(); // 2..5
            assert_eq!((log.last_stable_offset(), log.first_unstable_offset()), (2, Some(2)));
            log.append(records(P2, 0, 2, true)).await.unwrap(); // 5..7
            log.append(plain(1)).await.unwrap(); // 7
            assert_eq!(log.last_stable_offset(), 2, "P1's transaction holds the LSO");
            // A plain batch from a producer in a transaction is refused.
            let refused = log.append(records(P1, 3, 1, false)).await.unwrap_err();
            assert!(matches!(refused, AppendError::Producer(ProducerError::NotInTransaction { producer_id: P1 })), "{refused:?}");
            let info = log.append_marker(P1, 0, end(MarkerKind::Commit, 1)).await.unwrap();
            assert_eq!((info.base_offset, info.last_offset), (8, 8));
            assert_eq!(log.last_stable_offset(), 5, "now P2's holds it");
            let info = log.append_marker(P2, 0, end(MarkerKind::Abort, 1)).await.unwrap();
            assert_eq!(info.base_offset, 9);
            assert_eq!((log.last_stable_offset(), log.first_unstable_offset()), (10, None));
            assert_eq!(log.aborted_transactions(0, 10), vec![aborted(P2, 5)]);
            assert_eq!(log.aborted_transactions(7, 10), vec![aborted(P2, 5)], "the abort ends at 9");
            assert_eq!(log.aborted_transactions(0, 5), vec![], "it starts at 5");
            assert_eq!(log.aborted_transactions(10, 20), vec![]);
            // The markers are Kafka's control batches.
            let read = log.read(8, u64::MAX, true).await.unwrap();
            let bytes = read.copy_out().await.unwrap();
            let header = BatchHeader::parse(&bytes).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.base_sequence), (P1, -1));
            let len = header.total_len().unwrap();
            assert_eq!(marker::decode_marker(&bytes[..len], &header), Ok(Some(end(MarkerKind::Commit, 1))));
            // Transactions go on; the sequence continues.
            log.append(records(P1, 3, 1, true)).await.unwrap();
            assert_eq!(log.last_stable_offset(), 10);
            let producers = log.producers();
            assert_eq!(producers[0].1.current_txn_first_offset, Some(10));
            assert_eq!(producers[1].1.current_txn_first_offset, None);
        });
    }

    fn a_decided_transaction_stays_unstable_until_its_marker_is_readable(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(plain(2)).await.unwrap(); // 0..2
            log.append(records(P1, 0, 2, true)).await.unwrap(); // 2..4
            // The marker is placed when called; its write completes later.
            let commit = log.append_marker(P1, 0, end(MarkerKind::Commit, 0)); // 4
            assert_eq!(log.log_end_offset(), 5);
            assert_eq!(log.producers()[0].1.current_txn_first_offset, None, "closed when placed");
            assert_eq!(log.high_watermark(), 4, "not yet written");
            assert_eq!(log.last_stable_offset(), 2, "its fate isn't readable yet");
            assert_eq!(log.first_unstable_offset(), Some(2));
            commit.await.unwrap();
            assert_eq!((log.last_stable_offset(), log.first_unstable_offset()), (5, None));
        });
    }

    fn markers_are_fenced_by_epoch_and_coordinator_epoch(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(records(P1, 0, 1, true)).await.unwrap();
            log.append_marker(P1, 1, end(MarkerKind::Abort, 3)).await.unwrap();
            let end_offset = log.log_end_offset();
            let old_epoch = log.append_marker(P1, 0, end(MarkerKind::Commit, 3)).await.unwrap_err();
            assert!(matches!(old_epoch, AppendError::Producer(ProducerError::InvalidProducerEpoch { current: 1, got: 0, .. })), "{old_epoch:?}");
            let old_coordinator = log.append_marker(P1, 1, end(MarkerKind::Commit, 2)).await.unwrap_err();
            assert!(matches!(old_coordinator, AppendError::Producer(ProducerError::TransactionCoordinatorFenced { current: 3, got: 2, .. })), "{old_coordinator:?}");
            assert_eq!(log.log_end_offset(), end_offset, "refusals write nothing");
            // The bumped epoch fenced the producer's old epoch.
            let fenced = log.append(records(P1, 1, 1, true)).await.unwrap_err();
            assert!(matches!(fenced, AppendError::Producer(ProducerError::InvalidProducerEpoch { .. })), "{fenced:?}");
            // A marker for a producer with no transaction here is written, completing nothing.
            log.append_marker(P2, 0, end(MarkerKind::Abort, 0)).await.unwrap();
            assert_eq!(log.log_end_offset(), end_offset + 1);
            assert_eq!(log.aborted_transactions(0, 100), vec![aborted(P1, 0)]);
            // Clients may not write control batches.
            let mut control = BatchBuilder::new().producer(P2, 0, 0).transactional().control();
            control.push(&Record { key: Some(marker::encode_key(MarkerKind::Commit).to_vec()), value: Some(marker::encode_value(0).to_vec()), headers: vec![], timestamp: 0 });
            let refused = log.append(control.build()).await.unwrap_err();
            assert!(matches!(refused, AppendError::Producer(ProducerError::InvalidRecord(_))), "{refused:?}");
        });
    }

    fn read_committed_stops_at_the_lso(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            for _ in 0..3 {
                log.append(plain(2)).await.unwrap(); // 0..6
            }
            log.append(records(P1, 0, 2, true)).await.unwrap(); // 6..8
            log.append(plain(2)).await.unwrap(); // 8..10
            let committed = batches(&log, 0, Isolation::ReadCommitted).await;
            assert_eq!(committed.last().unwrap().last_offset(), 5, "{committed:?}");
            assert_eq!(committed.len(), 3);
            let uncommitted = batches(&log, 0, Isolation::ReadUncommitted).await;
            assert_eq!(uncommitted.last().unwrap().last_offset(), 9);
            let read = log.read_isolated(2, u64::MAX, true, Isolation::ReadCommitted).await.unwrap();
            assert_eq!((read.last_stable_offset, read.high_watermark), (6, 10));
            // At the LSO and past it (within the high watermark): empty, not out of range.
            for offset in [6, 7, 9, 10] {
                let read = log.read_isolated(offset, u64::MAX, true, Isolation::ReadCommitted).await.unwrap();
                assert_eq!(read.bytes, 0, "offset {offset}");
            }
            let past = log.read_isolated(11, u64::MAX, true, Isolation::ReadCommitted).await.unwrap_err();
            assert!(matches!(past, ReadError::OffsetOutOfRange { .. }));
            log.append_marker(P1, 0, end(MarkerKind::Commit, 0)).await.unwrap(); // 10
            let committed = batches(&log, 6, Isolation::ReadCommitted).await;
            assert_eq!(committed.last().unwrap().last_offset(), 10);
            assert!(committed.last().unwrap().is_control());
        });
    }

    fn aborted_transactions_are_found_across_segment_rolls(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            // About three 10-record batches per segment.
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            let mut seq = 0;
            // P1 aborts a transaction spanning segments, while P2's runs alongside.
            log.append(records(P2, 0, 10, true)).await.unwrap(); // 0..10
            for _ in 0..6 {
                log.append(records(P1, seq, 10, true)).await.unwrap(); // 10..70
                seq += 10;
            }
            let abort = log.append_marker(P1, 0, end(MarkerKind::Abort, 0)).await.unwrap();
            assert_eq!(abort.base_offset, 70);
            assert_eq!(log.last_stable_offset(), 0, "P2 still open");
            log.append_marker(P2, 0, end(MarkerKind::Commit, 0)).await.unwrap(); // 71
            log.append(records(P1, seq, 10, true)).await.unwrap(); // 72..82
            seq += 10;
            for _ in 0..6 {
                log.append(plain(10)).await.unwrap(); // 82..142
            }
            log.append_marker(P1, 0, end(MarkerKind::Abort, 0)).await.unwrap(); // 142
            let bases = log.segment_bases();
            assert!(bases.len() >= 5, "{bases:?}");
            assert_eq!(log.aborted_transactions(0, 200), vec![aborted(P1, 10), aborted(P1, 72)]);
            assert_eq!(log.aborted_transactions(71, 200), vec![aborted(P1, 72)]);
            assert_eq!(log.aborted_transactions(0, 72), vec![aborted(P1, 10)]);
            assert_eq!(log.aborted_transactions(60, 65), vec![aborted(P1, 10)]);
            assert_eq!(log.aborted_transactions(143, 200), vec![]);
            // The first abort's entry is in its marker's segment's .txnindex once sealed,
            // with P2's open transaction as the LSO then.
            log.quiesce().await;
            let marker_segment = *bases.iter().rfind(|&&b| b <= 70).unwrap();
            let entries = txn_index_file(dir.path(), marker_segment).expect("a txnindex");
            assert_eq!(entries, vec![txn_index::AbortedTxnEntry { producer_id: P1, first_offset: 10, last_offset: 70, last_stable_offset: 0 }]);
            let without: Vec<_> = bases.iter().filter(|&&b| b != marker_segment && b < 82).filter(|&&b| txn_index_file(dir.path(), b).is_some()).collect();
            assert!(without.is_empty(), "segments without aborts have no txnindex: {without:?}");
            let _ = seq;
        });
    }

    fn open_transactions_and_the_index_survive_restarts(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            log.append(plain(10)).await.unwrap(); // 0..10
            log.append(records(P1, 0, 10, true)).await.unwrap(); // 10..20
            log.append(records(P2, 0, 10, true)).await.unwrap(); // 20..30
            log.append_marker(P2, 0, end(MarkerKind::Abort, 4)).await.unwrap(); // 30
            log.append(plain(10)).await.unwrap(); // 31..41
            assert_eq!(log.last_stable_offset(), 10);
            // A clean restart.
            log.close().await.unwrap();
            drop(log);
            let (log, report) = open(dir.path(), config.clone()).await;
            assert_eq!(report.producers.batches_replayed, 0);
            assert_eq!(log.last_stable_offset(), 10, "P1's transaction is still open");
            assert_eq!(log.aborted_transactions(0, 41), vec![aborted(P2, 20)]);
            let refused = log.append(records(P1, 10, 1, false)).await.unwrap_err();
            assert!(matches!(refused, AppendError::Producer(ProducerError::NotInTransaction { .. })));
            // More, then a crash: no close.
            log.append(records(P2, 10, 10, true)).await.unwrap(); // 41..51
            log.append_marker(P2, 0, end(MarkerKind::Abort, 4)).await.unwrap(); // 51
            log.append(records(P1, 10, 10, true)).await.unwrap(); // 52..62
            let before = log.aborted_transactions(0, 100);
            assert_eq!(before, vec![aborted(P2, 20), aborted(P2, 41)]);
            crash(log).await;
            let (log, report) = open(dir.path(), config.clone()).await;
            assert!(report.producers.markers_replayed >= 1, "{report:?}");
            assert_eq!(log.last_stable_offset(), 10);
            assert_eq!(log.aborted_transactions(0, 100), before);
            let fenced = log.append_marker(P2, 0, end(MarkerKind::Commit, 3)).await.unwrap_err();
            assert!(matches!(fenced, AppendError::Producer(ProducerError::TransactionCoordinatorFenced { .. })), "the coordinator epoch survived: {fenced:?}");
            log.append_marker(P1, 0, end(MarkerKind::Commit, 4)).await.unwrap(); // 62
            assert_eq!(log.last_stable_offset(), 63);
            // A crash with no snapshot at all rebuilds it all from the log.
            crash(log).await;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "snapshot" || e == "txnindex") {
                    std::fs::remove_file(path).unwrap();
                }
            }
            std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
            let (log, _) = open(dir.path(), config).await;
            assert_eq!(log.last_stable_offset(), 63);
            assert_eq!(log.aborted_transactions(0, 100), before);
            assert_eq!(log.producers().iter().find(|(id, _)| *id == P1).unwrap().1.current_txn_first_offset, None);
        });
    }

    fn a_torn_txnindex_is_cut_not_trusted(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(records(P1, 0, 2, true)).await.unwrap(); // 0..2
            log.append_marker(P1, 0, end(MarkerKind::Abort, 0)).await.unwrap(); // 2
            log.close().await.unwrap();
            drop(log);
            let path = dir.path().join(format!("{:020}.txnindex", 0));
            let mut bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), txn_index::ENTRY_LEN);
            bytes.extend_from_slice(&[0, 0, 1, 2, 3]);
            std::fs::write(&path, &bytes).unwrap();
            let (log, report) = open(dir.path(), config()).await;
            assert!(report.problems.iter().any(|p| p.contains("transaction index")), "{report:?}");
            assert_eq!(log.aborted_transactions(0, 3), vec![aborted(P1, 0)]);
            log.close().await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap().len(), txn_index::ENTRY_LEN, "rewritten whole");
        });
    }

    fn a_torn_marker_reopens_its_transaction_and_drops_its_entry(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(plain(2)).await.unwrap(); // 0..2
            log.append(records(P1, 0, 2, true)).await.unwrap(); // 2..4
            log.append_marker(P1, 0, end(MarkerKind::Abort, 0)).await.unwrap(); // 4
            let size_before_marker = {
                let read = log.read(0, u64::MAX, true).await.unwrap();
                let bytes = read.copy_out().await.unwrap();
                let mut at = 0;
                for _ in 0..2 {
                    at += BatchHeader::parse(&bytes[at..]).unwrap().total_len().unwrap();
                }
                at as u64
            };
            log.close().await.unwrap();
            drop(log);
            assert!(txn_index_file(dir.path(), 0).is_some());
            // The marker's write was torn (as if it never completed).
            let segment = dir.path().join(format!("{:020}.log", 0));
            let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
            file.set_len(size_before_marker + 30).unwrap();
            drop(file);
            let (log, report) = open(dir.path(), config()).await;
            assert!(report.bytes_truncated > 0, "{report:?}");
            assert_eq!(log.log_end_offset(), 4);
            assert_eq!(log.aborted_transactions(0, 10), vec![], "the entry went with its marker");
            assert_eq!(log.last_stable_offset(), 2, "the transaction is open again");
            log.close().await.unwrap();
            assert!(txn_index_file(dir.path(), 0).is_none(), "an empty index is no file");
        });
    }

    fn retention_removes_the_txnindex_with_its_segment(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config).await;
            log.append(records(P1, 0, 10, true)).await.unwrap(); // 0..10
            log.append_marker(P1, 0, end(MarkerKind::Abort, 0)).await.unwrap(); // 10
            for _ in 0..8 {
                log.append(plain(10)).await.unwrap();
            }
            log.quiesce().await;
            let first = log.segment_bases()[0];
            assert!(txn_index_file(dir.path(), first).is_some());
            let second = log.segment_bases()[1];
            log.delete_records(second).await.unwrap();
            assert!(!dir.path().join(format!("{first:020}.log")).exists());
            assert!(txn_index_file(dir.path(), first).is_none(), "the txnindex went with its segment");
            assert_eq!(log.aborted_transactions(second, 1000), vec![]);
        });
    }

    fn the_cleaner_removes_aborted_records_and_stays_below_the_lso(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(1_000_000));
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let config = LogConfig {
                cleanup_policy: CleanupPolicy::COMPACT,
                segment_bytes: 4096,
                min_cleanable_dirty_ratio: 0.01,
                delete_retention_ms: 60_000,
                ..config()
            };
            let (log, _) = Log::open(dir.path(), config.clone(), options.clone()).await.unwrap();
            log.append(keyed(P1, 0, true, &[("a", "committed"), ("b", "committed")])).await.unwrap(); // 0, 1
            log.append_marker(P1, 0, end(MarkerKind::Commit, 0)).await.unwrap(); // 2
            log.append(keyed(P2, 0, true, &[("a", "aborted"), ("b", "aborted")])).await.unwrap(); // 3, 4
            log.append_marker(P2, 0, end(MarkerKind::Abort, 0)).await.unwrap(); // 5
            // P2's last batch moves on (a producer's last batch is kept, even empty).
            log.append(keyed(P2, 2, false, &[("z", "p2")])).await.unwrap(); // 6
            filler(&log, 0, 40).await; // 7..47
            log.append(keyed(P3, 0, true, &[("a", "open")])).await.unwrap(); // 47
            filler(&log, 40, 40).await; // 48..88
            assert_eq!(log.last_stable_offset(), 47);

            let mut cleaner = Cleaner::new(&CleanerConfig::default());
            clean_fully(&log, &mut cleaner).await;
            let seen = everything(&log).await;
            let at = |offset: i64| seen.iter().find(|s| s.0 == offset).map(|s| (s.1.as_str(), s.2.as_str()));
            assert_eq!(at(0), Some(("a", "committed")), "an aborted or undecided record never supersedes");
            assert_eq!(at(1), Some(("b", "committed")));
            assert_eq!((at(3), at(4)), (None, None), "aborted records are removed");
            assert_eq!(at(2), Some(("MARKER", "")));
            assert_eq!(at(5), Some(("MARKER", "")), "kept: the pass saw its data");
            assert_eq!(at(47), Some(("a", "open")), "nothing at or past the LSO is cleaned");
            assert_eq!(log.aborted_transactions(0, 100), vec![aborted(P2, 3)], "the entry moved with its marker");
            let first = log.segment_bases()[0];
            assert_eq!(txn_index_file(dir.path(), first).map(|e| e.len()), Some(1), "in the cleaned segment's .txnindex");
            // A crash keeps all of it: the cleaned index, the open transaction.
            crash(log).await;
            let (log, _) = Log::open(dir.path(), config.clone(), options.clone()).await.unwrap();
            assert_eq!(log.aborted_transactions(0, 100), vec![aborted(P2, 3)]);
            assert_eq!(log.last_stable_offset(), 47);

            // P3 commits: its record now supersedes P1's. With no data of P2's abort left,
            // its marker gets a horizon, and goes once that passed.
            log.append_marker(P3, 0, end(MarkerKind::Commit, 0)).await.unwrap(); // 88
            filler(&log, 80, 40).await;
            assert_eq!(log.last_stable_offset(), log.high_watermark());
            clean_fully(&log, &mut cleaner).await;
            let seen = everything(&log).await;
            let at = |offset: i64| seen.iter().find(|s| s.0 == offset).map(|s| (s.1.as_str(), s.2.as_str()));
            assert_eq!(at(0), None);
            assert_eq!(at(47), Some(("a", "open")));
            assert_eq!(at(5), Some(("MARKER", "")), "until its horizon");
            clock.set(clock.get() + 61_000);
            clean_fully(&log, &mut cleaner).await;
            let seen = everything(&log).await;
            let at = |offset: i64| seen.iter().find(|s| s.0 == offset).map(|s| (s.1.as_str(), s.2.as_str()));
            assert_eq!(at(5), None, "the abort marker went");
            assert_eq!(at(2), Some(("MARKER", "")), "P1's commit keeps its marker: b is still there");
            assert_eq!(log.aborted_transactions(0, 1000), vec![]);
            // A crash and a full rebuild find no transaction open.
            let end_offset = log.log_end_offset();
            crash(log).await;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "snapshot") {
                    std::fs::remove_file(path).unwrap();
                }
            }
            let (log, report) = Log::open(dir.path(), config, options).await.unwrap();
            assert!(report.problems.is_empty(), "{report:?}");
            assert_eq!(log.last_stable_offset(), end_offset);
            assert_eq!(log.first_unstable_offset(), None);
        });
    }
}
