//! The log cleaner's throughput (criterion): one full pass over a log of 64 MiB of keyed
//! records, 1 KiB values (compressing about 2:1), 100 records a batch, written over 8192 keys (so about seven in
//! eight records are superseded), in 8 MiB segments merged into the default 1 GiB ones.
//! Criterion's throughput is the rate at which the pass gets through the dirty log (its
//! bytes before cleaning), uncompressed and LZ4-compressed batches. Each sample cleans a
//! fresh copy of the prepared directory (the copy is not timed).
//!
//! Data goes to `$RUNNEL_BENCH_DIR` (default: the system temp dir).
//!
//! Run: `cargo bench -p runnel-bench --bench compaction`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::Compression;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::compaction::{Cleaner, CleanerConfig};
use runnel_engine::log::{CleanupPolicy, Log, LogConfig, OpenOptions};
use runnel_engine::rt::Runtime;

const LOG_BYTES: u64 = 64 << 20;
const KEYS: u64 = 8192;
const RECORDS_PER_BATCH: u64 = 100;
const VALUE: usize = 1024;

fn runtime() -> Runtime {
    runnel_bench::engine_runtime()
}

fn bench_root() -> PathBuf {
    let root = std::env::var_os("RUNNEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    root.join(format!("runnel-bench-{}-compaction", std::process::id()))
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        flush: FlushPolicy::Never,
        retention_ms: None,
        segment_bytes,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A batch of keyed 1 KiB records starting at record number `first`.
fn keyed_batch(first: u64, codec: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    for n in first..first + RECORDS_PER_BATCH {
        // Half noise, half zeros: compresses about 2:1, like much real data.
        let mut value = vec![0u8; VALUE];
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for chunk in value[..VALUE / 2].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        builder.push(&Record {
            key: Some(format!("key-{:08}", (n * 7919) % KEYS).into_bytes()),
            value: Some(value),
            headers: vec![],
            timestamp: 1_700_000_000_000,
        });
    }
    match codec {
        Compression::None => builder.build(),
        codec => builder.build_compressed(codec).unwrap(),
    }
}

/// Writes the dirty log into `dir` and seals it; returns its size in bytes.
fn prepare(runtime: &Runtime, dir: PathBuf, codec: Compression) -> u64 {
    runtime
        .handle()
        .run_on(0, move || async move {
            let (log, _) = Log::open(&dir, config(8 << 20), OpenOptions::default())
                .await
                .unwrap();
            let mut n = 0;
            while log.size_bytes() < LOG_BYTES {
                log.append(keyed_batch(n, codec)).await.unwrap();
                n += RECORDS_PER_BATCH;
            }
            // A last small segment, so the rest is sealed and cleanable.
            log.set_config(LogConfig {
                segment_ms: Duration::ZERO,
                ..config(8 << 20)
            });
            log.append(keyed_batch(n, codec)).await.unwrap();
            log.close().await.unwrap();
            log.size_bytes()
        })
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn clean_pass(c: &mut Criterion) {
    let runtime = runtime();
    let root = bench_root();
    let mut group = c.benchmark_group("compaction_64MiB_keyed");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for codec in [Compression::None, Compression::Lz4] {
        let name = format!("{codec:?}").to_lowercase();
        let prepared = root.join(format!("prepared-{name}"));
        let size = prepare(&runtime, prepared.clone(), codec);
        group.throughput(Throughput::Bytes(size));
        group.bench_function(BenchmarkId::new("full_pass", &name), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let work = root.join("work");
                    copy_dir(&prepared, &work);
                    elapsed += runtime
                        .handle()
                        .run_on(0, move || async move {
                            let (log, _) =
                                Log::open(&work, config(1 << 30), OpenOptions::default())
                                    .await
                                    .unwrap();
                            let mut cleaner = Cleaner::new(&CleanerConfig::default());
                            let start = Instant::now();
                            let report = log.clean(&mut cleaner).await.unwrap().expect("a pass");
                            let took = start.elapsed();
                            assert!(report.bytes_written < report.bytes_replaced / 4);
                            log.close().await.unwrap();
                            took
                        })
                        .unwrap();
                }
                elapsed
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
    runtime.shutdown();
    runtime.join().unwrap();
}

criterion_group!(benches, clean_pass);
criterion_main!(benches);
