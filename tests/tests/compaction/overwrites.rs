//! Keyed overwrites and tombstones compact to each key's newest record, read through the
//! offset gaps by librdkafka and kafka-python; tombstones go after `delete.retention.ms`.

use super::*;

#[test]
fn overwrites_and_tombstones_compact_to_each_keys_newest_record() {
    const TOPIC: &str = "keyed";
    const KEYS: usize = 200;
    const ROUNDS: u64 = 10;
    const DELETE_RETENTION_MS: u64 = 6000;
    let dir = TempDir::new("compaction-keyed");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    let admin_port = broker.admin_addr();
    // Written under cleanup.policy=delete first (nothing is cleaned), so the size before
    // compaction is known; then switched to compact, as an operator would.
    let retention = DELETE_RETENTION_MS.to_string();
    let mut configs = vec![
        ("segment.bytes", "16384"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", retention.as_str()),
    ];
    create_topic(
        &addr,
        TOPIC,
        2,
        &[&configs[..], &[("cleanup.policy", "delete")]].concat(),
    );
    let key = |k: usize| format!("k{k:04}");
    let mut writes: Vec<Write> = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let value = format!("{}-v{round}-{}", key(k), "x".repeat(90));
            writes.push(((k % 2) as i32, key(k), Some(value), round));
        }
    }
    // Every fifth key deleted.
    let deleted: BTreeSet<String> = (0..KEYS).step_by(5).map(key).collect();
    for k in (0..KEYS).step_by(5) {
        writes.push(((k % 2) as i32, key(k), None, ROUNDS));
    }
    writes.extend(filler("a", 2, 60));
    produce_all(&addr, TOPIC, &writes);
    let newest: BTreeMap<(i32, String), Option<String>> = writes
        .iter()
        .map(|(p, k, v, _)| ((*p, k.clone()), v.clone()))
        .collect();
    let data = dir.path().join("data");
    let before = topic_log_bytes(&data, TOPIC);
    assert_eq!(
        read_all(&addr, TOPIC, 2).len(),
        writes.len(),
        "nothing is cleaned under cleanup.policy=delete"
    );

    configs.push(("cleanup.policy", "compact"));
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(TOPIC));
    for (k, v) in &configs {
        alter = alter.set(k, v);
    }
    let altered = block_on(admin(&addr).alter_configs([&alter], &AdminOptions::new())).unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");

    // The first passes leave each key once, its newest record, tombstones included.
    let compacted = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    let check_newest = |records: &[Rec], who: &str, tombstones_kept: bool| {
        assert_offsets_increase(records, who);
        let keys = by_key(records);
        for ((p, k), value) in &newest {
            let found = keys.get(&(*p, k.clone()));
            match (value, found) {
                (Some(value), Some(recs)) => {
                    assert_eq!(
                        recs.last().unwrap().value.as_ref(),
                        Some(value),
                        "{who}: {p}/{k}"
                    )
                }
                (None, Some(recs)) if tombstones_kept => assert_eq!(
                    recs.last().unwrap().value,
                    None,
                    "{who}: {p}/{k} should be a tombstone"
                ),
                (None, None) if !tombstones_kept => {}
                (_, found) => panic!("{who}: {p}/{k}: expected {value:?}, read {found:?}"),
            }
        }
        assert_eq!(
            keys.len(),
            newest.len() - if tombstones_kept { 0 } else { deleted.len() },
            "{who}: no other keys"
        );
    };
    check_newest(&compacted, "librdkafka after cleaning", true);
    let tombstones = compacted.iter().filter(|r| r.value.is_none()).count();
    assert_eq!(
        tombstones,
        deleted.len(),
        "tombstones kept within delete.retention.ms"
    );
    // Offsets kept their places: gaps where records went.
    let last_offset = compacted.iter().map(|r| r.offset).max().unwrap();
    assert!(
        (compacted.len() as i64) < last_offset / 2,
        "{} records up to offset {last_offset}: offsets keep gaps",
        compacted.len()
    );
    let after = topic_log_bytes(&data, TOPIC);
    assert!(
        after * 3 < before,
        "the log shrinks on disk: {before} bytes before compaction, {after} after"
    );

    // kafka-python reads the same log through its gaps (its tombstones may have expired by
    // now: only what both states share is checked).
    let python = read_all_kafka_python(&addr, TOPIC, 2);
    assert_offsets_increase(&python, "kafka-python");
    each_key_once(&python, is_filler).unwrap();
    for r in &python {
        let key = r.key.clone().unwrap();
        if let Some(Some(value)) = newest.get(&(r.partition, key.clone())) {
            assert_eq!(r.value.as_ref(), Some(value), "kafka-python: {key}");
        }
    }
    let python_keys: BTreeSet<String> = python.iter().filter_map(|r| r.key.clone()).collect();
    for ((_, k), value) in &newest {
        assert!(
            value.is_none() || python_keys.contains(k),
            "kafka-python: {k} missing"
        );
    }

    // What the cleaner did shows in /metrics.
    for p in 0..2 {
        let runs = metric(&admin_port, "runnel_cleaner_runs_total", TOPIC, p).unwrap();
        assert!(runs >= 1.0, "partition {p}: {runs} runs");
        let removed = metric(
            &admin_port,
            "runnel_cleaner_records_removed_total",
            TOPIC,
            p,
        )
        .unwrap();
        assert!(
            removed >= (KEYS as f64 / 2.0) * (ROUNDS as f64 - 1.0),
            "partition {p}: {removed} removed"
        );
        for name in [
            "runnel_cleaner_bytes_read_total",
            "runnel_cleaner_bytes_written_total",
        ] {
            assert!(metric(&admin_port, name, TOPIC, p).unwrap() > 0.0, "{name}");
        }
        let ratio = metric(&admin_port, "runnel_partition_dirty_ratio", TOPIC, p).unwrap();
        assert!((0.0..=1.0).contains(&ratio), "dirty ratio {ratio}");
        let since = metric(
            &admin_port,
            "runnel_cleaner_seconds_since_last_clean",
            TOPIC,
            p,
        )
        .unwrap();
        assert!(
            (0.0..60.0).contains(&since),
            "{since} s since the last clean"
        );
    }

    // Past delete.retention.ms a later pass removes the tombstones, with no new writes.
    let expired = read_until(
        &addr,
        TOPIC,
        2,
        Duration::from_secs(30),
        |records| match records.iter().find(|r| r.value.is_none()) {
            Some(r) => Err(format!("tombstone {:?} still there", r.key)),
            None => Ok(()),
        },
    );
    check_newest(&expired, "librdkafka after delete.retention.ms", false);
    let python = read_all_kafka_python(&addr, TOPIC, 2);
    check_newest(&python, "kafka-python after delete.retention.ms", false);
}
