//! Shards, cross-shard messaging and shutdown, on both backends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, runtime};
use runnel_engine::rt::{self, Runtime, RuntimeConfig, ShardStopped, TcpListener, TcpStream};

on_both_backends! {
    fn submit_to_runs_on_the_target_shard(backend) {
        let rt = runtime(backend, 3);
        let seen = rt.handle().run_on(0, || async {
            let mut seen = Vec::new();
            for target in 0..rt::shard_count() {
                seen.push(rt::submit_to(target, move || async move { (rt::shard_id(), target * 10) }).await.unwrap());
            }
            seen
        });
        assert_eq!(seen.unwrap(), vec![(0, 0), (1, 10), (2, 20)]);
        rt.join().unwrap();
    }

    fn work_posted_in_order_runs_in_order_before_it_is_awaited(backend) {
        let rt = runtime(backend, 2);
        let out = rt.handle().run_on(0, || async {
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            // Post three pieces of work, each only once the one before is in the mailbox, then
            // await their outputs in reverse: they ran in posting order.
            let mut submits = Vec::new();
            for i in 0..3 {
                let order = order.clone();
                let mut submit = rt::submit_to(1, move || {
                    order.lock().unwrap().push(i);
                    async move { i * 10 }
                });
                submit.posted().await.unwrap();
                submits.push(submit);
            }
            let mut outputs = Vec::new();
            while let Some(submit) = submits.pop() {
                outputs.push(submit.await.unwrap());
            }
            let order = order.lock().unwrap().clone();
            (order, outputs)
        });
        assert_eq!(out, Ok((vec![0, 1, 2], vec![20, 10, 0])));
        rt.join().unwrap();
    }

    fn submitted_futures_need_not_be_send(backend) {
        let rt = runtime(backend, 2);
        let out = rt.handle().run_on(1, || async {
            let local = std::rc::Rc::new(5);
            rt::sleep(Duration::from_millis(1)).await;
            *local + rt::shard_id()
        });
        assert_eq!(out, Ok(6));
        rt.join().unwrap();
    }

    fn cross_shard_calls_under_load_with_backpressure(backend) {
        const SHARDS: usize = 4;
        const TASKS_PER_SHARD: usize = 64;
        const CALLS_PER_TASK: usize = 100;
        // A tiny mailbox forces senders to wait for room constantly.
        let rt = Runtime::start(RuntimeConfig { mailbox_capacity: 2, ..config(backend, SHARDS) }, |_| async {}).unwrap();
        let executed = Arc::new(AtomicUsize::new(0));
        let handle = rt.handle();
        let results: Vec<_> = (0..SHARDS)
            .map(|origin| {
                let executed = executed.clone();
                let handle = handle.clone();
                std::thread::spawn(move || {
                    handle.run_on(origin, move || async move {
                        let tasks: Vec<_> = (0..TASKS_PER_SHARD)
                            .map(|t| {
                                let executed = executed.clone();
                                rt::spawn_local(async move {
                                    let mut sum = 0usize;
                                    for c in 0..CALLS_PER_TASK {
                                        let target = (origin + t + c) % SHARDS;
                                        let executed = executed.clone();
                                        let value = rt::submit_to(target, move || async move {
                                            executed.fetch_add(1, Ordering::Relaxed);
                                            if c % 7 == 0 {
                                                rt::sleep(Duration::from_micros(1)).await;
                                            }
                                            (rt::shard_id(), c)
                                        })
                                        .await
                                        .unwrap();
                                        assert_eq!(value, (target, c));
                                        sum += c;
                                    }
                                    sum
                                })
                            })
                            .collect();
                        let mut total = 0;
                        for task in tasks {
                            total += task.await;
                        }
                        total
                    })
                })
            })
            .collect();
        let per_task: usize = (0..CALLS_PER_TASK).sum();
        for r in results {
            assert_eq!(r.join().unwrap().unwrap(), per_task * TASKS_PER_SHARD);
        }
        assert_eq!(executed.load(Ordering::Relaxed), SHARDS * TASKS_PER_SHARD * CALLS_PER_TASK);
        rt.join().unwrap();
    }

    fn shutdown_lets_tasks_finish_their_work(backend) {
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        let rt = Runtime::start(config(backend, 2), move |_| {
            let finished = f.clone();
            async move {
                rt::shutdown_requested().await;
                // In-flight work after the request still completes.
                rt::sleep(Duration::from_millis(50)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
        rt.join().unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }

    fn shutdown_drops_tasks_after_the_grace_period(backend) {
        let rt = Runtime::start(
            RuntimeConfig { shutdown_grace: Duration::from_millis(100), ..config(backend, 1) },
            |_| async {
                // A connection that never ends: its recv is in flight when the shard stops.
                let (client, server) = {
                    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                    let addr = listener.local_addr();
                    let accept = rt::spawn_local(async move { listener.accept().await.unwrap().0 });
                    (TcpStream::connect(addr).await.unwrap(), accept.await)
                };
                let _ = server.recv(Vec::with_capacity(1024)).await;
                drop(client);
            },
        )
        .unwrap();
        let start = Instant::now();
        rt.join().unwrap();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "waited the grace period: {waited:?}");
        assert!(waited < Duration::from_secs(5), "then stopped: {waited:?}");
    }

    fn idle_polling_shards_serve_messages_io_and_timers(backend) {
        let rt = Runtime::start(
            RuntimeConfig { idle_poll: Duration::from_micros(300), ..config(backend, 2) },
            |_| async {},
        )
        .unwrap();
        let out = rt.handle().run_on(0, || async {
            let mut sum = 0;
            for i in 0..200 {
                sum += rt::submit_to(1, move || async move { i }).await.unwrap();
            }
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr();
            let accepted = rt::spawn_local(async move { listener.accept().await.unwrap().0 });
            let client = TcpStream::connect(addr).await.unwrap();
            let server = accepted.await;
            client.send_all(b"ping".to_vec()).await.0.unwrap();
            let (n, buf) = server.recv(Vec::with_capacity(8)).await;
            assert_eq!(n.unwrap(), 4);
            assert_eq!(buf, b"ping");
            let start = Instant::now();
            rt::sleep(Duration::from_millis(5)).await;
            assert!(start.elapsed() >= Duration::from_millis(5));
            sum
        });
        assert_eq!(out, Ok((0..200).sum()));
        rt.join().unwrap();
    }

    fn tasks_that_stop_waiting_for_shutdown_leave_no_waker_behind(backend) {
        let rt = runtime(backend, 1);
        let (before, after) = rt.handle().run_on(0, || async {
            let before = rt::stats().shutdown_waiters;
            // Like a fetch's long poll: each request task races a timer against shutdown.
            let tasks: Vec<_> = (0..1000)
                .map(|_| rt::spawn_local(rt::select(rt::sleep(Duration::from_millis(1)), rt::shutdown_requested())))
                .collect();
            for task in tasks {
                assert!(matches!(task.await, rt::Either::Left(())));
            }
            (before, rt::stats().shutdown_waiters)
        }).unwrap();
        assert_eq!((before, after), (0, 0), "waiters after 1000 tasks stopped waiting");
        // (That shutdown still wakes a waiter: shutdown_lets_tasks_finish_their_work.)
        rt.join().unwrap();
    }

    fn realtime_shards_run_under_sched_fifo_and_step_down_while_busy(backend) {
        match Runtime::start(RuntimeConfig { realtime_priority: Some(3), ..config(backend, 2) }, |_| async {}) {
            Ok(rt) => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("f");
                let (idle, busy, idle_again) = rt.handle().run_on(0, move || async move {
                    // An fdatasync: io_uring always hands it to one of the shard's workers.
                    let file = rt::fs::create_file(&path).await.unwrap();
                    file.write_all_at(vec![7u8; 64 << 10], 0).await.0.unwrap();
                    file.fdatasync().await.unwrap();
                    let idle = scheduling_of_shard_and_workers();
                    // Busy, through the shard loop (which measures) every 5 ms, until the
                    // shard steps down: seen at once, since a loaded host may hand it back.
                    let mut busy = None;
                    let give_up = Instant::now() + Duration::from_secs(5);
                    while busy.is_none() && Instant::now() < give_up {
                        let spin = Instant::now() + Duration::from_millis(5);
                        while Instant::now() < spin {
                            std::hint::spin_loop();
                        }
                        rt::sleep(Duration::from_micros(1)).await;
                        if rt::thread_fifo_priority().unwrap().is_none() {
                            busy = Some(scheduling_of_shard_and_workers());
                        }
                    }
                    rt::sleep(Duration::from_millis(300)).await;
                    (idle, busy, scheduling_of_shard_and_workers())
                }).unwrap();
                if backend == rt::BackendChoice::Uring {
                    assert!(idle.len() >= 2, "the sync went through a worker: {idle:?}");
                }
                assert!(idle.iter().all(|&policy| policy == Some(3)), "idle: {idle:?}");
                let busy = busy.expect("a shard busy for 5 s steps down");
                assert!(busy.iter().all(|&policy| policy.is_none()), "busy: {busy:?}");
                assert!(idle_again.iter().all(|&policy| policy == Some(3)), "idle again: {idle_again:?}");
                let other = rt.handle().run_on(1, || async { rt::thread_fifo_priority().unwrap() });
                assert_eq!(other, Ok(Some(3)), "shard 1 was never busy");
                rt.join().unwrap();
                assert_eq!(rt::thread_fifo_priority().unwrap(), None, "only the shard threads change");
            }
            // Without the privilege (tests normally run as root): a clear refusal to start.
            Err(rt::RuntimeError::Shard { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{source}");
                assert!(source.to_string().contains("SCHED_FIFO priority 3"), "{source}");
            }
            // In a container's PID namespace: refused, with the reason.
            Err(rt::RuntimeError::Invalid(reason)) => assert!(reason.contains("PID namespace"), "{reason}"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn senders_blocked_on_a_shard_that_dies_get_shard_stopped(backend) {
        let rt = Runtime::start(RuntimeConfig { mailbox_capacity: 1, ..config(backend, 2) }, |shard| async move {
            if shard == 1 {
                // A stuck shard (blocking its thread) that then dies: its mailbox is never
                // drained, so senders fill it and wait.
                std::thread::sleep(Duration::from_millis(300));
                panic!("shard 1 dies on purpose");
            }
        })
        .unwrap();
        let results = rt.handle().run_on(0, || async {
            rt::sleep(Duration::from_millis(50)).await;
            let calls: Vec<_> = (0..4).map(|i| rt::spawn_local(rt::submit_to(1, move || async move { i }))).collect();
            let mut results = Vec::new();
            for call in calls {
                results.push(call.await);
            }
            results
        });
        assert_eq!(results.unwrap(), vec![Err(ShardStopped); 4]);
        assert!(matches!(rt.join(), Err(rt::RuntimeError::ShardPanicked(1))));
    }

    fn stopped_shards_refuse_work(backend) {
        let rt = runtime(backend, 2);
        let handle = rt.handle();
        rt.join().unwrap();
        assert_eq!(handle.run_on(1, || async { 1 }), Err(ShardStopped));
    }

    fn listeners_share_a_port_across_shards(backend) {
        const SHARDS: usize = 2;
        const CONNECTIONS: usize = 64;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bound = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let (b, s) = (bound.clone(), served.clone());
        let rt = Runtime::start(config(backend, SHARDS), move |_| {
            let (bound, served) = (b.clone(), s.clone());
            async move {
                let listener = TcpListener::bind_reuseport(("127.0.0.1", port)).unwrap();
                bound.fetch_add(1, Ordering::SeqCst);
                while served.load(Ordering::SeqCst) < CONNECTIONS {
                    match rt::timeout(Duration::from_millis(20), listener.accept()).await {
                        Ok(Ok((stream, _))) => {
                            served.fetch_add(1, Ordering::SeqCst);
                            stream.send_all(vec![rt::shard_id() as u8]).await.0.unwrap();
                        }
                        Ok(Err(e)) => panic!("accept failed: {e}"),
                        Err(_) => {}
                    }
                }
            }
        })
        .unwrap();
        while bound.load(Ordering::SeqCst) < SHARDS {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut per_shard = [0usize; SHARDS];
        for _ in 0..CONNECTIONS {
            use std::io::Read;
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            per_shard[b[0] as usize] += 1;
        }
        rt.join().unwrap();
        assert_eq!(per_shard.iter().sum::<usize>(), CONNECTIONS);
        assert!(per_shard.iter().all(|&n| n > 0), "SO_REUSEPORT spreads connections: {per_shard:?}");
    }
}

#[test]
fn realtime_priority_is_refused_outside_fifo_range_or_with_idle_polling() {
    for (priority, idle_poll_us, expect) in [
        (0, 0, "outside SCHED_FIFO's 1-99"),
        (100, 0, "outside SCHED_FIFO's 1-99"),
        (10, 200, "must not poll when idle"),
    ] {
        let config = RuntimeConfig {
            realtime_priority: Some(priority),
            idle_poll: Duration::from_micros(idle_poll_us),
            ..RuntimeConfig::default()
        };
        match Runtime::start(config, |_| async {}) {
            Err(rt::RuntimeError::Invalid(reason)) => assert!(reason.contains(expect), "{reason}"),
            other => panic!("priority {priority}, idle poll {idle_poll_us}: {other:?}"),
        }
    }
}

#[test]
fn auto_backend_starts_and_reports_its_choice() {
    let rt = Runtime::start(
        RuntimeConfig {
            pin_threads: false,
            cores: 1,
            ..RuntimeConfig::default()
        },
        |_| async {},
    )
    .unwrap();
    let reported = rt.handle().run_on(0, || async { rt::backend() }).unwrap();
    assert_eq!(reported, rt.backend());
    if rt::probe_uring().is_ok() {
        assert_eq!(rt.backend(), rt::IoBackend::Uring);
    } else {
        assert_eq!(rt.backend(), rt::IoBackend::Epoll);
    }
    rt.join().unwrap();
}

#[test]
fn default_core_count_is_all_online_cores() {
    let rt = Runtime::start(
        RuntimeConfig {
            pin_threads: true,
            backend: rt::BackendChoice::Epoll,
            ..RuntimeConfig::default()
        },
        |_| async {},
    )
    .unwrap();
    assert_eq!(
        rt.shard_count(),
        std::thread::available_parallelism().unwrap().get()
    );
    rt.join().unwrap();
}

/// The `SCHED_FIFO` priority (None: another policy) of the calling shard thread, then of each
/// io_uring worker it started (threads named `iou-wrk-<its tid>`; fields 40 and 41 of their
/// /proc stat are the real-time priority and the policy, 1 for `SCHED_FIFO`).
fn scheduling_of_shard_and_workers() -> Vec<Option<u32>> {
    let mut found = vec![rt::thread_fifo_priority().unwrap().map(|p| p as u32)];
    // SAFETY: gettid has no preconditions.
    let workers = format!("iou-wrk-{}", unsafe { libc::gettid() });
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim_end() != workers {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
            continue; // exited
        };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let (priority, policy): (u32, u32) =
            (fields[37].parse().unwrap(), fields[38].parse().unwrap());
        found.push((policy == 1).then_some(priority));
    }
    found
}
