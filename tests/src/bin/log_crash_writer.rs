//! Appends to a partition log under `flush.policy = always` until it is killed, printing one
//! line per acknowledged append: `ack <base offset> <last offset> <crc>`. The crash test
//! (tests/log_crash.rs) SIGKILLs it at random moments and checks that every acknowledged
//! append survived recovery intact.
//!
//! Usage: log_crash_writer DIR SEED BACKEND(uring|epoll)

use std::io::Write;
use std::time::Duration;

use runnel_engine::flush::FlushPolicy;
use runnel_engine::log::batch::BatchHeader;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::log::{Log, LogConfig, OpenOptions};
use runnel_engine::rt::{self, BackendChoice, Runtime, RuntimeConfig};

/// Concurrent appenders: enough for group commit to batch several appends per sync.
const APPENDERS: u64 = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, seed, backend] = &args[..] else {
        eprintln!("usage: log_crash_writer DIR SEED BACKEND");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().expect("numeric seed");
    let backend: BackendChoice = backend.parse().expect("uring or epoll");
    let config = RuntimeConfig {
        cores: 1,
        backend,
        pin_threads: false,
        ..RuntimeConfig::default()
    };
    let dir = dir.clone();
    let runtime = Runtime::start(config, move |_| {
        let dir = dir.clone();
        async move { write_forever(dir, seed).await }
    })
    .expect("runtime starts");
    runtime.join().expect("runtime runs");
}

async fn write_forever(dir: String, seed: u64) {
    let config = LogConfig {
        flush: FlushPolicy::Always,
        segment_bytes: 256 << 10,
        index_interval_bytes: 1024,
        preallocate_bytes: 64 << 10,
        retention_ms: None,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(&dir, config, OpenOptions::default())
        .await
        .expect("log opens");
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|id| rt::spawn_local(append_forever(log.clone(), seed.wrapping_mul(31) + id)))
        .collect();
    for appender in appenders {
        appender.await;
    }
}

async fn append_forever(log: Log, mut state: u64) {
    loop {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Mostly small batches, some large enough (up to ~200 KiB) that a kill can tear them.
        let count = 1 + (state % 16) as usize;
        let value_len = if state % 7 == 0 {
            (state >> 8) as usize % 12_000
        } else {
            (state >> 8) as usize % 600
        };
        let mut builder = BatchBuilder::new();
        for i in 0..count {
            builder.push(&Record {
                key: Some(state.to_be_bytes().to_vec()),
                value: Some(vec![(state as usize + i) as u8; value_len]),
                timestamp: 1_700_000_000_000 + i as i64,
                ..Default::default()
            });
        }
        let batch = builder.build();
        let crc = BatchHeader::parse(&batch).expect("built batch").crc;
        match log.append(batch).await {
            Ok(info) => {
                // One write(2) per line: a kill can't leave half a line behind... except at
                // the very end, which the reader discards.
                let line = format!("ack {} {} {crc}\n", info.base_offset, info.last_offset);
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).expect("stdout");
                out.flush().expect("stdout");
            }
            Err(e) => {
                eprintln!("append failed: {e}");
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
