//! Consumers reading while the cleaner runs see a consistent log.

use super::*;

/// What one reader saw in one pass over the log, for checking once every write is known.
struct Pass {
    /// The high watermarks the pass read up to.
    ends: Vec<i64>,
    /// Per key, the newest version acknowledged before the pass began.
    acked_before: BTreeMap<String, u64>,
    /// Per key, the newest version the pass read.
    seen: BTreeMap<String, u64>,
}

/// Consumers reading while the cleaner runs see a consistent log. Precisely, in every pass
/// from the start of the log to the high watermark it found:
/// 1. offsets strictly increase within a partition;
/// 2. a key's versions strictly increase in the order read (nothing older follows newer);
/// 3. a key whose newest acknowledged version before the pass began was v is read at v or
///    newer, unless a newer write of the key lies beyond where the pass stopped (only then
///    may the cleaner have removed v);
/// 4. no pass stalls;
///
/// and once the producer stops and the cleaner catches up, each key's one record is its last
/// write (a tombstone if that was one).
#[test]
fn consumers_reading_during_cleaning_see_a_consistent_log() {
    const TOPIC: &str = "live";
    const KEYS: u64 = 300;
    const PRODUCE_FOR: Duration = Duration::from_secs(8);
    let dir = TempDir::new("compaction-live");
    let broker = start(&dir, FAST);
    let addr = broker.addr.to_string();
    create_topic(&addr, TOPIC, 2, &COMPACT);
    let partition_of = |k: u64| (k % 2) as i32;

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (addr, outcomes, stop) = (addr.clone(), outcomes.clone(), stop.clone());
        std::thread::spawn(move || {
            let producer = producer(&addr, &outcomes, &[("enable.idempotence", "true")]);
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                let k = version % KEYS;
                let key = format!("key{k}");
                // Every seventh write of a key is a tombstone.
                let value =
                    (version % 7 != 0).then(|| format!("{key}@{version}-{}", "y".repeat(60)));
                send(
                    &producer,
                    TOPIC,
                    partition_of(k),
                    &key,
                    value.as_deref(),
                    version,
                );
                // About 10,000 writes a second: the cleaner always has work.
                if version % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    };
    let passes = Arc::new(Mutex::new(Vec::<Pass>::new()));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (addr, outcomes, stop, passes) =
                (addr.clone(), outcomes.clone(), stop.clone(), passes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let acked_before = newest_versions(&outcomes.lock().unwrap().acked);
                    let (ends, records) = read_pass(&addr, TOPIC, 2);
                    assert_offsets_increase(&records, "a reader during cleaning");
                    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                    for r in &records {
                        let key = r.key.clone().unwrap();
                        let version = r.version.expect("every record carries its version");
                        if let Some(&before) = seen.get(&key) {
                            assert!(
                                version > before,
                                "{key}: version {version} read after {before}"
                            );
                        }
                        seen.insert(key, version);
                    }
                    passes.lock().unwrap().push(Pass {
                        ends,
                        acked_before,
                        seen,
                    });
                }
            })
        })
        .collect();
    std::thread::sleep(PRODUCE_FOR);
    // The readers read while the cleaner worked.
    let admin = broker.admin_addr();
    for p in 0..2 {
        let runs = metric(&admin, "runnel_cleaner_runs_total", TOPIC, p).unwrap();
        assert!(
            runs >= 2.0,
            "partition {p}: {runs} cleaner passes while reading"
        );
    }
    stop.store(true, Ordering::SeqCst);
    producing.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(outcomes.failed.is_empty(), "refused: {:?}", outcomes.failed);
    let writes = outcomes.acked;
    let passes = passes.lock().unwrap();
    assert!(passes.len() >= 4, "only {} passes", passes.len());
    for (i, pass) in passes.iter().enumerate() {
        for (key, &acked) in &pass.acked_before {
            let seen = pass.seen.get(key).copied().unwrap_or(0);
            if seen >= acked {
                continue;
            }
            let p = writes
                .iter()
                .find(|w| w.key.as_deref() == Some(key))
                .unwrap()
                .partition;
            let superseded_beyond = writes
                .iter()
                .any(|w| w.key.as_deref() == Some(key) && w.offset >= pass.ends[p as usize]);
            assert!(
                superseded_beyond,
                "pass {i}: {key} read at version {seen} though {acked} was acknowledged before \
                 the pass and nothing newer lies past its end {:?}",
                pass.ends
            );
        }
    }
    eprintln!("{} writes, {} passes checked", writes.len(), passes.len());

    // The final state: roll the active segment away, let the cleaner finish.
    let last: BTreeMap<String, &Rec> = writes.iter().map(|w| (w.key.clone().unwrap(), w)).collect();
    produce_all(&addr, TOPIC, &filler("end", 2, 60));
    let records = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    let read: BTreeMap<String, &Rec> = records
        .iter()
        .filter(|r| !is_filler(r.key.as_deref().unwrap()))
        .map(|r| (r.key.clone().unwrap(), r))
        .collect();
    assert_eq!(read.len(), last.len(), "every key written is there once");
    for (key, written) in &last {
        let r = read[key];
        assert_eq!(
            (r.version, &r.value),
            (written.version, &written.value),
            "{key}: the last write"
        );
    }
}

/// One pass over the log: the high watermarks found first, and every record below them.
fn read_pass(addr: &str, topic: &str, partitions: i32) -> (Vec<i64>, Vec<Rec>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "compaction-live-reader")
        .create()
        .unwrap();
    let ends: Vec<i64> = (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect();
    drop(consumer);
    let records = read_all(addr, topic, partitions)
        .into_iter()
        .filter(|r| r.offset < ends[r.partition as usize])
        .collect();
    (ends, records)
}
