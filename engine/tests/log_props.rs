//! Property test of the partition log: random batch shapes appended with random concurrency
//! under every flush policy and segment size read back exactly, with dense offsets, before
//! and after a reopen.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::{self, BatchHeader};
use runnel_engine::log::builder::sample_batch;
use runnel_engine::log::{Log, LogConfig, OpenOptions};
use runnel_engine::rt::{self, BackendChoice};

/// The backend for this run: io_uring unless only epoll is under test.
fn backend() -> BackendChoice {
    if common::backend_enabled("uring") {
        BackendChoice::Uring
    } else {
        BackendChoice::Epoll
    }
}

async fn read_everything(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log.read(offset, 64 << 10, true).await.unwrap();
        let bytes = read.copy_out().await.unwrap();
        let mut at = 0;
        while let Some(len) = batch::declared_total_len(&bytes[at..]) {
            if at + len > bytes.len() {
                break;
            }
            let header = batch::validate(&bytes[at..at + len], usize::MAX).unwrap();
            assert_eq!(header.base_offset, offset, "dense offsets");
            out.push(bytes[at..at + len].to_vec());
            offset = header.last_offset() + 1;
            at += len;
        }
    }
    out
}

fn policy(choice: u8) -> FlushPolicy {
    match choice {
        0 => FlushPolicy::Always,
        1 => FlushPolicy::Never,
        _ => FlushPolicy::Interval {
            ms: Duration::from_millis(1),
            bytes: Some(10_000),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_and_interleavings_round_trip(
        shapes in prop::collection::vec((1usize..30, 0usize..1500, 0u8..4), 1..60),
        segment_bytes in prop::sample::select(vec![64u64 << 10, 256 << 10, 1 << 20]),
        index_interval in prop::sample::select(vec![64usize, 4096]),
        flush in 0u8..3,
        clean_close in any::<bool>(),
    ) {
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: index_interval,
            flush: policy(flush),
            retention_ms: None,
            ..LogConfig::default()
        };
        common::run(backend(), move || async move {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = Log::open(dir.path(), config.clone(), OpenOptions::default()).await.unwrap();
            // Consecutive shapes with the same group number are appended concurrently.
            let mut appended: Vec<(i64, Vec<u8>)> = Vec::new();
            let mut i = 0;
            while i < shapes.len() {
                let group = shapes[i].2;
                let mut tasks = Vec::new();
                while i < shapes.len() && shapes[i].2 == group {
                    let (count, value_len, _) = shapes[i];
                    let batch = sample_batch(count, value_len, i as i64);
                    let log = log.clone();
                    tasks.push(rt::spawn_local(async move {
                        let info = log.append(batch.clone()).await.unwrap();
                        assert_eq!(info.last_offset - info.base_offset + 1, count as i64);
                        (info.base_offset, batch)
                    }));
                    i += 1;
                }
                for task in tasks {
                    appended.push(task.await);
                }
            }
            appended.sort_by_key(|(base, _)| *base);
            let expected: Vec<Vec<u8>> = appended
                .into_iter()
                .map(|(base, mut batch)| {
                    batch::set_base_offset(&mut batch, base);
                    batch
                })
                .collect();
            let total: i64 = expected.iter().map(|b| i64::from(BatchHeader::parse(b).unwrap().records_count)).sum();
            assert_eq!(log.high_watermark(), total);
            assert_eq!(read_everything(&log).await, expected);
            if clean_close {
                log.close().await.unwrap();
            } else {
                log.quiesce().await;
            }
            drop(log);
            let options = OpenOptions { clean_shutdown: clean_close, ..OpenOptions::default() };
            let (log, report) = Log::open(dir.path(), config, options).await.unwrap();
            assert_eq!(report.bytes_truncated, 0);
            assert_eq!(read_everything(&log).await, expected);
        });
    }
}
