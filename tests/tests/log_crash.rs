//! Crash test for the storage engine: a writer process appends under `flush.policy = always`
//! and is killed with SIGKILL at random moments; after each kill the log is reopened
//! (recovery) and checked:
//! - every append the writer reported as acknowledged is present, at its offsets, intact;
//! - offsets are dense from the log start to the high watermark;
//! - nothing partial is readable: the log is whole, valid batches up to the high watermark.
//!
//! `RUNNEL_CRASH_KILLS` sets the number of kills (default 200); the writer alternates between
//! the backends under test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runnel_engine::log::batch::{self, BatchHeader};
use runnel_engine::log::{Log, LogConfig, OpenOptions};
use runnel_engine::rt::{BackendChoice, Runtime, RuntimeConfig};
use runnel_tests::{backends_under_test, TempDir};

/// One acknowledged append, as the writer printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    base: i64,
    last: i64,
    crc: u32,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let ack = Ack {
        base: words.next()?.parse().ok()?,
        last: words.next()?.parse().ok()?,
        crc: words.next()?.parse().ok()?,
    };
    words.next().is_none().then_some(ack)
}

/// Runs the writer until a random moment, kills it, and returns what it acknowledged.
fn run_and_kill(dir: &Path, seed: u64, backend: &str, run_for: Duration) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_log_crash_writer"))
        .arg(dir)
        .arg(seed.to_string())
        .arg(backend)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("writer starts");
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        // A line cut by the kill has no newline: read_line returns it without one.
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                lines.push(line.trim_end().to_owned());
            }
            line.clear();
        }
        lines
    });
    std::thread::sleep(run_for);
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    child.wait().expect("writer reaped");
    let lines = reader.join().expect("reader thread");
    lines.iter().filter_map(|l| parse_ack(l)).collect()
}

/// Reopens the log (recovery) and checks it against every ack so far. Returns how many
/// problems (torn tails, lost in-flight writes) recovery repaired.
async fn verify(dir: std::path::PathBuf, acks: Vec<Ack>) -> Result<usize, String> {
    let (log, report) = Log::open(&dir, LogConfig::default(), OpenOptions::default())
        .await
        .map_err(|e| format!("reopen failed: {e}"))?;
    let start = log.log_start_offset();
    let hw = log.high_watermark();
    // Read everything: whole valid batches, dense offsets, nothing after the last batch.
    let mut batches = std::collections::BTreeMap::new();
    let mut next = start;
    while next < hw {
        let read = log
            .read(next, 4 << 20, true)
            .await
            .map_err(|e| e.to_string())?;
        if read.bytes == 0 {
            return Err(format!(
                "nothing readable at {next} below the high watermark {hw}: {report:?}"
            ));
        }
        let bytes = read.copy_out().await.map_err(|e| e.to_string())?;
        let mut at = 0;
        let before = next;
        while at < bytes.len() {
            let Some(len) =
                batch::declared_total_len(&bytes[at..]).filter(|&l| at + l <= bytes.len())
            else {
                if read.bytes < 4 << 20 {
                    return Err(format!(
                        "partial batch readable at offset {next}: {report:?}"
                    ));
                }
                break;
            };
            let header = batch::validate(&bytes[at..at + len], usize::MAX)
                .map_err(|e| format!("invalid batch readable near offset {next}: {e}"))?;
            if header.base_offset != next {
                return Err(format!(
                    "offsets not dense: expected {next}, found {}",
                    header.base_offset
                ));
            }
            batches.insert(header.base_offset, header);
            next = header.last_offset() + 1;
            at += len;
        }
        if next == before {
            return Err(format!(
                "no progress reading at {next}: {} bytes planned",
                read.bytes
            ));
        }
    }
    if next != hw {
        return Err(format!("batches end at {next}, high watermark {hw}"));
    }
    for ack in &acks {
        let found: Option<&BatchHeader> = batches.get(&ack.base);
        match found {
            Some(h) if h.last_offset() == ack.last && h.crc == ack.crc => {}
            Some(h) => return Err(format!("acknowledged {ack:?} changed: {h:?}")),
            None => {
                return Err(format!(
                    "acknowledged {ack:?} lost (high watermark {hw}; {report:?})"
                ))
            }
        }
    }
    log.close().await.map_err(|e| e.to_string())?;
    Ok(report.problems.len())
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let kills: u64 = std::env::var("RUNNEL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let backends = backends_under_test();
    let runtime = Runtime::start(
        RuntimeConfig {
            cores: 1,
            backend: BackendChoice::Auto,
            pin_threads: false,
            ..RuntimeConfig::default()
        },
        |_| async {},
    )
    .expect("runtime");
    let dir = TempDir::new("log-crash");
    let started = Instant::now();
    let mut acks: Vec<Ack> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut total_acks, mut generations, mut repairs) = (0usize, 0u64, 0usize);
    for kill in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Start a fresh log now and then, so the log stays small and the early, cheap phase
        // (first segment, first roll) is crashed into often.
        if kill % 25 == 0 {
            let _ = std::fs::remove_dir_all(dir.path().join("p-0"));
            acks.clear();
            generations += 1;
        }
        let backend = backends[kill as usize % backends.len()];
        let run_for = Duration::from_millis(5 + rng % 60);
        let new = run_and_kill(&dir.path().join("p-0"), rng, backend, run_for);
        total_acks += new.len();
        acks.extend(new);
        let path = dir.path().join("p-0");
        let checked = acks.clone();
        let result = runtime
            .handle()
            .run_on(0, move || verify(path, checked))
            .expect("shard runs the check");
        if let Ok(repaired) = &result {
            repairs += repaired;
        }
        if let Err(e) = result {
            // Keep the evidence: the temp dir is removed when the test unwinds.
            let kept =
                std::env::temp_dir().join(format!("runnel-crash-failure-{}", std::process::id()));
            let _ = std::fs::rename(dir.path().join("p-0"), &kept);
            panic!(
                "after kill {kill} ({backend}): {e}; log kept in {}",
                kept.display()
            );
        }
    }
    eprintln!(
        "{kills} kills, {total_acks} acknowledged appends checked over {generations} logs, \
         {repairs} torn or lost tails repaired, in {:.1?}",
        started.elapsed()
    );
    assert!(
        total_acks > kills as usize,
        "the writer made progress between kills"
    );
    runtime.shutdown();
    runtime.join().expect("runtime stops");
}
