//! `__consumer_offsets` is compacted: many commits keep it small and reload after a restart;
//! one made before compaction is compacted from the next start.

use super::*;

#[test]
fn group_commits_keep_the_offsets_topic_small_and_survive_a_restart() {
    const GROUPS: usize = 3;
    const COMMITS: i64 = 5000;
    const PARTITIONS: i32 = 4;
    let dir = TempDir::new("compaction-offsets");
    let config = format!(
        "{FAST}[groups]\noffsets_topic_num_partitions = 3\noffsets_topic_segment_bytes = 16384\n\
         [topic_defaults]\n\"min.cleanable.dirty.ratio\" = \"0.01\"\n"
    );
    let mut broker = start(&dir, &config);
    let addr = broker.addr.to_string();
    create_topic(&addr, "tracked", PARTITIONS, &[]);

    let commit_loop = |group: String| {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            for n in 1..=COMMITS {
                let mut offsets = TopicPartitionList::new();
                for p in 0..PARTITIONS {
                    offsets
                        .add_partition_offset("tracked", p, Offset::Offset(n * 10 + i64::from(p)))
                        .unwrap();
                }
                consumer.commit(&offsets, CommitMode::Sync).unwrap();
            }
        })
    };
    let data = dir.path().join("data");
    let committers: Vec<_> = (0..GROUPS)
        .map(|g| commit_loop(format!("group-{g}")))
        .collect();
    // The topic's size while the commits pour in: the cleaner keeps up.
    let mut largest = 0;
    while committers.iter().any(|c| !c.is_finished()) {
        largest = largest.max(topic_log_bytes(&data, "__consumer_offsets"));
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in committers {
        c.join().unwrap();
    }
    let described = describe(&addr, "__consumer_offsets");
    for (name, value) in [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "16384"),
        ("compression.type", "producer"),
    ] {
        assert_eq!(described[name].as_deref(), Some(value), "{name}");
    }

    // Each commit wrote PARTITIONS records of some 60 bytes or more: megabytes uncompacted.
    let written = GROUPS as u64 * COMMITS as u64 * PARTITIONS as u64 * 60;
    // Three partitions of 16 KiB segments: the active ones and a few cleaned ones.
    let bound = 128 << 10;
    assert!(
        largest < 8 * bound,
        "__consumer_offsets grew to {largest} bytes during the commits"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = topic_log_bytes(&data, "__consumer_offsets");
        if size < bound {
            eprintln!(
                "__consumer_offsets: {size} bytes (at most {largest} during the commits) for \
                 over {written} written"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets holds {size} bytes after {} commits",
            GROUPS as i64 * COMMITS
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(written > 16 * bound, "the test writes enough to tell");

    // The groups' offsets are loaded again from the compacted log.
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();
    let broker = start_at(&dir, &config, Some(&addr));
    for g in 0..GROUPS {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.addr.to_string())
            .set("group.id", format!("group-{g}"))
            .create()
            .unwrap();
        let mut wanted = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            wanted.add_partition("tracked", p);
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(30))
            .unwrap();
        for p in 0..PARTITIONS {
            assert_eq!(
                committed.find_partition("tracked", p).unwrap().offset(),
                Offset::Offset(COMMITS * 10 + i64::from(p)),
                "group-{g} partition {p}"
            );
        }
    }
}

#[test]
fn an_offsets_topic_made_before_compaction_is_compacted_from_the_next_start() {
    let dir = TempDir::new("compaction-offsets-upgrade");
    let mut broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, "t", 1, &[]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "old-group")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("t", 0, Offset::Offset(42))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(consumer);
    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();

    // What Runnel before compaction stored for it: keep everything, no cleanup.policy.
    let registry = dir.path().join("data/topics.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    let old = text
        .replace(
            "\"cleanup.policy\" = \"compact\"\n",
            "\"retention.ms\" = \"-1\"\n",
        )
        .replace("\"compression.type\" = \"producer\"\n", "");
    assert!(old != text && !old.contains("compact"), "{text}");
    std::fs::write(&registry, old).unwrap();

    let mut broker = start_at(&dir, FAST, Some(&addr));
    broker
        .wait_for_log("compacted from now on", Duration::from_secs(10))
        .unwrap();
    let described = describe(&addr, "__consumer_offsets");
    assert_eq!(described["cleanup.policy"].as_deref(), Some("compact"));
    assert_eq!(described["compression.type"].as_deref(), Some("producer"));
    assert_eq!(described["segment.bytes"].as_deref(), Some("104857600"));
    assert_eq!(
        described["retention.ms"].as_deref(),
        Some("604800000"),
        "the stand-in for compaction is gone (the default shows)"
    );
    let saved = std::fs::read_to_string(&registry).unwrap();
    assert!(
        saved.contains("\"cleanup.policy\" = \"compact\""),
        "{saved}"
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "old-group")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("t", 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        committed.find_partition("t", 0).unwrap().offset(),
        Offset::Offset(42)
    );
}
