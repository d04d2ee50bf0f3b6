//! Compaction on a real log: a keyed workload ends with the newest value per key, tombstones
//! go after `delete.retention.ms`, a crash at any step of a swap leaves a readable, correct
//! log, reads planned before a pass still read what they planned, and the refusals of a
//! compacted topic. Every test runs on both backends.

mod common;

use common::{crash_log as crash, open_log as open, quiet_log_config};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use runnel_engine::log::batch::{BatchError, BatchHeader, Compression, HEADER_LEN};
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::compaction::{Cleaner, CleanerConfig, Trigger};
use runnel_engine::log::{
    codec, records, AppendError, CleanupPolicy, Clock, Log, LogConfig, OpenOptions, ReadError,
};

/// One record as read back: offset, key, value (`None`: a tombstone).
type Seen = (i64, String, Option<String>);

fn compacted_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        segment_bytes: 4096,
        min_cleanable_dirty_ratio: 0.01,
        delete_retention_ms: 60_000,
        ..quiet_log_config()
    }
}

fn cleaner() -> Cleaner {
    Cleaner::new(&CleanerConfig::default())
}

fn keyed_batch(records: &[(String, Option<String>)], codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for (key, value) in records {
        builder.push(&Record {
            key: Some(key.clone().into_bytes()),
            value: value.clone().map(String::into_bytes),
            headers: vec![],
            timestamp: 1_000,
        });
    }
    match codec {
        Compression::None => builder.build(),
        codec => builder.build_compressed(codec).unwrap(),
    }
}

/// Every record in the log, read from its start through the read path.
async fn read_all(log: &Log) -> Vec<Seen> {
    let read = log
        .read(log.log_start_offset(), u64::MAX, true)
        .await
        .expect("the log reads");
    let bytes = read.copy_out().await.unwrap();
    parse(&bytes)
}

fn parse(mut bytes: &[u8]) -> Vec<Seen> {
    let mut seen = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let header = BatchHeader::parse(bytes).unwrap();
        let len = header.total_len().unwrap();
        let payload = &bytes[HEADER_LEN..len];
        let inflated = match header.compression().unwrap() {
            Compression::None => payload.to_vec(),
            c => codec::decompress(c, payload, 1 << 26).unwrap(),
        };
        assert!(header.records_count as i64 <= header.last_offset_delta as i64 + 1);
        for record in records::walk(&inflated) {
            let record = record.unwrap();
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
            seen.push((
                header.base_offset + i64::from(record.offset_delta),
                record.key.map(text).expect("keyed"),
                (!record.value_is_null).then(|| {
                    let rest = record.bytes;
                    text(&value_of(rest))
                }),
            ));
        }
        bytes = &bytes[len..];
    }
    seen
}

/// The value bytes of a record (`bytes` the whole record): the walk tells nullness only.
fn value_of(record: &[u8]) -> Vec<u8> {
    fn varint(b: &[u8]) -> (i64, usize) {
        let (mut raw, mut i) = (0u64, 0);
        loop {
            raw |= u64::from(b[i] & 0x7f) << (7 * i);
            i += 1;
            if b[i - 1] & 0x80 == 0 {
                return ((raw >> 1) as i64 ^ -((raw & 1) as i64), i);
            }
        }
    }
    let (_, mut at) = varint(record);
    at += 1; // attributes
    at += varint(&record[at..]).1; // timestamp delta
    at += varint(&record[at..]).1; // offset delta
    let (key_len, used) = varint(&record[at..]);
    at += used + key_len.max(0) as usize;
    let (value_len, used) = varint(&record[at..]);
    at += used;
    record[at..at + value_len as usize].to_vec()
}

/// The newest record per key in `seen`, tombstones included.
fn latest(seen: &[Seen]) -> BTreeMap<String, Option<String>> {
    seen.iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Writes `rounds` rounds over `keys` keys: values overwritten, every seventh write a
/// tombstone; returns the model (newest value per key).
async fn keyed_workload(log: &Log, keys: usize, rounds: usize) -> BTreeMap<String, Option<String>> {
    let mut model = BTreeMap::new();
    let mut n = 0usize;
    for round in 0..rounds {
        let mut batch = Vec::new();
        for k in 0..keys {
            n += 1;
            let key = format!("key-{:03}", (k * 7 + round) % keys);
            let value = (n % 7 != 0).then(|| format!("v{round}-{n}-{}", "x".repeat(n % 40)));
            model.insert(key.clone(), value.clone());
            batch.push((key, value));
            if batch.len() == 5 {
                let codec = [Compression::None, Compression::Lz4][n % 2];
                log.append(keyed_batch(&batch, codec)).await.unwrap();
                batch.clear();
            }
        }
        if !batch.is_empty() {
            log.append(keyed_batch(&batch, Compression::None))
                .await
                .unwrap();
        }
    }
    model
}

/// Runs passes until none is due; returns how many ran.
async fn clean_fully(log: &Log, cleaner: &mut Cleaner) -> usize {
    let mut passes = 0;
    while log.clean(cleaner).await.expect("a pass succeeds").is_some() {
        passes += 1;
        assert!(passes < 100, "passes keep being due");
    }
    passes
}

/// Offsets increase, and no key appears twice below `clean_end`.
fn check_compacted(seen: &[Seen], clean_end: i64) {
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    let mut keys = std::collections::HashSet::new();
    for (offset, key, _) in seen.iter().filter(|s| s.0 < clean_end) {
        assert!(
            keys.insert(key.clone()),
            "{key} twice in the clean section (at {offset})"
        );
    }
}

/// Rolls the active segment by appending past segment.ms, so everything before is cleanable.
async fn seal_with_marker(log: &Log, clock: &Rc<Cell<i64>>) {
    clock.set(clock.get() + 1_000);
    let mut config = log.config();
    let segment_ms = config.segment_ms;
    config.segment_ms = Duration::from_millis(1);
    log.set_config(config.clone());
    log.append(keyed_batch(
        &[("marker".into(), Some("m".into()))],
        Compression::None,
    ))
    .await
    .unwrap();
    config.segment_ms = segment_ms;
    log.set_config(config);
    log.quiesce().await;
}

fn manual_clock() -> (Rc<Cell<i64>>, OpenOptions) {
    let ms = Rc::new(Cell::new(1_000_000));
    let options = OpenOptions {
        clock: Clock::Manual(ms.clone()),
        ..OpenOptions::default()
    };
    (ms, options)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

on_both_backends! {
    fn overwrites_and_tombstones_end_with_the_newest_value_per_key(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let (log, _) = Log::open(dir.path(), compacted_config(), options.clone()).await.unwrap();
            let model = keyed_workload(&log, 60, 20).await;
            seal_with_marker(&log, &clock).await;
            let before = read_all(&log).await;
            assert_eq!(before.len(), 60 * 20 + 1);
            let size_before = log.size_bytes();

            let mut cleaner = cleaner();
            assert!(clean_fully(&log, &mut cleaner).await >= 1);
            let after = read_all(&log).await;
            let mut expected = model.clone();
            expected.insert("marker".into(), Some("m".into()));
            assert_eq!(latest(&after), expected, "the newest value per key, tombstones too");
            check_compacted(&after, log.log_end_offset() - 1);
            assert_eq!(after.len(), expected.len(), "one record per key");
            assert!(log.size_bytes() < size_before / 4, "{} of {size_before}", log.size_bytes());
            let stats = log.cleaner_stats();
            assert!(stats.runs >= 1 && stats.records_removed >= 60 * 19);
            assert_eq!(log.dirty_ratio(), Some(0.0));

            // Tombstones stay for delete.retention.ms after the pass that first saw them...
            clock.set(clock.get() + 59_000);
            assert!(log.clean(&mut cleaner).await.unwrap().is_none());
            // ...and go with the first pass after.
            clock.set(clock.get() + 2_000);
            let report = log.clean(&mut cleaner).await.unwrap().expect("the horizon passed");
            assert_eq!(report.trigger, Trigger::TombstoneHorizon);
            let swept = read_all(&log).await;
            let live: BTreeMap<_, _> = expected.iter().filter(|(_, v)| v.is_some()).map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(latest(&swept), live);
            assert!(swept.iter().all(|(_, _, v)| v.is_some()), "no tombstone left");
            assert!(log.clean(&mut cleaner).await.unwrap().is_none(), "nothing more to do");

            // The compacted log reopens (after a crash: every segment scanned) the same, and
            // takes appends.
            crash(log).await;
            let (log, report) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
            assert!(report.problems.is_empty(), "{report:?}");
            assert_eq!(report.bytes_truncated, 0);
            assert_eq!(read_all(&log).await, swept);
            log.append(keyed_batch(&[("key-001".into(), Some("again".into()))], Compression::None)).await.unwrap();
            log.close().await.unwrap();
        });
    }

    fn a_small_offset_map_cleans_in_several_passes(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let (log, _) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
            let model = keyed_workload(&log, 100, 6).await;
            seal_with_marker(&log, &clock).await;
            // Room for 14 keys a pass.
            let mut cleaner = Cleaner::new(&CleanerConfig { dedupe_buffer_bytes: 0, ..CleanerConfig::default() });
            assert!(clean_fully(&log, &mut cleaner).await > 3);
            let after = read_all(&log).await;
            let mut expected = model;
            expected.insert("marker".into(), Some("m".into()));
            assert_eq!(latest(&after), expected);
            assert!(after.len() < 100 * 6 / 2, "{} records left", after.len());
            log.close().await.unwrap();
        });
    }

    fn reads_planned_before_a_pass_read_what_they_planned(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let (log, _) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
            keyed_workload(&log, 30, 10).await;
            seal_with_marker(&log, &clock).await;
            let planned = log.read(0, u64::MAX, true).await.unwrap();
            log.clean(&mut cleaner()).await.unwrap().expect("a pass");
            let old = parse(&planned.copy_out().await.unwrap());
            assert_eq!(old.len(), 30 * 10 + 1, "the old segments, whole");
            // Any fetch position still reads a valid suffix: a consumer resuming anywhere.
            let now = read_all(&log).await;
            for (offset, _, _) in old.iter().step_by(17) {
                let read = log.read(*offset, 10_000, true).await.unwrap();
                // Whole batches: a consumer skips records below its position.
                let part: Vec<Seen> = parse(&read.copy_out().await.unwrap())
                    .into_iter()
                    .filter(|s| s.0 >= *offset)
                    .collect();
                let expected: Vec<Seen> = now.iter().filter(|s| s.0 >= *offset).cloned().collect();
                assert!(!part.is_empty());
                assert_eq!(part[..], expected[..part.len()], "from {offset}");
            }
            log.close().await.unwrap();
        });
    }

    fn compacted_topics_refuse_keyless_records_and_delete_records(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = open(dir.path(), compacted_config()).await;
            let mut builder = BatchBuilder::new();
            builder.push(&Record { key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), ..Record::default() });
            builder.push(&Record { key: None, value: Some(b"v".to_vec()), ..Record::default() });
            for batch in [builder.build(), builder.build_compressed(Compression::Gzip).unwrap()] {
                assert!(matches!(log.append(batch).await, Err(AppendError::Batch(BatchError::Invalid(_)))));
            }
            assert_eq!(log.log_end_offset(), 0, "nothing written");
            log.append(keyed_batch(&[("k".into(), None)], Compression::None)).await.unwrap();
            assert!(matches!(log.delete_records(1).await, Err(ReadError::PolicyViolation(_))));
            // compact,delete allows both retention and DeleteRecords.
            log.set_config(LogConfig { cleanup_policy: CleanupPolicy { delete: true, compact: true }, ..compacted_config() });
            assert_eq!(log.delete_records(1).await.unwrap(), 1);
            log.close().await.unwrap();
        });
    }

    fn an_interrupted_swap_is_finished_or_discarded_at_open(backend) {
        common::run(backend, || async {
            let root = tempfile::tempdir().unwrap();
            let original = root.path().join("original");
            let (clock, options) = manual_clock();
            let (log, _) = Log::open(&original, compacted_config(), options.clone()).await.unwrap();
            keyed_workload(&log, 40, 12).await;
            seal_with_marker(&log, &clock).await;
            let expected_before = read_all(&log).await;
            log.close().await.unwrap();
            let cleaned = root.path().join("cleaned");
            copy_dir(&original, &cleaned);
            // Written in 4 KiB segments, cleaned into 64 KiB ones: small segments merge.
            let merging = LogConfig { segment_bytes: 64 << 10, ..compacted_config() };
            let (log, _) = Log::open(&cleaned, merging, options.clone()).await.unwrap();
            log.clean(&mut cleaner()).await.unwrap().expect("a pass");
            let expected_after = read_all(&log).await;
            let bases_after = log.segment_bases();
            log.close().await.unwrap();
            let first = bases_after[0];
            let cleaned_log = std::fs::read(cleaned.join(format!("{first:020}.log"))).unwrap();
            let old_bases: Vec<i64> = list(&original, ".log");
            let replaced: Vec<i64> = old_bases.iter().copied().filter(|b| *b < bases_after[1]).collect();
            assert!(replaced.len() > 1, "small segments merged: {replaced:?}");

            // Each crash point, as the directory would be left; `after` says whether the
            // swap committed.
            type Damage = fn(&Path, i64, &[i64], &[u8]);
            let cases: [(&str, Damage, bool); 7] = [
                ("cleaned file written, not committed", |d, first, _, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.cleaned")), bytes).unwrap();
                }, false),
                ("half-written cleaned file", |d, first, _, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.cleaned")), &bytes[..bytes.len() / 2]).unwrap();
                }, false),
                ("indexes renamed to swap, log not yet", |d, first, _, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.cleaned")), bytes).unwrap();
                    std::fs::write(d.join(format!("{first:020}.index.swap")), [0u8; 8]).unwrap();
                    std::fs::write(d.join(format!("{first:020}.timeindex.swap")), [0u8; 12]).unwrap();
                }, false),
                ("committed with its indexes", |d, first, _, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.swap")), bytes).unwrap();
                    for suffix in ["index", "timeindex"] {
                        let cleaned = d.parent().unwrap().join("cleaned");
                        std::fs::copy(
                            cleaned.join(format!("{first:020}.{suffix}")),
                            d.join(format!("{first:020}.{suffix}.swap")),
                        )
                        .unwrap();
                    }
                }, true),
                ("committed, nothing removed", |d, first, _, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.swap")), bytes).unwrap();
                }, true),
                ("committed, some old segments removed", |d, first, replaced, bytes| {
                    std::fs::write(d.join(format!("{first:020}.log.swap")), bytes).unwrap();
                    for base in &replaced[1..replaced.len() / 2 + 1] {
                        for suffix in ["log", "index", "timeindex"] {
                            let _ = std::fs::remove_file(d.join(format!("{base:020}.{suffix}")));
                        }
                    }
                    let _ = std::fs::remove_file(d.join(format!("{first:020}.index")));
                }, true),
                ("swapped in, indexes not written", |d, first, replaced, bytes| {
                    for base in replaced {
                        for suffix in ["log", "index", "timeindex"] {
                            let _ = std::fs::remove_file(d.join(format!("{base:020}.{suffix}")));
                        }
                    }
                    std::fs::write(d.join(format!("{first:020}.log")), bytes).unwrap();
                }, true),
            ];
            for (i, (what, damage, committed)) in cases.into_iter().enumerate() {
                let dir = root.path().join(format!("case-{i}"));
                copy_dir(&original, &dir);
                // Raised before any swap, as the pass does.
                std::fs::copy(cleaned.join("cleaner-checkpoint"), dir.join("cleaner-checkpoint")).unwrap();
                std::fs::remove_file(dir.join("checkpoint")).unwrap();
                damage(&dir, first, &replaced, &cleaned_log);
                let (log, report) = Log::open(&dir, compacted_config(), options.clone()).await.unwrap();
                let expected = if committed { &expected_after } else { &expected_before };
                assert_eq!(&read_all(&log).await, expected, "{what}: {report:?}");
                assert!(report.problems.is_empty(), "{what}: {report:?}");
                let swap_left = what.starts_with("committed");

                assert_eq!(report.swaps_completed, usize::from(swap_left), "{what}");
                let leftovers: Vec<String> = std::fs::read_dir(&dir).unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                    .collect();
                assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
                // And it cleans on from there to the same result.
                clean_fully(&log, &mut cleaner()).await;
                assert_eq!(latest(&read_all(&log).await), latest(&expected_after), "{what}");
                log.close().await.unwrap();
            }
        });
    }

    fn a_pass_that_cannot_swap_leaves_its_section_dirty(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let (log, _) = Log::open(dir.path(), compacted_config(), options.clone()).await.unwrap();
            let model = keyed_workload(&log, 30, 8).await;
            seal_with_marker(&log, &clock).await;
            let before = read_all(&log).await;
            // A closing log refuses swaps: the pass maps and cleans, swaps nothing, and the
            // first dirty offset stays, so the next pass maps the same section again.
            log.close().await.unwrap();
            let report = log.clean(&mut cleaner()).await.unwrap().expect("a pass was due");
            assert_eq!((report.segments_cleaned, report.first_dirty), (0, 0));
            assert_eq!(read_all(&log).await, before);
            let checkpoint = std::fs::read_to_string(dir.path().join("cleaner-checkpoint")).unwrap();
            assert!(checkpoint.contains("first_dirty 0\n"), "{checkpoint}");
            assert!(!checkpoint.contains("compacted_below 0\n"), "{checkpoint}");
            let leftovers = std::fs::read_dir(dir.path()).unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().contains(".cleaned"))
                .count();
            assert_eq!(leftovers, 0, "the cleaned copies were discarded");
            let (log, _) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
            clean_fully(&log, &mut cleaner()).await;
            let mut expected = model;
            expected.insert("marker".into(), Some("m".into()));
            let after = read_all(&log).await;
            assert_eq!(latest(&after), expected);
            assert_eq!(after.len(), expected.len());
            log.close().await.unwrap();
        });
    }

    fn max_compaction_lag_rolls_the_active_segment(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let config = LogConfig {
                segment_bytes: 1 << 30,
                min_cleanable_dirty_ratio: 0.99,
                max_compaction_lag_ms: 5_000,
                ..compacted_config()
            };
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            let overwrite = |v: &str| keyed_batch(&[("k".into(), Some(v.into()))], Compression::None);
            log.append(overwrite("1")).await.unwrap();
            log.append(overwrite("2")).await.unwrap();
            assert_eq!(log.segment_bases().len(), 1);
            // Past the lag, the next append rolls (segment.ms alone is a week), so the cleaner
            // can reach the superseded record.
            clock.set(clock.get() + 5_000);
            log.append(overwrite("3")).await.unwrap();
            log.quiesce().await;
            assert_eq!(log.segment_bases().len(), 2);
            log.clean(&mut cleaner()).await.unwrap().expect("the sealed segment is cleanable");
            let seen = read_all(&log).await;
            assert_eq!(seen.iter().map(|s| s.2.clone().unwrap()).collect::<Vec<_>>(), ["2", "3"]);
            log.close().await.unwrap();
        });
    }

    fn compact_only_logs_keep_old_segments_past_retention(backend) {
        common::run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let (clock, options) = manual_clock();
            let config = LogConfig { retention_ms: Some(Duration::from_millis(1)), retention_bytes: Some(1), ..compacted_config() };
            let (log, _) = Log::open(dir.path(), config, options).await.unwrap();
            keyed_workload(&log, 20, 5).await;
            seal_with_marker(&log, &clock).await;
            clock.set(clock.get() + 10_000);
            assert_eq!(log.enforce_retention().await.unwrap(), 0);
            let size = dir_size(dir.path());
            assert!(size > 0);
            log.close().await.unwrap();
        });
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn list(dir: &Path, suffix: &str) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(suffix)?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

mod producers_and_the_shard_cleaner {
    use super::*;
    use runnel_engine::log::LogSet;

    on_both_backends! {
        fn an_idempotent_producers_last_batch_survives_compaction(backend) {
            common::run(backend, || async {
                let dir = tempfile::tempdir().unwrap();
                let (clock, options) = manual_clock();
                let (log, _) = Log::open(dir.path(), compacted_config(), options.clone()).await.unwrap();
                let mut builder = BatchBuilder::new().producer(77, 0, 0);
                builder.push(&Record { key: Some(b"p".to_vec()), value: Some(b"1".to_vec()), ..Record::default() });
                let produced = log.append(builder.build()).await.unwrap();
                keyed_workload(&log, 10, 3).await;
                // Supersedes the producer's only record.
                log.append(keyed_batch(&[("p".into(), Some("2".into()))], Compression::None)).await.unwrap();
                seal_with_marker(&log, &clock).await;
                clean_fully(&log, &mut cleaner()).await;
                assert!(!read_all(&log).await.iter().any(|s| s.0 == produced.base_offset), "its record went");
                // The batch stays, empty, so the producer's sequence survives a rebuild from
                // the log alone.
                crash(log).await;
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let path = entry.unwrap().path();
                    if path.extension().is_some_and(|e| e == "snapshot") {
                        std::fs::remove_file(path).unwrap();
                    }
                }
                let (log, _) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
                let mut next = BatchBuilder::new().producer(77, 0, 1);
                next.push(&Record { key: Some(b"p".to_vec()), value: Some(b"3".to_vec()), ..Record::default() });
                log.append(next.build()).await.expect("sequence 1 follows sequence 0");
                log.close().await.unwrap();
            });
        }

        fn the_shard_cleaner_compacts_its_logs_in_the_background(backend) {
            common::run(backend, || async {
                let dir = tempfile::tempdir().unwrap();
                let (clock, options) = manual_clock();
                let (log, _) = Log::open(dir.path(), compacted_config(), options).await.unwrap();
                keyed_workload(&log, 20, 10).await;
                seal_with_marker(&log, &clock).await;
                let logs = LogSet::<String>::new();
                logs.insert("t-0".into(), log.clone());
                let config = CleanerConfig { backoff: Duration::from_millis(5), ..CleanerConfig::default() };
                let cleaner = runnel_engine::rt::spawn_local(logs.clone().run_cleaner(config));
                for _ in 0..2000 {
                    if log.cleaner_stats().runs > 0 && log.dirty_ratio() == Some(0.0) {
                        break;
                    }
                    runnel_engine::rt::sleep(Duration::from_millis(5)).await;
                }
                assert!(log.cleaner_stats().runs > 0, "the cleaner ran");
                assert_eq!(read_all(&log).await.len(), 21, "one record per key");
                drop(cleaner);
                log.close().await.unwrap();
            });
        }
    }
}
