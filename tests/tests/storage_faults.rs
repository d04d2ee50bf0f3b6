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
