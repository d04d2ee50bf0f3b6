//! This machine's limits, measured the same way every time so benchmark figures can be stated
//! as ratios to them (the machines are shared and noisy; absolute numbers mean little).
//!
//! - loopback TCP bandwidth: one connection, 1 MiB writes, a reader thread;
//! - loopback round trip: 1-byte ping-pong on a TCP_NODELAY connection;
//! - page-cache append bandwidth: 1 MiB appends to a new file in the data directory (the shape
//!   of a log append: unaligned end, the file growing), no sync;
//! - synced append bandwidth: the same appends with an fdatasync every 100 ms (the default
//!   `interval` flush), which is what the device sustains;
//! - fdatasync latency: 4 KiB append + fdatasync, the cost of an `always` flush;
//! - TCP into the page cache on one core: a thread on the first core receives a loopback
//!   connection into a 1 MiB buffer and appends each read to a file, while a sender on the
//!   last core keeps it fed. Those two copies are the floor of any broker's produce path, so
//!   this is the most a server held to that one core can take in; produce rates of brokers
//!   pinned to one core are stated as a share of it;
//! - wake-up lateness: how much later than asked a thread sleeping 100 µs runs again. On a VM
//!   this is the floor under every tail latency (a descheduled vCPU stalls broker and client
//!   alike), so reports state p99.9 and beyond next to it;
//! - stalls of a spinning thread: a thread that never sleeps, reading the clock in a loop,
//!   and the gaps between its reads. A gap the guest's scheduler did not cause (nothing else
//!   ran on the core) is the hypervisor's or the kernel's (interrupts, softirqs), and no
//!   program on this machine can be on time through it.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What [`measure`] found.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub loopback_bytes_per_sec: f64,
    pub loopback_rtt_p50: Duration,
    pub loopback_rtt_p99: Duration,
    pub page_cache_append_bytes_per_sec: f64,
    /// Appends with an fdatasync every 100 ms: the device's sustained write rate.
    pub synced_append_bytes_per_sec: f64,
    pub fdatasync_p50: Duration,
    pub fdatasync_p99: Duration,
    /// Receiving over loopback TCP and appending to a file, both on one core.
    pub tcp_to_page_cache_bytes_per_sec: f64,
    pub wakeup: WakeUpLateness,
    pub spin: SpinStalls,
}

/// Gaps in a spinning thread's run (see the module's notes).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinStalls {
    /// Share of the time lost in gaps of 50 µs or more.
    pub stalled_share: f64,
    /// Gaps of 1 ms or more.
    pub over_1ms: u64,
    pub longest: Duration,
}

/// Percentiles of a sleeping thread's lateness.
#[derive(Debug, Clone, Copy, Default)]
pub struct WakeUpLateness {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub p9999: Duration,
    pub max: Duration,
}

/// Measures everything, spending about `seconds` on each bandwidth; the file tests run in `dir`.
pub fn measure(dir: &Path, seconds: Duration) -> std::io::Result<Limits> {
    let (rtt_p50, rtt_p99) = loopback_round_trip(10_000)?;
    let (sync_p50, sync_p99) = fdatasync_latency(dir, 200)?;
    Ok(Limits {
        loopback_bytes_per_sec: loopback_bandwidth(seconds)?,
        loopback_rtt_p50: rtt_p50,
        loopback_rtt_p99: rtt_p99,
        page_cache_append_bytes_per_sec: page_cache_append_bandwidth(dir, seconds, 4 << 30)?,
        synced_append_bytes_per_sec: synced_append_bandwidth(dir, seconds)?,
        fdatasync_p50: sync_p50,
        fdatasync_p99: sync_p99,
        tcp_to_page_cache_bytes_per_sec: tcp_to_page_cache_bandwidth(dir, seconds, 4 << 30)?,
        wakeup: wakeup_lateness(seconds.max(Duration::from_secs(2)))?,
        spin: spin_stalls(seconds.max(Duration::from_secs(2))),
    })
}

/// Spins for `seconds` reading the clock and sums the gaps between reads.
pub fn spin_stalls(seconds: Duration) -> SpinStalls {
    const COUNTED: Duration = Duration::from_micros(50);
    let started = Instant::now();
    let end = started + seconds;
    let mut stalls = SpinStalls::default();
    let mut stalled = Duration::ZERO;
    let mut last = started;
    while last < end {
        let now = Instant::now();
        let gap = now - last;
        if gap >= COUNTED {
            stalled += gap;
            stalls.over_1ms += u64::from(gap >= Duration::from_millis(1));
            stalls.longest = stalls.longest.max(gap);
        }
        last = now;
    }
    stalls.stalled_share = stalled.as_secs_f64() / last.duration_since(started).as_secs_f64();
    stalls
}

/// How late a thread that sleeps 100 µs at a time wakes, over `seconds`.
pub fn wakeup_lateness(seconds: Duration) -> std::io::Result<WakeUpLateness> {
    const NAP: Duration = Duration::from_micros(100);
    let mut samples = Vec::new();
    let end = Instant::now() + seconds;
    while Instant::now() < end || samples.is_empty() {
        let asleep = Instant::now();
        std::thread::sleep(NAP);
        samples.push(asleep.elapsed().saturating_sub(NAP));
    }
    samples.sort_unstable();
    Ok(WakeUpLateness {
        p50: nearest_rank(&samples, 0.50),
        p99: nearest_rank(&samples, 0.99),
        p999: nearest_rank(&samples, 0.999),
        p9999: nearest_rank(&samples, 0.9999),
        max: *samples.last().expect("at least one sample"),
    })
}

/// Bytes per second through one loopback TCP connection.
pub fn loopback_bandwidth(seconds: Duration) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut stream = TcpStream::connect(addr)?;
    let buf = vec![7u8; 1 << 20];
    let started = Instant::now();
    while started.elapsed() < seconds {
        stream.write_all(&buf)?;
    }
    drop(stream);
    let total = reader.join().expect("reader thread")?;
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Bytes per second received over a loopback TCP connection and appended to a new file in
/// `dir` by one thread on the first core this process may use, for `seconds` or `max_bytes`;
/// the sender runs on the last core (the same core when there is one).
pub fn tcp_to_page_cache_bandwidth(
    dir: &Path,
    seconds: Duration,
    max_bytes: u64,
) -> std::io::Result<f64> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // Both ends connect here, so no thread can wait for a peer that failed to start.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let sending = TcpStream::connect(listener.local_addr()?)?;
    let (receiving, _) = listener.accept()?;
    let path = dir.join(format!(".runnel-bench-ingest-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let sender_core = cores.last().copied();
    let sender = std::thread::spawn(move || feed(sending, sender_core));
    let receiver_core = cores.first().copied();
    let received = std::thread::spawn(move || {
        append_from(receiving, &file, receiver_core, seconds, max_bytes)
    })
    .join();
    // The receiver's end is closed (its thread ended), so the sender's writes fail and it ends.
    let _ = sender.join();
    std::fs::remove_file(&path)?;
    let (written, took) = received.map_err(|_| std::io::Error::other("receiver panicked"))??;
    Ok(written as f64 / took.as_secs_f64())
}

/// Writes 1 MiB at a time into `stream`, from `core`, until the reader closes its end.
fn feed(mut stream: TcpStream, core: Option<core_affinity::CoreId>) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    let buf = vec![7u8; 1 << 20];
    while stream.write_all(&buf).is_ok() {}
}

/// Reads `stream` into a 1 MiB buffer on `core`, appending each read to `file`, for `seconds`
/// or `max_bytes`: the bytes appended and the time it took.
fn append_from(
    mut stream: TcpStream,
    file: &std::fs::File,
    core: Option<core_affinity::CoreId>,
    seconds: Duration,
    max_bytes: u64,
) -> std::io::Result<(u64, Duration)> {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let started = Instant::now();
    while started.elapsed() < seconds && written < max_bytes {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all_at(&buf[..n], written)?;
        written += n as u64;
    }
    Ok((written, started.elapsed()))
}

/// p50 and p99 of `rounds` 1-byte round trips over loopback TCP.
pub fn loopback_round_trip(rounds: usize) -> std::io::Result<(Duration, Duration)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while stream.read(&mut byte)? == 1 {
            stream.write_all(&byte)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut samples = Vec::with_capacity(rounds);
    let mut byte = [1u8; 1];
    for _ in 0..rounds {
        let started = Instant::now();
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        samples.push(started.elapsed());
    }
    drop(stream);
    echo.join().expect("echo thread")?;
    Ok(percentiles(samples))
}

/// Bytes per second of 1 MiB appends into a new file in `dir`, for `seconds` or `max_bytes`.
pub fn page_cache_append_bandwidth(
    dir: &Path,
    seconds: Duration,
    max_bytes: u64,
) -> std::io::Result<f64> {
    appends(dir, seconds, max_bytes, None)
}

/// Bytes per second of 1 MiB appends into a new file in `dir` with an fdatasync every 100 ms
/// (the broker's default `flush.policy = interval`), for `seconds`: what the device sustains,
/// which bounds any produce rate held for longer than the page cache can absorb.
pub fn synced_append_bandwidth(dir: &Path, seconds: Duration) -> std::io::Result<f64> {
    appends(dir, seconds, u64::MAX, Some(Duration::from_millis(100)))
}

fn appends(
    dir: &Path,
    seconds: Duration,
    max_bytes: u64,
    sync_every: Option<Duration>,
) -> std::io::Result<f64> {
    let path = dir.join(format!(".runnel-bench-append-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Like a log's batches, the chunks aren't page multiples: every append ends mid-page.
    let chunk = vec![3u8; (1 << 20) + 100];
    let started = Instant::now();
    let mut written = 0u64;
    let mut synced_at = started;
    let result = (|| {
        while started.elapsed() < seconds && written < max_bytes {
            file.write_all_at(&chunk, written)?;
            written += chunk.len() as u64;
            if sync_every.is_some_and(|every| synced_at.elapsed() >= every) {
                file.sync_data()?;
                synced_at = Instant::now();
            }
        }
        if sync_every.is_some() {
            file.sync_data()?;
        }
        Ok(written as f64 / started.elapsed().as_secs_f64())
    })();
    drop(file);
    std::fs::remove_file(&path)?;
    result
}

/// p50 and p99 of `rounds` (4 KiB append + fdatasync) in a new file in `dir`.
pub fn fdatasync_latency(dir: &Path, rounds: usize) -> std::io::Result<(Duration, Duration)> {
    let path = dir.join(format!(".runnel-bench-sync-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let block = vec![5u8; 4096];
    let mut samples = Vec::with_capacity(rounds);
    let result = (|| {
        for i in 0..rounds {
            let started = Instant::now();
            file.write_all_at(&block, i as u64 * 4096)?;
            file.sync_data()?;
            samples.push(started.elapsed());
        }
        Ok(())
    })();
    drop(file);
    std::fs::remove_file(&path)?;
    result.map(|()| percentiles(samples))
}

/// (p50, p99) by the nearest-rank method.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (nearest_rank(&samples, 0.50), nearest_rank(&samples, 0.99))
}

/// The `q` quantile of sorted, non-empty `samples` by the nearest-rank method.
fn nearest_rank(samples: &[Duration], q: f64) -> Duration {
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(
            percentiles(samples),
            (Duration::from_micros(50), Duration::from_micros(99))
        );
        assert_eq!(
            percentiles(vec![Duration::from_micros(7)]),
            (Duration::from_micros(7), Duration::from_micros(7))
        );
    }

    #[test]
    fn measures_are_positive_and_clean_up() {
        let dir = std::env::temp_dir().join(format!("runnel-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written =
            page_cache_append_bandwidth(&dir, Duration::from_millis(50), 8 << 20).unwrap();
        assert!(written > 0.0);
        assert!(synced_append_bandwidth(&dir, Duration::from_millis(150)).unwrap() > 0.0);
        let (p50, p99) = fdatasync_latency(&dir, 5).unwrap();
        assert!(p50 > Duration::ZERO && p50 <= p99);
        let (p50, p99) = loopback_round_trip(50).unwrap();
        assert!(p50 > Duration::ZERO && p50 <= p99);
        assert!(loopback_bandwidth(Duration::from_millis(50)).unwrap() > 0.0);
        let ingested =
            tcp_to_page_cache_bandwidth(&dir, Duration::from_millis(50), 8 << 20).unwrap();
        assert!(ingested > 0.0);
        let spin = spin_stalls(Duration::from_millis(50));
        assert!((0.0..1.0).contains(&spin.stalled_share), "{spin:?}");
        let w = wakeup_lateness(Duration::from_millis(50)).unwrap();
        assert!(w.p50 <= w.p99 && w.p99 <= w.p999 && w.p999 <= w.p9999 && w.p9999 <= w.max);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "test files removed"
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
