//! Every runtime operation, on both backends.

mod common;

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::run;
use runnel_engine::rt::{self, File, Pipe, TcpListener, TcpStream};

/// A connected pair of runtime sockets on the current shard.
async fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr();
    let accepting = rt::spawn_local(async move { listener.accept().await.unwrap().0 });
    let client = TcpStream::connect(addr).await.unwrap();
    let server = accepting.await;
    (client, server)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("runnel-rt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    dir
}

/// Receives until `len` bytes or EOF.
async fn recv_exact(stream: &TcpStream, len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let (result, returned) = stream.recv(buf).await;
        buf = returned;
        if result.unwrap() == 0 {
            break;
        }
    }
    buf
}

on_both_backends! {
    fn accept_connect_send_recv(backend) {
        let echoed = run(backend, || async {
            let (client, server) = socket_pair().await;
            assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
            let echo = rt::spawn_local(async move {
                let (n, buf) = server.recv(Vec::with_capacity(64)).await;
                assert_eq!(n.unwrap(), 5);
                let (sent, _) = server.send_all(buf).await;
                sent.unwrap();
            });
            let (sent, _) = client.send_all(b"hello".to_vec()).await;
            sent.unwrap();
            let got = recv_exact(&client, 5).await;
            echo.await;
            got
        });
        assert_eq!(echoed, b"hello");
    }

    fn recv_appends_to_spare_capacity(backend) {
        let got = run(backend, || async {
            let (client, server) = socket_pair().await;
            client.send_all(b"world".to_vec()).await.0.unwrap();
            let mut buf = Vec::with_capacity(16);
            buf.extend_from_slice(b"hello ");
            let (n, buf) = server.recv(buf).await;
            assert_eq!(n.unwrap(), 5);
            // A full buffer is refused rather than read as EOF.
            let full = vec![0u8; 4];
            let (err, _) = server.recv(full.into_boxed_slice().into_vec()).await;
            assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            buf
        });
        assert_eq!(got, b"hello world");
    }

    fn recv_reports_eof(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            client.send_all(b"last".to_vec()).await.0.unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            assert_eq!(recv_exact(&server, 100).await, b"last");
            let (n, _) = server.recv(Vec::with_capacity(8)).await;
            assert_eq!(n.unwrap(), 0, "EOF again after the end");
        });
    }

    fn recv_reports_connection_reset(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            // Linger 0 makes close send RST instead of FIN.
            client.socket().set_linger(Some(Duration::ZERO)).unwrap();
            drop(client);
            let (result, _) = server.recv(Vec::with_capacity(8)).await;
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        });
    }

    fn closed_probe_sees_a_close_or_reset_the_reader_has_not_read(backend) {
        run(backend, || async {
            for reset in [false, true] {
                let (client, server) = socket_pair().await;
                let probe = server.closed_probe().unwrap();
                assert!(!probe.peer_has_closed(), "open and idle");
                client.send_all(b"x".to_vec()).await.0.unwrap();
                if reset {
                    client.socket().set_linger(Some(Duration::ZERO)).unwrap();
                    drop(client);
                } else {
                    client.close().await.unwrap();
                }
                // The byte the reader has not read does not hide the end behind it.
                let deadline = Instant::now() + Duration::from_secs(5);
                while !probe.peer_has_closed() {
                    assert!(Instant::now() < deadline, "close never seen (reset: {reset})");
                    rt::sleep(Duration::from_millis(1)).await;
                }
                // Asking consumed nothing: the reader still gets the byte, then the end.
                assert_eq!(recv_exact(&server, 1).await, b"x");
                let (result, _) = server.recv(Vec::with_capacity(8)).await;
                match result {
                    Ok(n) => assert_eq!(n, 0, "the reader still sees the end"),
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
                }
            }
        });
    }

    fn send_to_reset_peer_fails_without_sigpipe(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            server.socket().set_linger(Some(Duration::ZERO)).unwrap();
            drop(server);
            rt::sleep(Duration::from_millis(20)).await;
            let mut saw_error = false;
            for _ in 0..10 {
                let (result, _) = client.send(vec![1u8; 1024]).await;
                if let Err(e) = result {
                    assert!(matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe), "{e}");
                    saw_error = true;
                    break;
                }
            }
            assert!(saw_error);
        });
    }

    fn connect_refused(backend) {
        run(backend, || async {
            // Bind then close to get a port nobody listens on.
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        });
    }

    fn send_waits_while_socket_buffer_is_full(backend) {
        const LEN: usize = 16 << 20;
        let (elapsed_send, received) = run(backend, || async {
            let (client, server) = socket_pair().await;
            client.socket().set_send_buffer_size(64 << 10).unwrap();
            server.socket().set_recv_buffer_size(64 << 10).unwrap();
            let sender = rt::spawn_local(async move {
                let start = Instant::now();
                let (sent, _) = client.send_all(pattern(LEN)).await;
                sent.unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                (start.elapsed(), client)
            });
            // Nobody reads for a while: the sender must park on the full buffer, not spin or fail.
            rt::sleep(Duration::from_millis(100)).await;
            assert!(!sender.is_finished(), "16 MiB can't fit in the socket buffers");
            let received = recv_exact(&server, LEN + 1).await;
            let (elapsed, _client) = sender.await;
            (elapsed, received)
        });
        assert!(elapsed_send >= Duration::from_millis(100));
        assert_eq!(received.len(), LEN);
        assert!(received == pattern(LEN), "bytes arrive intact and in order");
    }

    fn file_write_read_sync_allocate_close(backend) {
        let path = temp_path(&format!("file-{backend}"));
        let p = path.clone();
        run(backend, move || async move {
            let file = File::create(&p).unwrap();
            let data = pattern(300_000);
            let (written, _) = file.write_all_at(data.clone(), 4096).await;
            written.unwrap();
            file.fdatasync().await.unwrap();
            assert_eq!(file.len().unwrap(), 4096 + 300_000);
            let (n, buf) = file.read_exact_at(Vec::with_capacity(300_000), 4096).await;
            assert_eq!(n.unwrap(), 300_000);
            assert!(buf == data);
            // The hole before the data reads as zeros.
            let (n, head) = file.read_at(Vec::with_capacity(4096), 0).await;
            assert_eq!(n.unwrap(), 4096);
            assert!(head.iter().all(|&b| b == 0));
            // Reading past the end is EOF.
            let (n, _) = file.read_at(Vec::with_capacity(10), 1 << 30).await;
            assert_eq!(n.unwrap(), 0);
            // Preallocation grows the file; KEEP_SIZE reserves without growing it.
            file.fallocate(0, 0, 1 << 20).await.unwrap();
            assert_eq!(file.len().unwrap(), 1 << 20);
            file.fallocate(libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20).await.unwrap();
            assert_eq!(file.len().unwrap(), 1 << 20);
            file.close().await.unwrap();
        });
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[4096..4096 + 300_000] == pattern(300_000)[..]);
        std::fs::remove_file(path).unwrap();
    }

    fn vectored_writes_gather_every_part_in_order(backend) {
        let path = temp_path(&format!("writev-{backend}"));
        let p = path.clone();
        // 3000 parts of varied sizes (empty ones included): more than one pwritev takes
        // (1024 iovecs), so the write continues in rounds from the middle of the list.
        let data = pattern(3000 * 61);
        let mut parts = Vec::new();
        let mut at = 0;
        for i in 0..3000 {
            let len = [0, 1, 7, 61, 176][i % 5];
            parts.push(bytes::Bytes::copy_from_slice(&data[at..at + len]));
            at += len;
        }
        let expected = data[..at].to_vec();
        // Through the backend, and inline on the shard thread (`inline_file_writes`), where the
        // write is done by the time the future is first polled.
        for inline in [false, true] {
            let (p, parts) = (p.clone(), parts.clone());
            let config = runnel_engine::rt::RuntimeConfig {
                inline_file_writes: inline,
                ..common::config(backend, 1)
            };
            let rt = runnel_engine::rt::Runtime::start(config, |_| async {}).unwrap();
            rt.handle().run_on(0, move || async move {
                let file = File::create(&p).unwrap();
                let mut write = std::pin::pin!(file.write_all_vectored_at(parts, 100));
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let first = write.as_mut().poll(&mut cx);
                assert_eq!(first.is_ready(), inline, "inline {inline}");
                let (written, returned) = match first {
                    std::task::Poll::Ready(done) => done,
                    std::task::Poll::Pending => write.await,
                };
                written.unwrap();
                assert_eq!(returned.len(), 3000, "the parts come back");
                let (result, _) = file.write_all_vectored_at(Vec::new(), 0).await;
                result.unwrap();
            }).unwrap();
            rt.join().unwrap();
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), 100 + expected.len());
            assert!(on_disk[100..] == expected[..], "inline {inline}");
            std::fs::remove_file(&path).unwrap();
        }
    }

    fn file_errors_are_reported(backend) {
        let path = temp_path(&format!("ro-{backend}"));
        std::fs::write(&path, b"read only").unwrap();
        let p = path.clone();
        run(backend, move || async move {
            let file = File::open(&p).unwrap();
            let (result, _) = file.write_at(b"x".to_vec(), 0).await;
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EBADF));
        });
        std::fs::remove_file(path).unwrap();
    }

    fn splice_file_through_pipe_to_socket(backend) {
        const LEN: usize = 3 << 20;
        let path = temp_path(&format!("splice-{backend}"));
        std::fs::write(&path, pattern(LEN)).unwrap();
        let p = path.clone();
        let received = run(backend, move || async move {
            let (client, server) = socket_pair().await;
            let reader = rt::spawn_local(async move { recv_exact(&client, LEN + 1).await });
            let file = File::open(&p).unwrap();
            let pipe = Pipe::new(1 << 20).unwrap();
            assert!(pipe.capacity() >= 1 << 20);
            let mut offset = 0u64;
            while (offset as usize) < LEN {
                let chunk = pipe.capacity().min(LEN - offset as usize);
                let filled = rt::splice(&file, Some(offset), pipe.writer(), None, chunk).await.unwrap();
                assert!(filled > 0);
                let mut drained = 0;
                while drained < filled {
                    drained += rt::splice(pipe.reader(), None, &server, None, filled - drained).await.unwrap();
                }
                offset += filled as u64;
            }
            server.shutdown(Shutdown::Write).unwrap();
            reader.await
        });
        std::fs::remove_file(path).unwrap();
        assert_eq!(received.len(), LEN);
        assert!(received == pattern(LEN));
    }

    fn splice_socket_to_pipe(backend) {
        let got = run(backend, || async {
            let (client, server) = socket_pair().await;
            let pipe = Pipe::new(0).unwrap();
            let writer = rt::spawn_local(async move {
                rt::sleep(Duration::from_millis(20)).await;
                client.send_all(b"through the pipe".to_vec()).await.0.unwrap();
                client
            });
            // Waits for the socket to become readable.
            let n = rt::splice(&server, None, pipe.writer(), None, 64).await.unwrap();
            let _client = writer.await;
            let mut out = vec![0u8; n];
            let read = unsafe_free_read(pipe.reader(), &mut out);
            out.truncate(read);
            out
        });
        assert_eq!(got, b"through the pipe");
    }

    fn splice_reports_an_empty_or_full_pipe_instead_of_waiting(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            let pipe = Pipe::new(0).unwrap();
            // Draining an empty pipe into a writable socket: nothing will ever arrive.
            let start = Instant::now();
            let err = rt::splice(pipe.reader(), None, &server, None, 4096).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
            // Filling a full pipe from a readable socket.
            client.send_all(vec![1u8; 256 << 10]).await.0.unwrap();
            let mut filled = 0;
            let err = loop {
                match rt::splice(&server, None, pipe.writer(), None, 1 << 20).await {
                    Ok(n) => filled += n,
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
            assert!(filled >= pipe.capacity() - 4096, "filled {filled} of {}", pipe.capacity());
            assert!(start.elapsed() < Duration::from_secs(5));
        });
    }

    fn sleep_and_timeout(backend) {
        run(backend, || async {
            let start = Instant::now();
            rt::sleep(Duration::from_millis(30)).await;
            assert!(start.elapsed() >= Duration::from_millis(30));

            let start = Instant::now();
            let result = rt::timeout(Duration::from_millis(20), rt::sleep(Duration::from_secs(60))).await;
            assert_eq!(result, Err(rt::Elapsed));
            assert!(start.elapsed() < Duration::from_secs(5));

            // Absurd durations are clamped, not overflowed into an instant wake-up.
            let result = rt::timeout(Duration::from_millis(10), rt::sleep(Duration::MAX)).await;
            assert_eq!(result, Err(rt::Elapsed));

            let result = rt::timeout(Duration::from_secs(60), async { 7 }).await;
            assert_eq!(result, Ok(7));
            // The abandoned 60 s timers were cancelled, not left running.
            let stats = common::settle().await;
            assert_eq!(stats.driver.ops_in_flight, 0, "{stats:?}");
            assert_eq!(stats.driver.timers, 0, "{stats:?}");
        });
    }

    fn timers_fire_while_the_shard_stays_busy(backend) {
        // A short sleep fires on time while other tasks keep the shard from ever blocking,
        // long sleeps are out, and a receive waits on an idle socket (a shard's usual mix).
        let worst = run(backend, || async {
            let busy = std::rc::Rc::new(std::cell::Cell::new(true));
            let spinner = {
                let busy = busy.clone();
                rt::spawn_local(async move {
                    while busy.get() {
                        rt::yield_now().await;
                    }
                })
            };
            let long_sleeper = {
                let busy = busy.clone();
                rt::spawn_local(async move {
                    while busy.get() {
                        rt::sleep(Duration::from_millis(500)).await;
                    }
                })
            };
            let (client, _server) = socket_pair().await;
            let reader = rt::spawn_local(async move {
                let _ = rt::timeout(Duration::from_millis(600), client.recv(Vec::with_capacity(64))).await;
            });
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let start = Instant::now();
                rt::sleep(Duration::from_millis(20)).await;
                worst = worst.max(start.elapsed());
            }
            busy.set(false);
            spinner.await;
            long_sleeper.await;
            reader.await;
            worst
        });
        assert!(worst < Duration::from_millis(250), "{worst:?}");
    }

    fn many_concurrent_timers_fire_in_order(backend) {
        let order = run(backend, || async {
            let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let handles: Vec<_> = [50u64, 10, 40, 20, 30]
                .into_iter()
                .map(|ms| {
                    let order = order.clone();
                    rt::spawn_local(async move {
                        rt::sleep(Duration::from_millis(ms)).await;
                        order.borrow_mut().push(ms);
                    })
                })
                .collect();
            for h in handles {
                h.await;
            }
            let v = order.borrow().clone();
            v
        });
        assert_eq!(order, vec![10, 20, 30, 40, 50]);
    }

    fn spawn_join_and_yield(backend) {
        let (a, b) = run(backend, || async {
            let a = rt::spawn_local(async {
                rt::yield_now().await;
                1
            });
            let b = rt::spawn_local(async { 2 });
            (a.await, b.await)
        });
        assert_eq!((a, b), (1, 2));
    }

    fn cancelled_recv_releases_its_buffer_and_socket_stays_usable(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            for _ in 0..100 {
                let result = rt::timeout(Duration::from_millis(1), server.recv(Vec::with_capacity(1 << 16))).await;
                assert!(result.is_err(), "nothing was sent, so the recv must time out");
            }
            // Cancellations complete; nothing stays in flight.
            let stats = common::settle().await;
            assert_eq!(stats.driver.ops_in_flight, 0, "{stats:?}");
            client.send_all(b"after".to_vec()).await.0.unwrap();
            assert_eq!(recv_exact(&server, 5).await, b"after");
        });
    }

    fn cancelled_send_on_full_buffer_is_safe(backend) {
        run(backend, || async {
            let (client, server) = socket_pair().await;
            client.socket().set_send_buffer_size(16 << 10).unwrap();
            server.socket().set_recv_buffer_size(16 << 10).unwrap();
            // The kernel holds the 8 MiB buffer when the future is dropped.
            let result = rt::timeout(Duration::from_millis(20), client.send_all(pattern(8 << 20))).await;
            assert!(result.is_err());
            drop(client);
            // Drain what made it through until EOF; the abandoned buffer must still be intact
            // for whatever the kernel sends from it.
            let got = recv_exact(&server, 16 << 20).await;
            assert!(got.len() < 8 << 20);
            assert!(got == pattern(got.len()));
            assert_eq!(common::settle().await.driver.ops_in_flight, 0);
        });
    }

    fn cancelled_file_read_keeps_buffer_until_completion(backend) {
        let path = temp_path(&format!("cancel-read-{backend}"));
        std::fs::write(&path, pattern(1 << 20)).unwrap();
        let p = path.clone();
        run(backend, move || async move {
            let file = File::open(&p).unwrap();
            for _ in 0..200 {
                // Poll once (submitting the read), then drop it while the kernel owns the buffer.
                let mut read = Box::pin(file.read_at(Vec::with_capacity(1 << 20), 0));
                let waker = std::task::Waker::noop();
                let _ = read.as_mut().poll(&mut std::task::Context::from_waker(waker));
                drop(read);
            }
            let stats = common::settle().await;
            assert_eq!(stats.driver.ops_in_flight, 0, "{stats:?}");
            assert_eq!(stats.driver.ops_abandoned, 0, "{stats:?}");
        });
        std::fs::remove_file(path).unwrap();
    }

    fn closing_sockets_forgets_registrations(backend) {
        run(backend, || async {
            for _ in 0..50 {
                let (client, server) = socket_pair().await;
                let _ = rt::timeout(Duration::from_millis(1), server.recv(Vec::with_capacity(8))).await;
                client.close().await.unwrap();
                server.close().await.unwrap();
            }
            // The listener of each pair closed too: nothing registered is left behind.
            assert_eq!(rt::stats().driver.registered_fds, 0, "{:?}", rt::stats());
        });
    }
}

/// Reads from a pipe with std I/O (the data is already in it).
fn unsafe_free_read(reader: &rt::PipeReader, out: &mut [u8]) -> usize {
    use std::io::Read;
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the pipe stays open for the duration of this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(reader.as_raw_fd()) };
    let mut file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    file.read(out).unwrap()
}

use std::future::Future as _;
