//! Clients that misbehave on purpose: they lie about lengths, send one byte at a time, never
//! read their responses, or open connections and say nothing. Whatever they do, a second
//! client keeps being served promptly and the broker's memory stays bounded.
//! (Malformed frames that close their connection at once are in `kafka_protocol.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchResponse};
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{create, fetch_request, produce};
use runnel_tests::{backends_under_test, Broker, TempDir};

/// Asserts that a new client is answered within a second.
fn others_are_served(broker: &Broker, after: &str) {
    let started = Instant::now();
    let mut other = KafkaConn::connect(broker.addr).unwrap();
    let response: ApiVersionsResponse = other
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .unwrap_or_else(|e| panic!("after {after}: {e}"));
    assert_eq!(response.error_code, 0, "after {after}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "after {after}: answered in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_lying_length_a_slow_sender_and_silent_connections_delay_nobody() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("hostile-slow-{backend}"));
        let broker = Broker::start_in(&dir, backend, &[]);

        // A frame that promises 1000 bytes and stops after 10, held open.
        let mut liar = TcpStream::connect(broker.addr).unwrap();
        liar.write_all(&1000i32.to_be_bytes()).unwrap();
        liar.write_all(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).unwrap();
        others_are_served(&broker, "a frame that stops short");

        // Hundreds of connections that never send a byte, and some that stop mid-size.
        let silent: Vec<TcpStream> = (0..400)
            .map(|i| {
                let mut stream = TcpStream::connect(broker.addr).unwrap();
                if i % 4 == 0 {
                    stream.write_all(&[0, 0]).unwrap();
                }
                stream
            })
            .collect();
        others_are_served(&broker, "400 silent connections");

        // A request sent one byte at a time is still answered, and nobody waits for it.
        let conn = KafkaConn::connect(broker.addr).unwrap();
        let (correlation_id, frame) = {
            let mut conn = conn;
            let framed = conn.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
            (framed.0, framed.1)
        };
        let mut slow = TcpStream::connect(broker.addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for (i, byte) in frame.iter().enumerate() {
            slow.write_all(&[*byte]).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            if i == frame.len() / 2 {
                others_are_served(&broker, "half a request sent byte by byte");
            }
        }
        let mut size = [0u8; 4];
        slow.read_exact(&mut size).unwrap();
        let mut header = [0u8; 4];
        slow.read_exact(&mut header).unwrap();
        assert_eq!(i32::from_be_bytes(header), correlation_id, "{backend}");
        drop((liar, silent));
        others_are_served(&broker, "the hostile connections closed");
    }
}

#[test]
fn a_client_that_never_reads_holds_bounded_memory() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("hostile-unread-{backend}"));
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "hoard", 1, &[], false).0, 0);
    // 8 MiB in the partition (batches under max.message.bytes), then 300 fetches of all of it
    // that are never read.
    for _ in 0..16 {
        let batch = runnel_tests::requests::one_record_batch(512 << 10);
        assert_eq!(produce(&mut conn, "hoard", 0, 1, batch).0, 0);
    }
    let before = broker.rss_bytes();
    let mut hoarder = KafkaConn::connect(broker.addr).unwrap();
    let mut request = fetch_request("hoard", 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 16 << 20;
    // Sent from a thread: once the broker stops reading, the sender blocks, as a real client
    // whose socket buffer is full would.
    let sender = std::thread::spawn(move || {
        for _ in 0..300 {
            if hoarder.send(ApiKey::Fetch, 12, &request).is_err() {
                break;
            }
        }
        hoarder
    });
    std::thread::sleep(Duration::from_secs(2));
    others_are_served(&broker, "a client that never reads");
    let mut reader = KafkaConn::connect(broker.addr).unwrap();
    let response: FetchResponse = reader
        .call(ApiKey::Fetch, 12, &fetch_request("hoard", 0, 0, 0))
        .unwrap();
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    let grown = broker.rss_bytes().saturating_sub(before);
    eprintln!("unread fetches: the broker grew by {} KiB", grown >> 10);
    assert!(
        grown < 256 << 20,
        "the broker grew by {} MiB for an unread client",
        grown >> 20
    );
    drop(broker); // closes the hoarder's connection, so its sender thread finishes
    let _ = sender.join();
}

/// Raises this process's open-file limit to its hard limit (the test opens thousands of
/// sockets); returns the new soft limit.
fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// 5,000 clients connected at once, each answered, and a newcomer served promptly.
#[test]
fn five_thousand_connections_are_all_served() {
    const CLIENTS: usize = 5_000;
    let limit = raise_open_files();
    assert!(
        limit >= CLIENTS as u64 + 100,
        "open-file hard limit {limit} is too low"
    );
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("hostile-many-{backend}"));
    let broker = Broker::start_in(&dir, backend, &[]);
    let started = Instant::now();
    let mut clients: Vec<KafkaConn> = (0..CLIENTS)
        .map(|i| KafkaConn::connect(broker.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let connected = started.elapsed();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
    }
    others_are_served(&broker, "5,000 connections with a request each in flight");
    for (i, client) in clients.iter_mut().enumerate() {
        let (_, response): (i32, ApiVersionsResponse) = client
            .receive(ApiKey::ApiVersions, 3)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(response.error_code, 0);
    }
    eprintln!(
        "{CLIENTS} connections: connected in {connected:?}, all answered in {:?}",
        started.elapsed()
    );
    drop(clients);
    others_are_served(&broker, "5,000 connections closed");
}
