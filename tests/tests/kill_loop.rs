//! SIGKILL under load, with librdkafka as the producer: the broker is killed every few hundred
//! milliseconds while an acks=all producer keeps sending, and restarted on the same port and
//! data. Afterwards every message the producer saw acknowledged must be in the log at the
//! offset it was acknowledged with, and in the order it was sent.
//!
//! A consumer in a group reads and commits through the same kills: every commit the broker
//! acknowledged must survive, and no committed offset may point past the data.
//!
//! `RUNNEL_KILLS` sets the kills under `flush.policy=always` (default 50; the other policies
//! get a fifth of it); `scripts/kill-loop.sh` runs a long campaign.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests::create;
use runnel_tests::{backends_under_test, Broker, TempDir};

const PARTITIONS: i32 = 3;

/// Deliveries the producer saw acknowledged: (partition, offset) -> the message's number.
type Acked = Arc<Mutex<BTreeMap<(i32, i64), u64>>>;

/// What the log holds: (partition, offset) -> the message's number.
type Stored = BTreeMap<(i32, i64), u64>;

/// The number a message carries (`m-00001234`), or `u64::MAX` for anything else.
fn number(payload: Option<&[u8]>) -> u64 {
    payload
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.strip_prefix("m-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The highest offset the broker acknowledged committing, per partition.
type Commits = BTreeMap<i32, i64>;

const GROUP: &str = "kill-loop-group";

struct Deliveries(Acked);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let mut acked = self.0.lock().unwrap();
            acked.insert(
                (message.partition(), message.offset()),
                number(message.payload()),
            );
        }
    }
}

fn kills() -> usize {
    std::env::var("RUNNEL_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

/// A deterministic pause between 50 and 300 ms (no randomness crate needed).
fn pause(round: usize) -> Duration {
    Duration::from_millis(50 + (round as u64 * 7919) % 250)
}

/// Consumes in a group until `stop`, committing every 100 messages; returns the commits the
/// broker acknowledged. Sets `joined` after its first acknowledged commit.
fn consume_and_commit(addr: &str, stop: &AtomicBool, joined: &AtomicBool) -> Commits {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        // Small per-partition fetches, so every partition moves (and gets commits) while the
        // producer's backlog grows.
        .set("max.partition.fetch.bytes", "16384")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .unwrap();
    consumer.subscribe(&["killed"]).unwrap();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut acked = Commits::new();
    let mut since_commit = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            next.insert(message.partition(), message.offset() + 1);
            since_commit += 1;
        }
        if since_commit >= 100 {
            since_commit = 0;
            let mut offsets = TopicPartitionList::new();
            for (&partition, &offset) in &next {
                offsets
                    .add_partition_offset("killed", partition, Offset::Offset(offset))
                    .unwrap();
            }
            if consumer.commit(&offsets, CommitMode::Sync).is_ok() {
                for (&partition, &offset) in &next {
                    let best = acked.entry(partition).or_insert(offset);
                    *best = (*best).max(offset);
                }
                joined.store(true, Ordering::SeqCst);
            }
        }
    }
    acked
}

/// Produces (and consumes in a group) until the kills are done, killing and restarting the
/// broker `kills` times; returns what was acknowledged: records and commits.
fn produce_through_kills(
    dir: &TempDir,
    backend: &str,
    policy: &str,
    kills: usize,
) -> (Acked, Commits) {
    let mut broker = Broker::start_in(dir, backend, &[]);
    let addr = broker.addr.to_string();
    let mut conn = KafkaConn::connect(broker.addr).unwrap();
    let config = [("flush.policy", policy)];
    assert_eq!(create(&mut conn, "killed", PARTITIONS, &config, false).0, 0);
    drop(conn);

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(AtomicBool::new(false));
    let consuming = {
        let (stop, joined, addr) = (stop.clone(), joined.clone(), addr.clone());
        std::thread::spawn(move || consume_and_commit(&addr, &stop, &joined))
    };
    let producing = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let producer: BaseProducer<Deliveries> = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("acks", "all")
                .set("max.in.flight.requests.per.connection", "1")
                .set("message.timeout.ms", "120000")
                .set("linger.ms", "2")
                .set("reconnect.backoff.ms", "20")
                .set("reconnect.backoff.max.ms", "200")
                .create_with_context(Deliveries(acked))
                .unwrap();
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let value = format!("m-{sent:08}");
                let partition = (sent % PARTITIONS as u64) as i32;
                let record = BaseRecord::to("killed")
                    .payload(&value)
                    .key("k")
                    .partition(partition);
                match producer.send(record) {
                    Ok(()) => sent += 1,
                    Err(_) => {
                        producer.poll(Duration::from_millis(10));
                    }
                }
                producer.poll(Duration::ZERO);
                // About 5,000 messages a second: plenty in flight at every kill, and a long
                // campaign's messages still fit in memory to be checked.
                if sent % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Whatever is still in flight is either acknowledged now or never was.
            let _ = producer.flush(Duration::from_secs(60));
            sent
        })
    };
    // The group forms (and commits once) before the kills start: a rebalance takes longer than
    // the broker lives between kills, and what is tested is that commits survive them.
    let forming = Instant::now();
    while !joined.load(Ordering::SeqCst) {
        assert!(
            forming.elapsed() < Duration::from_secs(60),
            "{backend}/{policy}: the group never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for round in 0..kills {
        std::thread::sleep(pause(round));
        broker.signal(libc::SIGKILL);
        broker.wait_exit(Duration::from_secs(10)).unwrap();
        broker = Broker::start_in(dir, backend, &["--listen", &addr]);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let sent = producing.join().unwrap();
    let commits = consuming.join().unwrap();
    let acked_count = acked.lock().unwrap().len();
    eprintln!("{backend}/{policy}: {kills} kills, {sent} sent, {acked_count} acknowledged");
    assert!(
        acked_count as u64 > kills as u64,
        "{backend}/{policy}: only {acked_count} of {sent} acknowledged across {kills} kills"
    );
    drop(broker);
    (acked, commits)
}

/// Reads every partition from the start up to its high watermark.
fn read_back(addr: &str) -> Stored {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "kill-loop-unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in 0..PARTITIONS {
        let (_, end) = consumer
            .fetch_watermarks("killed", partition, Duration::from_secs(30))
            .unwrap();
        ends.push(end);
        assignment
            .add_partition_offset("killed", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut stored = Stored::new();
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(600);
    while next.iter().zip(&ends).any(|(next, end)| next < end) {
        assert!(
            Instant::now() < deadline,
            "read back only up to {next:?} of {ends:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let at = (message.partition(), message.offset());
                stored.insert(at, number(message.payload()));
                next[message.partition() as usize] = message.offset() + 1;
            }
            Some(Err(e)) => panic!("consuming: {e}"),
            None => {}
        }
    }
    stored
}

fn check_survivors(backend: &str, policy: &str, kills: usize) {
    let dir = TempDir::new(&format!("kill-loop-{backend}-{policy}"));
    let (acked, commits) = produce_through_kills(&dir, backend, policy, kills);
    let broker = Broker::start_in(&dir, backend, &[]);
    let found = read_back(&broker.addr.to_string());
    check_commits(
        &broker.addr.to_string(),
        &commits,
        &found,
        &format!("{backend}/{policy}"),
    );
    let acked = acked.lock().unwrap();
    for ((partition, offset), value) in acked.iter() {
        assert_eq!(
            found.get(&(*partition, *offset)),
            Some(value),
            "{backend}/{policy}: acknowledged message at {partition}/{offset} lost"
        );
    }
    // In send order within each partition: acknowledged values grow with their offsets.
    for partition in 0..PARTITIONS {
        let values: Vec<u64> = acked
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .map(|(_, v)| *v)
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{backend}/{policy}: partition {partition} out of order"
        );
    }
}

/// Every acknowledged commit survived, and none points past the partition's data.
fn check_commits(addr: &str, acked: &Commits, found: &Stored, run: &str) {
    assert!(!acked.is_empty(), "{run}: the group committed nothing");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", GROUP)
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition("killed", partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(30))
        .unwrap();
    for partition in 0..PARTITIONS {
        let offset = match committed
            .find_partition("killed", partition)
            .map(|p| p.offset())
        {
            Some(Offset::Offset(offset)) => offset,
            _ => -1,
        };
        let log_end = found
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .next_back()
            .map_or(0, |((_, last), _)| last + 1);
        if let Some(&acked) = acked.get(&partition) {
            assert!(
                offset >= acked,
                "{run}: partition {partition}: commit {acked} lost ({offset})"
            );
        }
        assert!(
            offset <= log_end,
            "{run}: partition {partition}: committed {offset} past the data ({log_end})"
        );
    }
    eprintln!("{run}: acknowledged commits {acked:?} all survived");
}

#[test]
fn acknowledged_messages_survive_sigkills_with_every_flush_policy() {
    let kills = kills();
    let backend = backends_under_test()[0];
    check_survivors(backend, "always", kills);
    for policy in ["interval", "never"] {
        check_survivors(backend, policy, (kills / 5).max(1));
    }
}
