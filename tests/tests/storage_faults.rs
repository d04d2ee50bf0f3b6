//! The broker when its storage fails, with faults injected through `RUNNEL_FAULTS` (the
//! runtime's file layer fails chosen operations on chosen paths): the affected partition
//! answers KAFKA_STORAGE_ERROR, the others keep serving, nothing acknowledged is lost, the
//! partition recovers after a restart, a full disk can be freed by deleting a topic, and a
//! shard that panics stops the broker instead of leaving it half alive.

use std::time::Duration;

use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::{create, delete_topic, fetch, produce, records};
use runnel_tests::{backends_under_test, Broker, TempDir};

const STORAGE_ERROR: i16 = 56;

#[test]
fn a_failing_write_or_sync_fails_only_its_partition() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("faults-write-{backend}"));
        let faults = "write:EIO:faulty-0/;sync:EIO:synced-0/";
        let mut broker = Broker::start_in_env(&dir, backend, &[], &[("RUNNEL_FAULTS", faults)]);
        broker
            .wait_for_log("storage faults injected", Duration::ZERO)
            .unwrap();
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        for topic in ["healthy", "faulty"] {
            assert_eq!(create(&mut conn, topic, 1, &[], false).0, 0, "{backend}");
        }
        let always = [("flush.policy", "always")];
        assert_eq!(create(&mut conn, "synced", 1, &always, false).0, 0);

        let batch = || records("f", 3, 1);
        assert_eq!(produce(&mut conn, "healthy", 0, -1, batch()), (0, 0));
        assert_eq!(
            produce(&mut conn, "faulty", 0, -1, batch()).0,
            STORAGE_ERROR
        );
        assert_eq!(
            produce(&mut conn, "faulty", 0, -1, batch()).0,
            STORAGE_ERROR
        );
        // Written but never synced: never acknowledged.
        assert_eq!(
            produce(&mut conn, "synced", 0, -1, batch()).0,
            STORAGE_ERROR
        );
        assert_eq!(produce(&mut conn, "healthy", 0, -1, batch()), (0, 3));
        let (code, high_watermark, _) = fetch(&mut conn, "healthy", 0, 0, 0);
        assert_eq!((code, high_watermark), (0, 6), "{backend}");
        drop(conn);
        broker.signal(libc::SIGTERM);
        broker.wait_exit(Duration::from_secs(20)).unwrap();

        // Without the faults the partitions work again and nothing acknowledged is missing.
        let broker = Broker::start_in(&dir, backend, &[]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let (code, high_watermark, batches) = fetch(&mut conn, "healthy", 0, 0, 0);
        assert_eq!(
            (code, high_watermark, batches.len()),
            (0, 6, 2),
            "{backend}"
        );
        for topic in ["faulty", "synced"] {
            let (code, offset) = produce(&mut conn, topic, 0, -1, batch());
            assert_eq!(code, 0, "{backend}: {topic}");
            let (code, high_watermark, _) = fetch(&mut conn, topic, 0, offset, 0);
            assert_eq!(
                (code, high_watermark),
                (0, offset + 3),
                "{backend}: {topic}"
            );
        }
    }
}

#[test]
fn a_full_disk_can_be_freed_by_deleting_a_topic() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("faults-full-{backend}"));
    let mut broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    for topic in ["big", "kept"] {
        assert_eq!(create(&mut conn, topic, 2, &[], false).0, 0);
        assert_eq!(produce(&mut conn, topic, 0, 1, records(topic, 5, 1)).0, 0);
    }
    drop(conn);
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(20)).unwrap();

    // The disk is full: the first save of the topic list fails with ENOSPC.
    let full = [("RUNNEL_FAULTS", "replace:ENOSPC:topics.toml:1")];
    let mut broker = Broker::start_in_env(&dir, backend, &[], &full);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(delete_topic(&mut conn, "big"), 0);
    let data = dir.path().join("data");
    assert!(!data.join("big-0").exists() && !data.join("big-1").exists());
    broker
        .wait_for_log(
            "disk full: removed the deleted topic's data",
            Duration::ZERO,
        )
        .unwrap();
    drop(conn);
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(20)).unwrap();

    // The deletion was saved: after a restart the topic stays gone, the other one intact.
    let broker = Broker::start_in(&dir, backend, &[]);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(
        create(&mut conn, "big", 1, &[], false).0,
        0,
        "big was deleted"
    );
    let (code, high_watermark, _) = fetch(&mut conn, "kept", 0, 0, 0);
    assert_eq!((code, high_watermark), (0, 5));
}

#[test]
fn a_shard_that_panics_stops_the_broker() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("faults-panic-{backend}"));
    let doomed = [("RUNNEL_FAULTS", "panic:0:doomed-")];
    let mut broker = Broker::start_in_env(&dir, backend, &[], &doomed);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "fine", 1, &[], false).0, 0);
    // Opening the new topic's partition panics its shard; the request may get no answer.
    let _ = conn.send(
        kafka_protocol::messages::ApiKey::CreateTopics,
        7,
        &runnel_tests::requests::create_request("doomed", 2),
    );
    let status = broker.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(
        !status.success(),
        "a broker with a dead shard must not exit cleanly"
    );
    broker
        .wait_for_log("panicked; shutting down", Duration::ZERO)
        .unwrap();
    let marker = dir.path().join("data").join(".runnel-clean-shutdown");
    assert!(!marker.exists(), "no clean-shutdown marker after a panic");
}

/// Producers faster than the disk meet back-pressure, not unbounded memory: with a disk that
/// takes 20 ms per write (about 40 MiB/s for these batches), four connections pipelining
/// produce requests as fast as they can leave the broker's memory bounded by its request caps.
/// Every request is answered in the end, and other partitions are served meanwhile.
#[test]
fn producers_faster_than_the_disk_are_held_back() {
    let backend = backends_under_test()[0];
    let dir = TempDir::new(&format!("faults-slow-{backend}"));
    let config = dir.path().join("caps.toml");
    std::fs::write(
        &config,
        format!("queued_max_request_bytes = {}\n", 64 << 20),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let slow = [("RUNNEL_FAULTS", "slow:20:slowdisk-0/")];
    let broker = Broker::start_in_env(&dir, backend, &["--config", &config], &slow);
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    assert_eq!(create(&mut conn, "slowdisk", 1, &[], false).0, 0);
    assert_eq!(create(&mut conn, "elsewhere", 1, &[], false).0, 0);
    let before = broker.rss_bytes();

    let batch = runnel_tests::requests::one_record_batch(900 << 10);
    let request = runnel_tests::requests::produce_request("slowdisk", 0, 1, batch);
    let flood_until = std::time::Instant::now() + Duration::from_secs(4);
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let mut producer = KafkaConn::connect(broker.addr).unwrap();
            let request = request.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                while std::time::Instant::now() < flood_until {
                    producer
                        .send(kafka_protocol::messages::ApiKey::Produce, 9, &request)
                        .unwrap();
                    sent += 1;
                }
                (producer, sent)
            })
        })
        .collect();
    let mut peak = before;
    while std::time::Instant::now() < flood_until {
        peak = peak.max(broker.rss_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Meanwhile a partition on a healthy disk is served at once.
    let started = std::time::Instant::now();
    assert_eq!(
        produce(&mut conn, "elsewhere", 0, 1, records("ok", 1, 1)).0,
        0
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let mut answered = 0;
    for handle in producers {
        let (mut producer, sent) = handle.join().unwrap();
        for _ in 0..sent {
            let (_, response): (i32, kafka_protocol::messages::ProduceResponse) = producer
                .receive(kafka_protocol::messages::ApiKey::Produce, 9)
                .unwrap();
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
            answered += 1;
        }
    }
    peak = peak.max(broker.rss_bytes());
    let grown = peak.saturating_sub(before);
    eprintln!(
        "slow disk: {answered} requests of 900 KiB answered; the broker grew by {} MiB at most",
        grown >> 20
    );
    assert!(grown < 256 << 20, "the broker grew by {} MiB", grown >> 20);
}

/// Produces 10-record batches to `topic` one request at a time (acks=-1) until the broker
/// goes away; returns the base offset of each acknowledged batch.
fn produce_until_the_power_goes(broker: &Broker, topic: &str) -> Vec<i64> {
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..100_000 {
        let request =
            runnel_tests::requests::produce_request(topic, 0, -1, records(&format!("p{i}"), 10, 1));
        let sent = conn.send(kafka_protocol::messages::ApiKey::Produce, 9, &request);
        let answer = sent.and_then(|_| {
            conn.receive::<kafka_protocol::messages::ProduceResponse>(
                kafka_protocol::messages::ApiKey::Produce,
                9,
            )
        });
        let Ok((_, response)) = answer else {
            break; // the broker is gone
        };
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        acknowledged.push(partition.base_offset);
    }
    acknowledged
}

/// A simulated power loss (`powercut`: at the 300th write to the partition every file is cut
/// back to what was last synced, and the broker aborts): under `flush.policy=always` every
/// acknowledged batch survives, since acknowledging waits for the sync; under `interval`
/// acknowledged batches may be lost, but what survives is a whole, dense prefix of the log.
#[test]
fn a_power_loss_keeps_everything_acknowledged_under_always() {
    let backend = backends_under_test()[0];
    for policy in ["always", "interval"] {
        let dir = TempDir::new(&format!("faults-power-{backend}-{policy}"));
        let topic = format!("power-{policy}");
        let cut = [("RUNNEL_FAULTS", format!("powercut:300:{topic}-0/"))];
        let cut = [(cut[0].0, cut[0].1.as_str())];
        let mut broker = Broker::start_in_env(&dir, backend, &["--cores", "1"], &cut);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let config = [("flush.policy", policy), ("flush.ms", "20")];
        assert_eq!(create(&mut conn, &topic, 1, &config, false).0, 0);
        let acknowledged = produce_until_the_power_goes(&broker, &topic);
        let status = broker.wait_exit(Duration::from_secs(20)).unwrap();
        assert!(
            !status.success(),
            "{policy}: the broker aborted at the power cut"
        );
        assert!(
            acknowledged.len() > 100,
            "{policy}: {} acknowledged",
            acknowledged.len()
        );

        let broker = Broker::start_in(&dir, backend, &["--cores", "1"]);
        let mut conn = KafkaConn::connect(broker.addr).unwrap();
        let (code, high_watermark, _) = fetch(&mut conn, &topic, 0, 0, 0);
        assert_eq!(code, 0, "{policy}");
        // Every surviving batch reads back whole and in order.
        let mut offset = 0;
        while offset < high_watermark {
            let (code, _, batches) = fetch(&mut conn, &topic, 0, offset, 0);
            assert_eq!(code, 0, "{policy} at {offset}");
            assert!(
                !batches.is_empty(),
                "{policy}: nothing readable at {offset}"
            );
            for batch in batches {
                let header = runnel_engine::log::batch::BatchHeader::parse(&batch).unwrap();
                assert_eq!(header.base_offset, offset, "{policy}: batches are dense");
                offset += 10;
            }
        }
        let last_acknowledged_end = acknowledged.last().unwrap() + 10;
        eprintln!(
            "{policy}: {} batches acknowledged before the power cut, log end after it {high_watermark} (acknowledged end {last_acknowledged_end})",
            acknowledged.len()
        );
        if policy == "always" {
            assert!(
                high_watermark >= last_acknowledged_end,
                "always: acknowledged up to {last_acknowledged_end}, only {high_watermark} survived"
            );
        }
    }
}
