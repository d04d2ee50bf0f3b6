//! The partition log on a real runtime and real files: appends, reads, rolls, lookups,
//! rejections, flush policies, recovery, retention. Every test runs on both backends.

mod common;

use common::{crash_log as crash, open_log as open, quiet_log_config as config};

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::{self, BatchHeader, Compression, TimestampType};
use runnel_engine::log::builder::{sample_batch, sample_builder, BatchBuilder, Record};
use runnel_engine::log::{
    AppendError, Clock, Log, LogConfig, LogSet, OpenOptions, ReadError, RecoveryReport,
    TopicCompression,
};
use runnel_engine::rt;

/// Recognizes the error an append must fail with.
type ErrorCheck = fn(&AppendError) -> bool;

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn open_clean(dir: &Path, config: LogConfig) -> (Log, RecoveryReport) {
    let options = OpenOptions {
        clean_shutdown: true,
        ..OpenOptions::default()
    };
    Log::open(dir, config, options).await.expect("log opens")
}

/// Reads every whole batch from `from` to the high watermark through the read planner, as a
/// consumer would: returns the batches' bytes.
async fn read_all(log: &Log, from: i64, max_bytes: u64) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut offset = from;
    while offset < log.high_watermark() {
        let result = log.read(offset, max_bytes, true).await.expect("read");
        assert!(
            result.bytes > 0,
            "a read below the high watermark returns data"
        );
        let bytes = result.copy_out().await.expect("ranges are readable");
        let mut at = 0;
        let mut progressed = false;
        while let Some(len) = batch::declared_total_len(&bytes[at..]) {
            if at + len > bytes.len() {
                break; // a trailing partial batch, as Kafka returns; fetched again next time
            }
            let header = batch::validate(&bytes[at..at + len], usize::MAX).expect("valid batch");
            if header.last_offset() >= offset {
                batches.push(bytes[at..at + len].to_vec());
                offset = header.last_offset() + 1;
                progressed = true;
            }
            at += len;
        }
        assert!(progressed, "every read makes progress");
    }
    batches
}

/// A batch of `count` records whose values say which batch they belong to.
fn tagged_batch(tag: u64, count: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for i in 0..count {
        let mut value = tag.to_be_bytes().to_vec();
        value.resize(value_len.max(8), i as u8);
        builder.push(&Record {
            key: Some(format!("k{tag}-{i}").into_bytes()),
            value: Some(value),
            headers: vec![("tag".into(), Some(tag.to_be_bytes().to_vec()))],
            timestamp: timestamp + i as i64,
        });
    }
    builder.build()
}

/// The stored form of a batch appended at `base`: only the base offset differs.
fn stored(mut batch: Vec<u8>, base: i64) -> Vec<u8> {
    batch::set_base_offset(&mut batch, base);
    batch
}

fn header(batch: &[u8]) -> BatchHeader {
    BatchHeader::parse(batch).unwrap()
}

on_both_backends! {
    fn random_appends_read_back_byte_for_byte(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 64 << 10, index_interval_bytes: 1024, ..config() };
            let (log, report) = open(dir.path(), config.clone()).await;
            assert_eq!(report.segments, 1);
            let mut rng = Rng(0x9e3779b97f4a7c15);
            let mut expected = Vec::new();
            for tag in 0..300u64 {
                let count = 1 + rng.below(20) as usize;
                let value_len = rng.below(2000) as usize;
                let batch = tagged_batch(tag, count, value_len, 1_000 + tag as i64);
                let info = log.append(batch.clone()).await.expect("append");
                assert_eq!(info.base_offset, expected.iter().map(|b: &Vec<u8>| header(b).records_count as i64).sum::<i64>());
                assert_eq!(info.last_offset, info.base_offset + count as i64 - 1);
                expected.push(stored(batch, info.base_offset));
            }
            assert_eq!(log.high_watermark(), log.log_end_offset());
            assert!(log.segment_bases().len() > 5, "64 KiB segments rolled");
            for max_bytes in [1, 5000, 100_000, 10 << 20] {
                assert_eq!(read_all(&log, 0, max_bytes).await, expected, "max_bytes {max_bytes}");
            }
            // From any offset, the first batch returned holds it.
            for _ in 0..200 {
                let offset = rng.below(log.high_watermark() as u64) as i64;
                let batches = read_all(&log, offset, 1).await;
                let first = header(&batches[0]);
                assert!(first.base_offset <= offset && offset <= first.last_offset());
            }
            // Segment files carry Kafka's names.
            for base in log.segment_bases() {
                for suffix in ["log", "index", "timeindex"] {
                    assert!(dir.path().join(format!("{base:020}.{suffix}")).exists());
                }
            }
            // Reopen after a clean close: same contents, nothing scanned.
            log.close().await.unwrap();
            drop(log);
            let (log, report) = open_clean(dir.path(), config.clone()).await;
            assert!(report.clean_shutdown);
            assert_eq!(report.segments_scanned, 0);
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
            // And after a crash (no close): every segment past the checkpoint is scanned.
            let info = log.append(tagged_batch(999, 3, 10, 5)).await.unwrap();
            expected.push(stored(tagged_batch(999, 3, 10, 5), info.base_offset));
            crash(log).await;
            let (log, report) = open(dir.path(), config).await;
            assert!(!report.clean_shutdown);
            assert!(report.segments_scanned >= 1);
            assert_eq!(report.bytes_truncated, 0);
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        });
    }

    fn reads_respect_bounds(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            for i in 0..10 {
                log.append(sample_batch(10, 100, i * 100)).await.unwrap();
            }
            let one = log.read(0, 1, false).await.unwrap();
            assert_eq!(one.bytes, 1, "max_bytes caps the bytes without min_one_batch");
            let whole = log.read(0, 1, true).await.unwrap();
            let first_len = sample_batch(10, 100, 0).len() as u64;
            assert_eq!(whole.bytes, first_len, "KIP-74: the first batch comes whole");
            let zero = log.read(0, 0, true).await.unwrap();
            assert_eq!(zero.bytes, first_len);
            let at_end = log.read(100, 1 << 20, true).await.unwrap();
            assert_eq!((at_end.bytes, at_end.high_watermark), (0, 100));
            let past = log.read(101, 1 << 20, true).await.unwrap_err();
            assert_eq!(past, ReadError::OffsetOutOfRange { offset: 101, log_start_offset: 0, high_watermark: 100 });
            assert!(matches!(log.read(-1, 10, true).await, Err(ReadError::OffsetOutOfRange { .. })));
            let middle = log.read(55, 1 << 20, true).await.unwrap();
            assert_eq!(middle.ranges[0].position, 5 * first_len, "starts at the batch holding 55");
            assert_eq!(middle.bytes, 5 * first_len);
        });
    }

    fn timestamp_lookups(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config).await;
            assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
            assert_eq!(log.max_timestamp(), None);
            // Batch i holds 10 records stamped 1000*i + 0..10; batch 15 ends with a late record.
            for i in 0..20i64 {
                let mut builder = BatchBuilder::new();
                for r in 0..10 {
                    let late = if i == 15 && r == 9 { 500_000 } else { 0 };
                    builder.push(&Record { value: Some(vec![0; 200]), timestamp: 1000 * i + r + late, ..Default::default() });
                }
                log.append(builder.build()).await.unwrap();
            }
            assert!(log.segment_bases().len() > 3);
            let at = |ts| {
                let log = log.clone();
                async move { log.offset_for_timestamp(ts).await.unwrap().map(|t| (t.offset, t.timestamp)) }
            };
            assert_eq!(at(-5).await, Some((0, 0)));
            assert_eq!(at(5005).await, Some((55, 5005)), "exact record inside a batch");
            assert_eq!(at(7000).await, Some((70, 7000)));
            // Kafka's rule: the earliest offset whose timestamp is at or after T, so the late
            // record at offset 159 answers for every T past batch 15's other records.
            assert_eq!(at(15_008).await, Some((158, 15_008)));
            assert_eq!(at(16_005).await, Some((159, 515_009)));
            assert_eq!(at(515_009).await, Some((159, 515_009)));
            assert_eq!(at(515_010).await, None);
            let max = log.max_timestamp().unwrap();
            assert_eq!((max.timestamp, max.offset), (515_009, 159));
        });
    }

    fn max_timestamp_names_the_record_not_its_batch(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            assert_eq!(log.max_timestamp_record().await.unwrap(), None);
            let batch = |timestamps: &[i64]| {
                let mut builder = BatchBuilder::new();
                for &timestamp in timestamps {
                    builder.push(&Record { value: Some(vec![1; 300]), timestamp, ..Default::default() });
                }
                builder
            };
            let max = |log: Log| async move {
                let m = log.max_timestamp_record().await.unwrap().unwrap();
                (m.offset, m.timestamp)
            };
            // Several segments; the maximum sits mid-batch in the third batch (offsets 10..15).
            log.append(batch(&[1, 2, 3, 4, 5]).build()).await.unwrap();
            log.append(batch(&[6, 7, 8, 9, 10]).build()).await.unwrap();
            log.append(batch(&[11, 900, 12, 900, 13]).build()).await.unwrap();
            for i in 0..10 {
                log.append(batch(&[100 + i; 5]).build()).await.unwrap();
            }
            assert!(log.segment_bases().len() > 2);
            assert_eq!(max(log.clone()).await, (11, 900), "first record holding the maximum");
            // A later batch that only ties does not take over (Kafka keeps the first).
            log.append(batch(&[1, 900]).build()).await.unwrap();
            assert_eq!(max(log.clone()).await, (11, 900));
            // A compressed batch is inflated to find the record.
            let zstd = batch(&[5, 7_000, 6, 7]).build_compressed(batch::Compression::Zstd).unwrap();
            let at = log.append(zstd).await.unwrap().base_offset;
            assert_eq!(max(log.clone()).await, (at + 1, 7_000));
            // Survives a restart (the indexes are read back or rebuilt).
            log.close().await.unwrap();
            let (log, _) = open_clean(dir.path(), config.clone()).await;
            assert_eq!(max(log.clone()).await, (at + 1, 7_000));
            crash(log).await;
            let (log, _) = open(dir.path(), config).await;
            assert_eq!(max(log).await, (at + 1, 7_000));
        });
    }

    fn log_append_time_is_stamped(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(1_700_000_000_000));
            let config = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..config() };
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            let info = log.append(sample_batch(5, 10, 42)).await.unwrap();
            assert_eq!(info.log_append_time, Some(1_700_000_000_000));
            let stored = &read_all(&log, 0, 1 << 20).await[0];
            let header = batch::validate(stored, usize::MAX).expect("CRC recomputed");
            assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(header.max_timestamp, 1_700_000_000_000);
            assert_eq!(log.offset_for_timestamp(1_700_000_000_000).await.unwrap().unwrap().offset, 0);
        });
    }

    fn a_topic_codec_recompresses_appends_and_producer_keeps_them(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let gzip = TopicCompression::Codec { codec: Compression::Gzip, level: None };
            let config = LogConfig { compression: gzip, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            let sent = sample_builder(20, 100, 7).build_compressed(Compression::Lz4).unwrap();
            let info = log.append(sent.clone()).await.unwrap();
            assert_eq!((info.base_offset, info.last_offset), (0, 19));
            let stored = &read_all(&log, 0, 1 << 20).await[0];
            let header = batch::validate_for_append(stored, usize::MAX).expect("valid CRC");
            assert_eq!(header.compression(), Some(Compression::Gzip));
            assert_eq!(header.records_count, 20);
            assert_eq!(header.max_timestamp, batch::BatchHeader::parse(&sent).unwrap().max_timestamp);
            // Back to `producer`: the next batch is stored exactly as sent.
            log.set_config(LogConfig { compression: TopicCompression::Producer, ..config });
            let info = log.append(sent.clone()).await.unwrap();
            let stored = &read_all(&log, info.base_offset, 1 << 20).await[0];
            assert_eq!(stored[12..], sent[12..]);
        });
    }

    fn rejected_appends_leave_the_log_untouched(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { max_message_bytes: 2000, segment_bytes: 5000, ..config() };
            let (log, _) = open(dir.path(), config).await;
            log.append(sample_batch(2, 10, 0)).await.unwrap();
            let size = log.size_bytes();
            let mut corrupt = sample_batch(2, 10, 0);
            let last = corrupt.len() - 1;
            corrupt[last] ^= 1;
            let too_large = sample_batch(1, 3000, 0);
            let mut two = sample_batch(10, 150, 0);
            two.extend(sample_batch(10, 150, 0));
            two.extend(sample_batch(10, 150, 0));
            two.extend(sample_batch(10, 150, 0));
            let mut trailing = sample_batch(1, 10, 0);
            trailing.extend_from_slice(&[0, 0, 0]);
            let cases: Vec<(Vec<u8>, ErrorCheck)> = vec![
                (corrupt, |e| matches!(e, AppendError::Batch(batch::BatchError::Corrupt(_)))),
                (too_large, |e| matches!(e, AppendError::Batch(batch::BatchError::TooLarge { .. }))),
                (two, |e| matches!(e, AppendError::RecordListTooLarge { .. })),
                (trailing, |e| matches!(e, AppendError::Batch(batch::BatchError::Corrupt(_)))),
                (Vec::new(), |e| matches!(e, AppendError::Batch(batch::BatchError::Invalid(_)))),
            ];
            for (records, expected) in cases {
                let err = log.append(records).await.unwrap_err();
                assert!(expected(&err), "unexpected {err:?}");
                assert_eq!((log.log_end_offset(), log.size_bytes()), (2, size));
            }
            assert_eq!(log.append(sample_batch(1, 10, 0)).await.unwrap().base_offset, 2);
            log.close().await.unwrap();
            assert_eq!(log.append(sample_batch(1, 10, 0)).await.unwrap_err(), AppendError::Closed);
        });
    }

    fn segment_ms_rolls_by_age(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(1_000_000));
            let config = LogConfig { segment_ms: Duration::from_secs(60), ..config() };
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            clock.set(1_059_999);
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            assert_eq!(log.segment_bases(), vec![0]);
            clock.set(1_060_000);
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            assert_eq!(log.segment_bases(), vec![0, 6]);
            assert_eq!(log.stats().segments_rolled, 1);
        });
    }

    fn a_segment_that_cannot_be_created_fails_the_log(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(1_000_000));
            let config = LogConfig { segment_ms: Duration::from_secs(60), ..config() };
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let (log, _) = Log::open(dir.path(), config.clone(), options).await.unwrap();
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            // The next roll's segment file can't be created: a directory is in its place.
            let blocker = dir.path().join(format!("{:020}.log", 6));
            std::fs::create_dir(&blocker).unwrap();
            clock.set(1_060_000);
            let err = log.append(sample_batch(3, 10, 0)).await.unwrap_err();
            assert!(matches!(err, AppendError::Storage(_)), "{err:?}");
            assert!(log.failure().is_some());
            let err = log.append(sample_batch(1, 10, 0)).await.unwrap_err();
            assert!(matches!(err, AppendError::Storage(_)), "{err:?}");
            // What was visible stays readable.
            assert_eq!(log.high_watermark(), 6);
            assert_eq!(read_all(&log, 0, 1 << 20).await.len(), 2);
            crash(log).await;
            std::fs::remove_dir(&blocker).unwrap();
            let (log, _) = open(dir.path(), config).await;
            assert_eq!((log.high_watermark(), log.log_end_offset()), (6, 6));
            assert_eq!(log.append(sample_batch(1, 10, 0)).await.unwrap().base_offset, 6);
        });
    }

    fn always_acks_after_sync_with_group_commit(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { flush: FlushPolicy::Always, ..config() };
            let (log, _) = open(dir.path(), config).await;
            let info = log.append(sample_batch(1, 10, 0)).await.unwrap();
            assert_eq!(log.durable_offset(), info.last_offset + 1);
            let before = log.stats();
            // 64 appenders at once: each acknowledged only when durable, few syncs in all.
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let log = log.clone();
                    rt::spawn_local(async move {
                        let info = log.append(sample_batch(10, 1024, i)).await.unwrap();
                        assert!(log.durable_offset() > info.last_offset);
                        info
                    })
                })
                .collect();
            let mut offsets = Vec::new();
            for task in tasks {
                offsets.push(task.await.base_offset);
            }
            offsets.sort_unstable();
            assert_eq!(offsets, (0..64).map(|i| 1 + i * 10).collect::<Vec<_>>(), "dense offsets");
            // Without group commit this is 64. How many rounds it takes depends on how the
            // writes' completions spread over the syncs (usually 1-3 here, more on a loaded
            // machine), so the bound only demands real sharing; bench/RESULTS.md has the rate.
            let syncs = log.stats().fdatasyncs - before.fdatasyncs;
            assert!(syncs <= 16, "64 concurrent appends cost {syncs} fdatasyncs");
        });
    }

    fn appends_are_placed_in_call_order_not_poll_order(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { flush: FlushPolicy::Always, ..config() };
            let (log, _) = open(dir.path(), config).await;
            // Three appends started before any is polled, awaited in reverse: offsets follow
            // the calls (what a connection's pipelined produce requests rely on).
            let batches: Vec<_> = [(1, 2), (2, 3), (3, 1), (4, 1), (5, 1)]
                .iter()
                .map(|&(tag, count)| tagged_batch(tag, count, 10, 0))
                .collect();
            let first = log.append(batches[0].clone());
            let second = log.append(batches[1].clone());
            let third = log.append(batches[2].clone());
            assert_eq!(third.await.unwrap().base_offset, 5);
            assert_eq!(second.await.unwrap().base_offset, 2);
            assert_eq!(first.await.unwrap().base_offset, 0);
            // An append whose future is dropped unpolled still lands (its write is under way).
            drop(log.append(batches[3].clone()));
            let after = log.append(batches[4].clone()).await.unwrap();
            assert_eq!(after.base_offset, 7);
            assert_eq!(log.durable_offset(), 8);
            let bases = [0, 2, 5, 6, 7];
            let expected: Vec<_> = batches.into_iter().zip(bases).map(|(b, base)| stored(b, base)).collect();
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
        });
    }

    fn interval_flushes_in_the_background(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let flush = FlushPolicy::Interval { ms: Duration::from_millis(20), bytes: None };
            let (log, _) = open(dir.path(), LogConfig { flush, ..config() }).await;
            log.append(sample_batch(5, 10, 0)).await.unwrap();
            assert_eq!(log.durable_offset(), 0, "acknowledged before the flush");
            for _ in 0..200 {
                if log.durable_offset() == 5 {
                    break;
                }
                rt::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(log.durable_offset(), 5);
            // flush.bytes forces a sync long before flush.ms.
            let flush = FlushPolicy::Interval { ms: Duration::from_secs(3600), bytes: Some(1) };
            log.set_config(LogConfig { flush, ..config() });
            log.append(sample_batch(5, 10, 0)).await.unwrap();
            for _ in 0..200 {
                if log.durable_offset() == 10 {
                    break;
                }
                rt::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(log.durable_offset(), 10);
        });
    }

    fn never_policy_does_not_sync(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            for _ in 0..20 {
                log.append(sample_batch(5, 100, 0)).await.unwrap();
            }
            assert_eq!(log.stats().fdatasyncs, 0);
            log.sync().await.unwrap();
            assert_eq!(log.durable_offset(), 100);
            assert_eq!(log.stats().fdatasyncs, 1);
        });
    }

    fn torn_and_corrupt_tails_are_truncated(backend) {
        common::run(backend, || async {
            let mut rng = Rng(77);
            for round in 0..20 {
                let dir = tempfile::tempdir().unwrap();
                let config = LogConfig { segment_bytes: 16 << 10, index_interval_bytes: 512, ..config() };
                let (log, _) = open(dir.path(), config.clone()).await;
                let mut expected = Vec::new();
                for tag in 0..40 {
                    let batch = tagged_batch(tag, 1 + rng.below(5) as usize, rng.below(1500) as usize, 0);
                    let info = log.append(batch.clone()).await.unwrap();
                    expected.push(stored(batch, info.base_offset));
                }
                let bases = log.segment_bases();
                crash(log).await;
                let last = *bases.last().unwrap();
                let path = dir.path().join(format!("{last:020}.log"));
                let bytes = std::fs::read(&path).unwrap();
                let cut = rng.below(bytes.len() as u64 + 1) as usize;
                // Whole batches of the last segment that end before the damage survive.
                let mut survivors = expected.iter().filter(|b| header(b).base_offset < last).count();
                let mut at = 0;
                for b in expected.iter().filter(|b| header(b).base_offset >= last) {
                    if at + b.len() > cut {
                        break;
                    }
                    at += b.len();
                    survivors += 1;
                }
                let damaged_len = if round % 2 == 0 {
                    std::fs::write(&path, &bytes[..cut]).unwrap();
                    cut
                } else {
                    // Flip a CRC-covered byte of the first batch that doesn't survive.
                    let Some(len) = expected.iter().find(|b| header(b).base_offset >= last).and(
                        batch::declared_total_len(&bytes[at.min(bytes.len())..])) else { continue };
                    let mut damaged = bytes.clone();
                    damaged[at + 21 + rng.below(len as u64 - 21) as usize] ^= 0x5a;
                    std::fs::write(&path, &damaged).unwrap();
                    bytes.len()
                };
                let (log, report) = open(dir.path(), config.clone()).await;
                assert_eq!(report.bytes_truncated, (damaged_len - at) as u64, "round {round}: {report:?}");
                let back = read_all(&log, 0, 1 << 20).await;
                assert_eq!(back, expected[..survivors], "round {round}");
                // The log goes on from the truncation point with dense offsets.
                let next = log.append(sample_batch(1, 1, 0)).await.unwrap().base_offset;
                let want = expected[..survivors].last().map_or(0, |b| header(b).last_offset() + 1);
                assert_eq!(next, want);
            }
        });
    }

    fn damage_in_an_older_segment_drops_the_rest(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            for i in 0..30 {
                log.append(sample_batch(2, 500, i)).await.unwrap();
            }
            let bases = log.segment_bases();
            assert!(bases.len() >= 4);
            crash(log).await;
            // No checkpoint past segment 0: everything is scanned; damage segment 1.
            std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
            let path = dir.path().join(format!("{:020}.log", bases[1]));
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[100] ^= 0xff;
            std::fs::write(&path, &bytes).unwrap();
            let (log, report) = open(dir.path(), config).await;
            assert_eq!(report.segments_removed, bases.len() - 2, "{report:?}");
            assert_eq!(log.segment_bases(), bases[..2].to_vec());
            assert_eq!(log.high_watermark(), bases[1], "segment 1 lost its first batch");
            assert!(!report.problems.is_empty());
        });
    }

    fn writes_lost_before_a_roll_drop_the_later_segments(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            let batch_len = sample_batch(2, 500, 0).len() as u64;
            for i in 0..30 {
                log.append(sample_batch(2, 500, i)).await.unwrap();
            }
            let bases = log.segment_bases();
            crash(log).await;
            // As if the last batch of the second-to-last segment was in flight when the kill
            // came: its bytes never reached the file, though the next segment exists.
            std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
            let victim = dir.path().join(format!("{:020}.log", bases[bases.len() - 2]));
            let len = std::fs::metadata(&victim).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&victim).unwrap().set_len(len - batch_len).unwrap();
            let (log, report) = open(dir.path(), config).await;
            assert_eq!(report.segments_removed, 1, "{report:?}");
            let end = bases[bases.len() - 1] - 2;
            assert_eq!((log.high_watermark(), log.log_end_offset()), (end, end));
            assert_eq!(read_all(&log, 0, 1 << 20).await.len() as i64, end / 2, "dense");
            assert_eq!(log.append(sample_batch(1, 1, 0)).await.unwrap().base_offset, end);
        });
    }

    fn a_clean_marker_without_a_clean_close_still_recovers(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(sample_batch(3, 10, 0)).await.unwrap();
            crash(log).await;
            // The data directory says "clean" (another run ended cleanly without opening this
            // log), but the log's own checkpoint does not.
            let (log, report) = open_clean(dir.path(), config()).await;
            assert!(!report.clean_shutdown);
            assert_eq!(report.segments_scanned, 1);
            assert_eq!(log.high_watermark(), 3);
        });
    }

    fn a_damaged_tail_after_a_clean_close_is_rescanned(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            for _ in 0..5 {
                log.append(sample_batch(3, 100, 0)).await.unwrap();
            }
            log.close().await.unwrap();
            drop(log);
            let path = dir.path().join(format!("{:020}.log", 0));
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 5;
            bytes[last] ^= 0xff;
            std::fs::write(&path, &bytes).unwrap();
            let (log, report) = open_clean(dir.path(), config()).await;
            assert!(report.clean_shutdown);
            assert!(!report.problems.is_empty(), "{report:?}");
            assert_eq!(log.high_watermark(), 12, "the damaged last batch is cut");
            assert_eq!(log.append(sample_batch(1, 1, 0)).await.unwrap().base_offset, 12);
        });
    }

    fn a_log_start_past_the_recovered_end_starts_an_empty_segment(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), config()).await;
            log.append(sample_batch(10, 10, 0)).await.unwrap();
            crash(log).await;
            let checkpoint = "runnel-partition-checkpoint 1\nrecovery_point 0\nlog_start_offset 50\nclosed_cleanly 0\n";
            std::fs::write(dir.path().join("checkpoint"), checkpoint).unwrap();
            let (log, report) = open(dir.path(), config()).await;
            assert!(!report.problems.is_empty());
            assert_eq!(log.segment_bases(), vec![50]);
            assert_eq!((log.log_start_offset(), log.high_watermark()), (50, 50));
            assert_eq!(log.append(sample_batch(1, 1, 0)).await.unwrap().base_offset, 50);
        });
    }

    fn missing_or_bad_indexes_are_rebuilt(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 3000, index_interval_bytes: 256, ..config() };
            let (log, _) = open(dir.path(), config.clone()).await;
            let mut expected = Vec::new();
            for tag in 0..40 {
                let batch = tagged_batch(tag, 2, 100, tag as i64);
                let info = log.append(batch.clone()).await.unwrap();
                expected.push(stored(batch, info.base_offset));
            }
            log.close().await.unwrap();
            let bases = log.segment_bases();
            let index = |base: i64, suffix: &str| dir.path().join(format!("{base:020}.{suffix}"));
            let good = std::fs::read(index(bases[1], "index")).unwrap();
            assert!(!good.is_empty());
            drop(log);
            std::fs::remove_file(index(bases[0], "index")).unwrap();
            std::fs::write(index(bases[1], "index"), [1, 2, 3]).unwrap();
            let backwards: Vec<u8> = [(5i64, 1u32), (3, 2)]
                .iter()
                .flat_map(|(ts, rel)| ts.to_be_bytes().into_iter().chain(rel.to_be_bytes()))
                .collect();
            std::fs::write(index(bases[2], "timeindex"), backwards).unwrap();
            let (log, report) = open_clean(dir.path(), config).await;
            assert_eq!(report.indexes_rebuilt, 3, "{report:?}");
            assert_eq!(std::fs::read(index(bases[1], "index")).unwrap(), good, "rewritten as before");
            assert_eq!(read_all(&log, 0, 1 << 20).await, expected);
            assert_eq!(log.offset_for_timestamp(20).await.unwrap().unwrap().offset, 39);
        });
    }

    fn retention_by_size_time_and_delete_records(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let clock = Rc::new(Cell::new(100_000));
            let config = LogConfig { segment_bytes: 4096, ..config() };
            let options = OpenOptions { clock: Clock::Manual(clock.clone()), ..OpenOptions::default() };
            let (log, _) = Log::open(dir.path(), config.clone(), options.clone()).await.unwrap();
            for i in 0..40 {
                log.append(sample_batch(2, 500, i * 1000)).await.unwrap();
            }
            let bases = log.segment_bases();
            let segments = bases.len();
            assert!(segments >= 8);
            // Nothing configured: nothing goes.
            assert_eq!(log.enforce_retention().await.unwrap(), 0);
            // By size: keep at least 3 segments' worth.
            let per_segment = log.size_bytes() / segments as u64;
            log.set_config(LogConfig { retention_bytes: Some(3 * per_segment), ..config.clone() });
            let deleted = log.enforce_retention().await.unwrap();
            assert!(deleted >= segments - 4, "deleted {deleted} of {segments}");
            assert!(log.size_bytes() >= 3 * per_segment);
            assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
            assert!(!dir.path().join(format!("{:020}.log", bases[0])).exists());
            let start = log.log_start_offset();
            assert!(matches!(log.read(start - 1, 100, true).await, Err(ReadError::OffsetOutOfRange { .. })));
            // By time: records are stamped 0..39_000 ms; at 200 s with 70 s retention, every
            // sealed segment is too old.
            clock.set(200_000);
            log.set_config(LogConfig { retention_ms: Some(Duration::from_secs(70)), ..config.clone() });
            log.enforce_retention().await.unwrap();
            let active = *log.segment_bases().last().unwrap();
            assert_eq!(log.segment_bases(), vec![active], "only the active segment is left");
            // DeleteRecords moves the start inside the active segment, and it survives a restart.
            let hw = log.high_watermark();
            assert!(matches!(log.delete_records(hw + 1).await, Err(ReadError::OffsetOutOfRange { .. })));
            assert_eq!(log.delete_records(hw - 1).await.unwrap(), hw - 1);
            assert_eq!(log.log_start_offset(), hw - 1);
            assert!(log.read(hw - 1, 1 << 20, true).await.unwrap().bytes > 0);
            crash(log).await;
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            assert_eq!(log.log_start_offset(), hw - 1);
            assert_eq!(log.delete_records(-1).await.unwrap(), hw);
        });
    }

    fn housekeeping_applies_retention_in_the_background(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 2048, retention_bytes: Some(1), ..config() };
            let (log, _) = open(dir.path(), config).await;
            for _ in 0..10 {
                log.append(sample_batch(2, 500, 0)).await.unwrap();
            }
            assert!(log.segment_bases().len() > 3);
            let set = LogSet::new();
            set.insert("t-0", log.clone());
            rt::spawn_local(set.clone().run_housekeeping(Duration::from_millis(5)));
            for _ in 0..200 {
                if log.segment_bases().len() == 1 {
                    break;
                }
                rt::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(log.segment_bases().len(), 1);
            assert_eq!(set.close_all().await, 0);
        });
    }
}
