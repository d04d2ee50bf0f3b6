//! No memory or descriptors leak across cancellations, on both backends.
//!
//! This binary counts every allocation of the process, so its tests take a lock and run one at
//! a time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use runnel_engine::rt::{self, File, TcpListener, TcpStream};

struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `round` on shard 0 of a runtime with `shards` shards twice to warm up caches and slabs,
/// then `rounds` more times, and checks that live heap bytes and open descriptors came back to
/// where they were.
fn assert_no_leak_on<F, Fut>(shards: usize, backend: rt::BackendChoice, rounds: usize, round: F)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::runtime(backend, shards);
    let handle = rt.handle();
    let once = |handle: &rt::RuntimeHandle| {
        let round = round.clone();
        handle
            .run_on(0, move || async move {
                round().await;
                // Let cancellations complete before measuring.
                let stats = common::settle().await;
                assert_eq!(stats.driver.ops_in_flight, 0, "{stats:?}");
                assert_eq!(stats.driver.ops_abandoned, 0, "{stats:?}");
            })
            .unwrap()
    };
    once(&handle);
    once(&handle);
    let (bytes_before, fds_before) = (LIVE_BYTES.load(Ordering::SeqCst), open_fds());
    for _ in 0..rounds {
        once(&handle);
    }
    let (bytes_after, fds_after) = (LIVE_BYTES.load(Ordering::SeqCst), open_fds());
    rt.join().unwrap();
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    // Allow small slack for lazily grown tables (thread-locals, queue segments); a leaked
    // buffer per round would be 64 KiB x rounds.
    let grown = bytes_after - bytes_before;
    assert!(
        grown < 32 * 1024,
        "heap grew by {grown} bytes over {rounds} rounds"
    );
}

fn assert_no_leak<F, Fut>(backend: rt::BackendChoice, rounds: usize, round: F)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    assert_no_leak_on(1, backend, rounds, round)
}

async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr();
    let accepting = rt::spawn_local(async move { listener.accept().await.unwrap().0 });
    let client = TcpStream::connect(addr).await.unwrap();
    (client, accepting.await)
}

on_both_backends! {
    fn cross_shard_calls_leak_nothing(backend) {
        assert_no_leak_on(2, backend, 10, || async {
            let tasks: Vec<_> = (0..50)
                .map(|t| {
                    rt::spawn_local(async move {
                        for i in 0..20usize {
                            let payload = vec![t as u8; 512];
                            let back = rt::submit_to(1, move || async move { payload.len() + i })
                                .await
                                .unwrap();
                            assert_eq!(back, 512 + i);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            // Callers that give up before the reply: the reply is dropped when it arrives.
            for _ in 0..20 {
                let slow = rt::submit_to(1, || async {
                    // Far longer than the caller waits, even on a loaded machine.
                    rt::sleep(Duration::from_millis(100)).await;
                    vec![0u8; 4096]
                });
                assert!(rt::timeout(Duration::from_millis(1), slow).await.is_err());
            }
            // Wait until shard 1 has finished the abandoned calls' work.
            rt::submit_to(1, || async {
                loop {
                    let stats = rt::stats();
                    if stats.tasks == 1 && stats.driver.timers == 0 && stats.driver.ops_in_flight == 0 {
                        break;
                    }
                    rt::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap();
        });
    }

    fn cancelled_recvs_leak_nothing(backend) {
        assert_no_leak(backend, 20, || async {
            let (_client, server) = socket_pair().await;
            for _ in 0..50 {
                let r = rt::timeout(Duration::from_micros(200), server.recv(Vec::with_capacity(64 << 10))).await;
                assert!(r.is_err());
            }
        });
    }

    fn cancelled_sends_on_full_buffers_leak_nothing(backend) {
        assert_no_leak(backend, 10, || async {
            let (client, server) = socket_pair().await;
            // Small buffers on both sides: 4 MiB can never fit, so the send is always in flight
            // when the timeout drops it.
            client.socket().set_send_buffer_size(16 << 10).unwrap();
            server.socket().set_recv_buffer_size(16 << 10).unwrap();
            let r = rt::timeout(Duration::from_millis(2), client.send_all(vec![7u8; 4 << 20])).await;
            assert!(r.is_err());
            drop(server);
        });
    }

    fn cancelled_file_reads_leak_nothing(backend) {
        let path = std::env::temp_dir().join(format!("runnel-leak-{}-{backend}", std::process::id()));
        std::fs::write(&path, vec![1u8; 256 << 10]).unwrap();
        let p = path.clone();
        assert_no_leak(backend, 10, move || {
            let p = p.clone();
            async move {
                let file = File::open(&p).unwrap();
                for _ in 0..20 {
                    let mut read = Box::pin(file.read_at(Vec::with_capacity(256 << 10), 0));
                    let _ = std::future::Future::poll(read.as_mut(), &mut std::task::Context::from_waker(std::task::Waker::noop()));
                }
                rt::sleep(Duration::from_millis(5)).await;
            }
        });
        std::fs::remove_file(path).unwrap();
    }

    fn accepts_abandoned_mid_flight_close_their_connections(backend) {
        assert_no_leak(backend, 10, || async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr();
            for _ in 0..10 {
                let r = rt::timeout(Duration::from_micros(300), listener.accept()).await;
                assert!(r.is_err());
            }
            // A connection that arrives after the accept was abandoned is closed, not leaked.
            let _c = TcpStream::connect(addr).await.unwrap();
        });
    }
}
