//! Storage engine benchmarks (issue 3), on the io_uring backend when available:
//! - `append_1KiB_x100`: appends of one RecordBatch of 100 records of 1 KiB (~103 KiB) under
//!   each flush policy, from one appender at a time and from several concurrent ones; prints
//!   how many fdatasyncs the group commit needed per append;
//! - `validate_1KiB_x1000`, `append_1KiB_x1000`: the append path's record checks per codec
//!   (decompression and the record walk), alone and inside an append;
//! - `append_idempotence`: the same 1 KiB x 100 appends without a producer id and from an
//!   idempotent producer (sequence checked and recorded per append): what idempotence costs;
//! - `recompress_1KiB_x1000`: broker-side recompression into a topic's `compression.type`;
//! - `index_lookup`: offset and time index lookups in a full-size index (1 GiB segment, an
//!   entry per 4 KiB);
//! - `read_planning`: `Log::read` of up to 1 MiB from a random offset (large and small batches);
//! - `recovery`: reopening a 256 MiB log after a crash (everything rescanned, page cache
//!   warm). Criterion's throughput is the recovery rate: 1 GiB takes 1 / rate.
//!
//! Data goes to `$RUNNEL_BENCH_DIR` (default: the system temp dir), which should be on the
//! disk the broker would use; compare with `scripts/disk-limits.sh` run the same day.
//!
//! Run: `cargo bench -p runnel-bench --bench log`

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch;
use runnel_engine::log::batch::Compression;
use runnel_engine::log::builder::{sample_batch, sample_builder, BatchBuilder, Record};
use runnel_engine::log::index::{OffsetIndex, TimeIndex};
use runnel_engine::log::{recompress, Log, LogConfig, OpenOptions, TopicCompression};
use runnel_engine::rt::{self, Runtime, RuntimeHandle};

const RECORDS: usize = 100;
const VALUE: usize = 1024;
const CONCURRENT_APPENDERS: u64 = 64;
/// Records in the batches of the per-codec validation benchmarks (1000 x 1 KiB, ~1 MiB).
const LARGE_RECORDS: usize = 1000;
/// max.message.bytes for those: the uncompressed batch is just over the 1 MiB default.
const LARGE_MAX: usize = 2 << 20;

thread_local! {
    /// The log under test. `Log` is `!Send`: it lives on shard 0 and the benchmarks reach it
    /// through closures run there.
    static LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
}

fn current_log() -> Log {
    LOG.with(|slot| {
        slot.borrow()
            .clone()
            .expect("a log was opened on this shard")
    })
}

fn runtime() -> Runtime {
    runnel_bench::engine_runtime()
}

fn bench_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("RUNNEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = root.join(format!("runnel-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Opens (replacing any earlier one) the shard's log in a fresh directory.
fn open_log(handle: &RuntimeHandle, dir: PathBuf, config: LogConfig) {
    handle
        .run_on(0, move || async move {
            if let Some(old) = LOG.with(|slot| slot.borrow_mut().take()) {
                old.close().await.unwrap();
                let _ = std::fs::remove_dir_all(old.dir());
            }
            let (log, _) = Log::open(dir, config, OpenOptions::default())
                .await
                .unwrap();
            LOG.with(|slot| *slot.borrow_mut() = Some(log));
        })
        .unwrap();
}

fn close_log(handle: &RuntimeHandle) {
    handle
        .run_on(0, || async {
            if let Some(log) = LOG.with(|slot| slot.borrow_mut().take()) {
                log.close().await.unwrap();
                let _ = std::fs::remove_dir_all(log.dir());
            }
        })
        .unwrap();
}

/// 1 GiB segments: a sample (about 300 MiB) never rolls, so no sealing fdatasync or index
/// write falls inside the timing, as none does in fio's page-cache figure.
fn append_config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        segment_bytes: 1 << 30,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let runtime = runtime();
    let handle = runtime.handle();
    let batch = sample_batch(RECORDS, VALUE, 1_700_000_000_000);
    let mut group = c.benchmark_group("append_1KiB_x100");
    // Flat sampling: every sample appends the same amount to a fresh log (created and
    // deleted outside the timing), so samples see the same page-cache state and dirty data
    // stays well under the kernel's write-back thresholds, as in fio's run.
    group
        .throughput(Throughput::Bytes(batch.len() as u64))
        .sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let variants = [
        (1, "never", FlushPolicy::Never),
        (1, "interval_100ms", FlushPolicy::DEFAULT),
        (1, "always", FlushPolicy::Always),
        (8, "never", FlushPolicy::Never),
        (CONCURRENT_APPENDERS, "always", FlushPolicy::Always),
    ];
    for (appenders, name, flush) in variants {
        let mut totals = (0u64, 0u64, 0u64);
        let id = BenchmarkId::new(format!("{appenders}_appenders"), name);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let batch = batch.clone();
                open_log(&handle, bench_dir(name), append_config(flush));
                let (elapsed, stats) = handle
                    .run_on(0, move || concurrent_appends(batch, iters, appenders))
                    .unwrap();
                close_log(&handle);
                totals.0 += stats.0;
                totals.1 += stats.1;
                totals.2 += stats.2;
                elapsed
            })
        });
        eprintln!(
            "append_1KiB_x100/{appenders}_appenders/{name}: {} appends, {} fdatasyncs in {} \
             group-commit rounds: {:.3} fdatasyncs per append",
            totals.0,
            totals.1,
            totals.2,
            totals.1 as f64 / totals.0.max(1) as f64,
        );
    }
    group.finish();
    runtime.shutdown();
    runtime.join().unwrap();
}

/// Runs `iters` appends of `batch` from `appenders` concurrent tasks on the shard's log;
/// returns the time (scaled to `iters`) and (appends, fdatasyncs, sync rounds) done.
async fn concurrent_appends(
    batch: Vec<u8>,
    iters: u64,
    appenders: u64,
) -> (Duration, (u64, u64, u64)) {
    let log = current_log();
    let before = log.stats();
    let per_task = iters.div_ceil(appenders);
    // Every append gets its own buffer, made before the clock starts: in the broker the
    // produce request's buffer arrives filled from the network, so copying it is not part of
    // appending.
    let buffers: Vec<Vec<Vec<u8>>> = (0..appenders)
        .map(|_| (0..per_task).map(|_| batch.clone()).collect())
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = buffers
        .into_iter()
        .map(|batches| {
            let log = log.clone();
            rt::spawn_local(async move {
                for batch in batches {
                    log.append(batch).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    let elapsed = start.elapsed();
    let after = log.stats();
    // Tasks round the work up; scale the time back to the iterations asked for.
    let done = per_task * appenders;
    let counts = (
        after.appends - before.appends,
        after.fdatasyncs - before.fdatasyncs,
        after.sync_rounds - before.sync_rounds,
    );
    (elapsed.mul_f64(iters as f64 / done as f64), counts)
}

/// Where a batch's base sequence sits (RecordBatch v2), covered by the CRC.
const BASE_SEQUENCE_AT: usize = 53;

/// One appender, flush never: appends of 1 KiB x 100 batches without a producer id, then the
/// same from one idempotent producer with consecutive sequences. Every batch is made (its
/// sequence set and CRC recomputed) before the clock starts, for both.
fn append_idempotence(c: &mut Criterion) {
    let runtime = runtime();
    let handle = runtime.handle();
    let plain = sample_batch(RECORDS, VALUE, 1_700_000_000_000);
    // The same records, from producer 1000 epoch 0.
    let idempotent = sample_builder(RECORDS, VALUE, 1_700_000_000_000)
        .producer(1_000, 0, 0)
        .build();
    let mut group = c.benchmark_group("append_idempotence");
    group
        .throughput(Throughput::Bytes(plain.len() as u64))
        .sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, template) in [("no_producer_id", plain), ("idempotent", idempotent)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let sequenced = name == "idempotent";
                let batches: Vec<Vec<u8>> = (0..iters)
                    .map(|i| {
                        let mut batch = template.clone();
                        if sequenced {
                            let seq = (i as i32).wrapping_mul(RECORDS as i32);
                            batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4]
                                .copy_from_slice(&seq.to_be_bytes());
                            let crc = batch::compute_crc(&batch);
                            batch[17..21].copy_from_slice(&crc.to_be_bytes());
                        }
                        batch
                    })
                    .collect();
                open_log(&handle, bench_dir(name), append_config(FlushPolicy::Never));
                let elapsed = handle
                    .run_on(0, move || async move {
                        let log = current_log();
                        let start = Instant::now();
                        for batch in batches {
                            log.append(batch).await.unwrap();
                        }
                        start.elapsed()
                    })
                    .unwrap();
                close_log(&handle);
                elapsed
            })
        });
    }
    group.finish();
    runtime.shutdown();
    runtime.join().unwrap();
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment indexed every 4 KiB: 262144 entries.
    let entries = 262_144u32;
    let mut offsets = OffsetIndex::new(0);
    let mut times = TimeIndex::new(0);
    for i in 0..entries {
        offsets.append(i64::from(i) * 40, (i + 1) * 4096).unwrap();
        times
            .maybe_append(1_700_000_000_000 + i64::from(i), i64::from(i) * 40)
            .unwrap();
    }
    let mut group = c.benchmark_group("index_lookup");
    let mut x = 0x9e37_79b9u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    group.bench_function("offset_index_262144_entries", |b| {
        b.iter(|| offsets.lookup((next() % (u64::from(entries) * 40)) as i64))
    });
    group.bench_function("time_index_262144_entries", |b| {
        b.iter(|| times.lookup(1_700_000_000_000 + (next() % u64::from(entries)) as i64))
    });
    group.finish();
}

/// The CPU an append spends before any I/O: checking the batch (CRC-32C over ~103 KiB, record
/// framing) and assigning its offset.
fn batch_validation(c: &mut Criterion) {
    let batch = sample_batch(RECORDS, VALUE, 1_700_000_000_000);
    let mut group = c.benchmark_group("batch_validation");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("split_and_validate_1KiB_x100", |b| {
        b.iter(|| batch::split_and_validate(std::hint::black_box(&batch), 1 << 20).unwrap())
    });
    group.bench_function("crc32c_only_1KiB_x100", |b| {
        b.iter(|| batch::compute_crc(std::hint::black_box(&batch)))
    });
    group.finish();

    // What the append path's record checks cost per codec: a batch of 1000 records of 1 KiB
    // (~1 MiB before compression), checked as an append checks it (header, CRC, decompression,
    // every record) and, for comparison, with the header and CRC alone (recovery's check).
    // Throughput is in uncompressed bytes, so codecs compare on the same data.
    let builder = sample_builder(LARGE_RECORDS, VALUE, 1_700_000_000_000);
    let plain_len = builder.build().len() as u64;
    let mut group = c.benchmark_group("validate_1KiB_x1000");
    group.throughput(Throughput::Bytes(plain_len));
    for codec in Compression::ALL {
        let batch = builder.build_compressed(codec).unwrap();
        let name = format!("{codec:?}").to_lowercase();
        group.bench_function(BenchmarkId::new("for_append", &name), |b| {
            b.iter(|| batch::validate_for_append(std::hint::black_box(&batch), LARGE_MAX).unwrap())
        });
        group.bench_function(BenchmarkId::new("header_and_crc", &name), |b| {
            b.iter(|| batch::validate(std::hint::black_box(&batch), LARGE_MAX).unwrap())
        });
    }
    group.finish();

    // Broker-side recompression (a topic's compression.type): the same batch sent in each
    // codec, rewritten into zstd (and, from zstd, into lz4): the check, the inflate, the
    // deflate and the new CRC. `zstd_to_zstd` is the no-rewrite path (one header walk).
    let mut group = c.benchmark_group("recompress_1KiB_x1000");
    group.throughput(Throughput::Bytes(plain_len));
    for (from, to) in [
        (Compression::None, Compression::Zstd),
        (Compression::Lz4, Compression::Zstd),
        (Compression::Gzip, Compression::Zstd),
        (Compression::Zstd, Compression::Lz4),
        (Compression::Zstd, Compression::Zstd),
    ] {
        let sent = bytes::Bytes::from(builder.build_compressed(from).unwrap());
        let target = TopicCompression::Codec {
            codec: to,
            level: None,
        };
        let name = format!("{from:?}_to_{to:?}").to_lowercase();
        group.bench_function(&name, |b| {
            b.iter(|| recompress(std::hint::black_box(sent.clone()), target, LARGE_MAX).unwrap())
        });
    }
    group.finish();
}

/// Appends of one 1000 x 1 KiB batch per codec (flush never, one appender): the whole
/// synchronous append path, validation included, plus the write to the page cache.
fn append_with_validation(c: &mut Criterion) {
    let runtime = runtime();
    let handle = runtime.handle();
    let builder = sample_builder(LARGE_RECORDS, VALUE, 1_700_000_000_000);
    let plain_len = builder.build().len() as u64;
    let mut group = c.benchmark_group("append_1KiB_x1000");
    group
        .throughput(Throughput::Bytes(plain_len))
        .sampling_mode(criterion::SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for codec in Compression::ALL {
        let batch = builder.build_compressed(codec).unwrap();
        let name = format!("{codec:?}").to_lowercase();
        group.bench_function(BenchmarkId::new("never", &name), |b| {
            b.iter_custom(|iters| {
                let batch = batch.clone();
                let config = LogConfig {
                    max_message_bytes: LARGE_MAX,
                    ..append_config(FlushPolicy::Never)
                };
                open_log(&handle, bench_dir(&name), config);
                let (elapsed, _) = handle
                    .run_on(0, move || concurrent_appends(batch, iters, 1))
                    .unwrap();
                close_log(&handle);
                elapsed
            })
        });
    }
    group.finish();
    runtime.shutdown();
    runtime.join().unwrap();
}

fn read_planning(c: &mut Criterion) {
    let runtime = runtime();
    let handle = runtime.handle();
    let mut group = c.benchmark_group("read_planning");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    // ~64 MiB of data either way: 640 batches of 100 x 1 KiB, or 64k single 1 KiB records.
    let shapes = [
        ("batches_100x1KiB", RECORDS, 640usize),
        ("batches_1x1KiB", 1, 65_536),
    ];
    for (name, records, batches) in shapes {
        let config = LogConfig {
            flush: FlushPolicy::Never,
            segment_bytes: 16 << 20,
            retention_ms: None,
            ..LogConfig::default()
        };
        open_log(&handle, bench_dir(name), config);
        let end = handle
            .run_on(0, move || async move {
                let log = current_log();
                let mut builder = BatchBuilder::new();
                for _ in 0..records {
                    builder.push(&Record {
                        value: Some(vec![1; VALUE]),
                        timestamp: 1_700_000_000_000,
                        ..Default::default()
                    });
                }
                let batch = builder.build();
                for _ in 0..batches {
                    log.append(batch.clone()).await.unwrap();
                }
                log.high_watermark()
            })
            .unwrap();
        group.bench_function(BenchmarkId::new("read_1MiB_random_offset", name), |b| {
            b.iter_custom(|iters| {
                handle
                    .run_on(0, move || async move {
                        let log = current_log();
                        let mut x = 0x2545_f491u64;
                        let start = Instant::now();
                        for _ in 0..iters {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let offset = (x % end as u64) as i64;
                            let read = log.read(offset, 1 << 20, true).await.unwrap();
                            assert!(read.bytes > 0);
                        }
                        start.elapsed()
                    })
                    .unwrap()
            })
        });
    }
    group.finish();
    close_log(&handle);
    runtime.shutdown();
    runtime.join().unwrap();
}

fn recovery(c: &mut Criterion) {
    let runtime = runtime();
    let handle = runtime.handle();
    let dir = bench_dir("recovery");
    let config = LogConfig {
        flush: FlushPolicy::Never,
        segment_bytes: 64 << 20,
        retention_ms: None,
        ..LogConfig::default()
    };
    open_log(&handle, dir.clone(), config.clone());
    let size = handle
        .run_on(0, || async {
            let log = current_log();
            let batch = sample_batch(RECORDS, VALUE, 1_700_000_000_000);
            while log.size_bytes() < 256 << 20 {
                log.append(batch.clone()).await.unwrap();
            }
            log.close().await.unwrap();
            LOG.with(|slot| slot.borrow_mut().take());
            log.size_bytes()
        })
        .unwrap();
    let mut group = c.benchmark_group("recovery");
    group
        .throughput(Throughput::Bytes(size))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("reopen_after_crash_256MiB", |b| {
        b.iter_custom(|iters| {
            let dir = dir.clone();
            let config = config.clone();
            handle
                .run_on(0, move || async move {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        // No checkpoint: as after a crash before the first roll was sealed.
                        let _ = std::fs::remove_file(dir.join("checkpoint"));
                        let start = Instant::now();
                        let (log, report) = Log::open(&dir, config.clone(), OpenOptions::default())
                            .await
                            .unwrap();
                        elapsed += start.elapsed();
                        assert_eq!(report.bytes_scanned, log.size_bytes());
                        log.close().await.unwrap();
                    }
                    elapsed
                })
                .unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
    runtime.shutdown();
    runtime.join().unwrap();
}

criterion_group!(
    benches,
    append,
    append_idempotence,
    batch_validation,
    append_with_validation,
    index_lookup,
    read_planning,
    recovery
);
criterion_main!(benches);
