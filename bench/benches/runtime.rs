//! Runtime micro-benchmarks, each on both backends:
//! - TCP echo round trip over loopback (64-byte message), client and server on different shards
//!   (so on different cores), against a blocking std-thread echo as the machine's own reference;
//! - a cross-shard `submit_to` round trip.
//!
//! Each backend runs twice: shards blocking in the kernel as soon as they are idle (the default)
//! and shards polling for 200 µs first (`idle_poll`).
//!
//! Run: `cargo bench -p runnel-bench --bench runtime`

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use runnel_engine::rt::{
    self, BackendChoice, Runtime, RuntimeConfig, RuntimeHandle, TcpListener, TcpStream,
};

const MESSAGE: usize = 64;

/// Idle poll of the "idle_poll" variants: shards poll this long before blocking in the kernel.
const IDLE_POLL: Duration = Duration::from_micros(200);

/// (label, backend, idle poll): each backend blocking at once (the default) and polling first.
fn variants() -> Vec<(String, BackendChoice, Duration)> {
    let mut backends = vec![("epoll", BackendChoice::Epoll)];
    if rt::probe_uring().is_ok() {
        backends.insert(0, ("uring", BackendChoice::Uring));
    }
    let mut list = Vec::new();
    for (name, backend) in backends {
        list.push((name.to_string(), backend, Duration::ZERO));
        list.push((format!("{name}+idle_poll"), backend, IDLE_POLL));
    }
    list
}

fn two_shards(backend: BackendChoice, idle_poll: Duration) -> Runtime {
    let config = RuntimeConfig {
        cores: 2,
        backend,
        idle_poll,
        ..RuntimeConfig::default()
    };
    Runtime::start(config, |_| async {}).unwrap()
}

/// Enough samples for stable medians while the whole run stays around a minute and a half.
fn keep_short(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
}

/// Starts an echo server on shard 1; returns its address.
fn start_echo_server(handle: &RuntimeHandle) -> std::net::SocketAddr {
    handle
        .run_on(1, || async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr();
            rt::spawn_local(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    stream.set_nodelay(true).unwrap();
                    rt::spawn_local(async move {
                        let mut buf = Vec::with_capacity(MESSAGE);
                        loop {
                            let (n, b) = stream.recv(buf).await;
                            buf = b;
                            match n {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            let (sent, b) = stream.send_all(buf).await;
                            buf = b;
                            buf.clear();
                            if sent.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            addr
        })
        .unwrap()
}

fn echo_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_echo_round_trip_64B");
    keep_short(&mut group);
    for (name, backend, idle_poll) in variants() {
        let runtime = two_shards(backend, idle_poll);
        let handle = runtime.handle();
        let addr = start_echo_server(&handle);
        group.bench_function(BenchmarkId::new("runnel", &name), |b| {
            b.iter_custom(|iters| {
                handle
                    .run_on(0, move || async move {
                        let stream = TcpStream::connect(addr).await.unwrap();
                        stream.set_nodelay(true).unwrap();
                        let mut out = vec![7u8; MESSAGE];
                        let mut inbox = Vec::with_capacity(MESSAGE);
                        let start = Instant::now();
                        for _ in 0..iters {
                            let (sent, o) = stream.send_all(out).await;
                            out = o;
                            sent.unwrap();
                            inbox.clear();
                            while inbox.len() < MESSAGE {
                                let (n, i) = stream.recv(inbox).await;
                                inbox = i;
                                assert!(n.unwrap() > 0);
                            }
                        }
                        start.elapsed()
                    })
                    .unwrap()
            })
        });
        runtime.join().unwrap();
    }

    // The machine's reference: blocking sockets, one thread each side.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; MESSAGE];
                while stream.read_exact(&mut buf).is_ok() {
                    if stream.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    group.bench_function(BenchmarkId::new("std_blocking_threads", "kernel"), |b| {
        b.iter_custom(|iters| {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = [7u8; MESSAGE];
            let start = Instant::now();
            for _ in 0..iters {
                stream.write_all(&buf).unwrap();
                stream.read_exact(&mut buf).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn submit_to_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("submit_to_round_trip");
    keep_short(&mut group);
    for (name, backend, idle_poll) in variants() {
        let runtime = two_shards(backend, idle_poll);
        let handle = runtime.handle();
        group.bench_function(BenchmarkId::new("shard0_to_shard1", &name), |b| {
            b.iter_custom(|iters| {
                handle
                    .run_on(0, move || async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            let v = rt::submit_to(1, move || async move { i + 1 })
                                .await
                                .unwrap();
                            assert_eq!(v, i + 1);
                        }
                        start.elapsed()
                    })
                    .unwrap()
            })
        });
        runtime.join().unwrap();
    }
    group.finish();
}

criterion_group!(benches, echo_round_trip, submit_to_round_trip);
criterion_main!(benches);
