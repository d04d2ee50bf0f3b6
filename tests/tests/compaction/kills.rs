//! SIGKILL while the cleaner works loses no acknowledged key's newest value.

use super::*;

/// SIGKILL while the cleaner works (a tiny backoff and a steady stream of overwrites keep it
/// busy), at irregular moments, then restart: every time the log must open and, once the
/// producer stops and a last pass runs, hold each key once, at its newest acknowledged
/// version or a newer one the producer sent; then `runnelctl log verify` finds no damage.
#[test]
fn sigkills_while_cleaning_lose_no_acknowledged_key() {
    const TOPIC: &str = "killed-compact";
    const KEYS: u64 = 1000;
    const KILLS: usize = 8;
    // The cleaner looks for work every 10 ms: it is cleaning most of the time.
    const BUSY: &str = "log_cleaner_backoff_ms = 10\n";
    let dir = TempDir::new("compaction-kills");
    let mut broker = start(&dir, BUSY);
    let addr = broker.addr.to_string();
    create_topic(&addr, TOPIC, 2, &COMPACT);

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (addr, outcomes, stop, sent) =
            (addr.clone(), outcomes.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            // One request in flight per partition: a retry after a kill can repeat a batch,
            // never reorder two.
            let producer = producer(
                &addr,
                &outcomes,
                &[
                    ("max.in.flight.requests.per.connection", "1"),
                    ("reconnect.backoff.ms", "20"),
                    ("reconnect.backoff.max.ms", "200"),
                ],
            );
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                let k = version % KEYS;
                let key = format!("key{k}");
                let value = format!("{key}@{version}-{}", "z".repeat(150));
                send(
                    &producer,
                    TOPIC,
                    (k % 2) as i32,
                    &key,
                    Some(&value),
                    version,
                );
                sent.store(version as usize, Ordering::SeqCst);
                if version % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    };
    let mut runs = 0.0;
    for round in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 7919) % 500));
        let admin = broker.admin_addr();
        runs += (0..2)
            .filter_map(|p| metric(&admin, "runnel_cleaner_runs_total", TOPIC, p))
            .sum::<f64>();
        broker.signal(libc::SIGKILL);
        broker.wait_exit(Duration::from_secs(10)).unwrap();
        broker = start_at(&dir, BUSY, Some(&addr));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    producing.join().unwrap();
    let sent = sent.load(Ordering::SeqCst) as u64;
    assert!(
        runs >= KILLS as f64,
        "the cleaner ran only {runs} passes between the kills"
    );

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked = newest_versions(&outcomes.acked);
    assert!(
        acked.len() as u64 == KEYS,
        "{} keys acknowledged",
        acked.len()
    );
    eprintln!(
        "{KILLS} kills, {sent} sent, {} acknowledged, {runs} cleaner passes before the kills",
        outcomes.acked.len()
    );
    produce_all(&addr, TOPIC, &filler("end", 2, 120));
    let records = read_until(&addr, TOPIC, 2, Duration::from_secs(30), |records| {
        each_key_once(records, is_filler)
    });
    assert_offsets_increase(&records, "after the kills");
    let mut found = 0;
    for r in records
        .iter()
        .filter(|r| !is_filler(r.key.as_deref().unwrap()))
    {
        let key = r.key.clone().unwrap();
        let version = r.version.unwrap();
        assert!(
            version >= acked[&key] && version <= sent,
            "{key}: version {version} read; {} acknowledged, {sent} sent",
            acked[&key]
        );
        assert!(
            r.value
                .as_deref()
                .is_some_and(|v| v.starts_with(&format!("{key}@{version}-"))),
            "{key}: value {:?} for version {version}",
            r.value
        );
        found += 1;
    }
    assert_eq!(found, KEYS, "every key once");

    broker.signal(libc::SIGTERM);
    broker.wait_exit(Duration::from_secs(30)).unwrap();
    let data = dir.path().join("data");
    let verify = runnelctl::command()
        .args(["log", "verify", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "runnelctl log verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
