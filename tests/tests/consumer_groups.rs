//! Consumer groups with librdkafka (the `rdkafka` crate), the reference client, against the
//! real broker on every backend: three members over twelve partitions with each assignor get
//! every message exactly once; members joining, leaving and being killed (session timeout)
//! rebalance the group; commits survive a broker restart; auto.offset.reset earliest and
//! latest; static members rejoin without a rebalance.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel_tests::{backends_under_test, Broker, TempDir};

const TIMEOUT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 12;

/// Counts the rebalances a consumer goes through (assignments and revocations).
#[derive(Default)]
struct Counting {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for Counting {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if std::env::var_os("RDKAFKA_TEST_LOG").is_some() {
            eprintln!("rdkafka {fac}: {log_message}");
        }
    }
}

impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Error(_)) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type GroupConsumer = BaseConsumer<Counting>;

/// A broker whose empty groups wait only 300 ms for more members before the first rebalance
/// (Kafka's default is 3 s), so tests don't sit idle.
fn start(dir: &TempDir, backend: &str) -> Broker {
    let config = dir.path().join("groups.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 300\n").unwrap();
    Broker::start_in(dir, backend, &["--config", config.to_str().unwrap()])
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
    assert!(results[0].is_ok(), "create {name}: {results:?}");
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> GroupConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create_with_context(Counting::default()).unwrap()
}

/// Sends `count` messages round-robin over the partitions; payloads are `<tag>-<i>`.
fn produce(bootstrap: &str, topic: &str, tag: &str, count: usize) -> BTreeSet<String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..count {
        let payload = format!("{tag}-{i}");
        let mut record = BaseRecord::<(), _>::to(topic)
            .partition(i as i32 % PARTITIONS)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, rejected)) => {
                    producer.poll(Duration::from_millis(10));
                    record = rejected;
                }
            }
        }
        sent.insert(payload);
    }
    producer.flush(TIMEOUT).unwrap();
    sent
}

fn assigned(consumer: &GroupConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer (a short poll each, round-robin) until `done` or the deadline; returns
/// the payloads each received.
fn poll_until(
    consumers: &[&GroupConsumer],
    mut done: impl FnMut(&[&GroupConsumer], &[Vec<String>]) -> bool,
    what: &str,
) -> Vec<Vec<String>> {
    let mut received = vec![Vec::new(); consumers.len()];
    let deadline = Instant::now() + TIMEOUT;
    while !done(consumers, &received) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for (i, consumer) in consumers.iter().enumerate() {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                let message = message.unwrap_or_else(|e| panic!("consumer {i}: {e}"));
                let payload = message.payload().expect("payload");
                received[i].push(String::from_utf8(payload.to_vec()).unwrap());
            }
        }
    }
    received
}

/// The members' assignments cover every partition exactly once, each member having some.
fn balanced(consumers: &[&GroupConsumer]) -> bool {
    let sets: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    total == PARTITIONS as usize
        && union.len() == PARTITIONS as usize
        && sets.iter().all(|s| !s.is_empty())
}

/// Waits for a balanced group, consuming whatever arrives meanwhile.
fn wait_balanced(consumers: &[&GroupConsumer], what: &str) {
    poll_until(consumers, |c, _| balanced(c), what);
}

/// Produces a batch to a balanced group and checks that every message arrives exactly once.
fn check_exactly_once(bootstrap: &str, topic: &str, consumers: &[&GroupConsumer], tag: &str) {
    let sent = produce(bootstrap, topic, tag, 600);
    let received = poll_until(
        consumers,
        |_, got| got.iter().map(Vec::len).sum::<usize>() >= sent.len(),
        &format!("{tag}: every message"),
    );
    // A little longer, so a duplicate would have time to show up.
    let extra = poll_until(
        consumers,
        {
            let started = Instant::now();
            move |_, _| started.elapsed() > Duration::from_millis(500)
        },
        "late duplicates",
    );
    let all: Vec<&String> = received.iter().chain(&extra).flatten().collect();
    let distinct: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
    let missing: Vec<&String> = sent.difference(&distinct).take(5).collect();
    let unexpected: Vec<&String> = distinct.difference(&sent).take(5).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{tag}: missing {missing:?}, unexpected {unexpected:?}"
    );
    assert_eq!(all.len(), sent.len(), "{tag}: nothing twice");
    for (i, got) in received.iter().enumerate() {
        assert!(
            !got.is_empty(),
            "{tag}: member {i} got some of the messages"
        );
    }
    // Commit, so partitions that move to another member later resume after these.
    for consumer in consumers {
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
}

#[test]
fn three_members_share_twelve_partitions_with_each_assignor() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("groups-assignors-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        for assignor in ["range", "roundrobin", "cooperative-sticky"] {
            let topic = format!("assign-{assignor}");
            create_topic(&bootstrap, &topic, PARTITIONS);
            let group = format!("group-{assignor}");
            let members: Vec<GroupConsumer> = (0..3)
                .map(|_| {
                    let c = consumer(
                        &bootstrap,
                        &group,
                        &[("partition.assignment.strategy", assignor)],
                    );
                    c.subscribe(&[&topic]).unwrap();
                    c
                })
                .collect();
            let refs: Vec<&GroupConsumer> = members.iter().collect();
            wait_balanced(&refs, &format!("{assignor}: a balanced group"));
            check_exactly_once(&bootstrap, &topic, &refs, &format!("{backend}-{assignor}"));
        }
    }
}

/// A `kcat` group member in its own process, so it can be killed without leaving the group.
fn kcat_member(bootstrap: &str, group: &str, topic: &str) -> Child {
    Command::new("kcat")
        .args(["-b", bootstrap, "-G", group, topic, "-q", "-o", "end"])
        .args([
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
        .args(["-X", "partition.assignment.strategy=range"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat runs (scripts/setup.sh installs it)")
}

#[test]
fn joining_leaving_and_killed_members_rebalance_the_group() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("groups-rebalance-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        let topic = "rebalanced";
        create_topic(&bootstrap, topic, PARTITIONS);
        let group = "rebalancing-group";
        let strategy = [("partition.assignment.strategy", "range")];
        let a = consumer(&bootstrap, group, &strategy);
        let b = consumer(&bootstrap, group, &strategy);
        a.subscribe(&[topic]).unwrap();
        b.subscribe(&[topic]).unwrap();
        wait_balanced(&[&a, &b], "two members");
        check_exactly_once(&bootstrap, topic, &[&a, &b], "two");

        // A third member joins: everyone rebalances to a third of the partitions each.
        let c = consumer(&bootstrap, group, &strategy);
        c.subscribe(&[topic]).unwrap();
        wait_balanced(&[&a, &b, &c], "the third member's join");
        check_exactly_once(&bootstrap, topic, &[&a, &b, &c], "three");

        // It leaves (LeaveGroup on close): the other two take its partitions.
        c.unsubscribe();
        drop(c);
        wait_balanced(&[&a, &b], "the rebalance after a member left");
        check_exactly_once(&bootstrap, topic, &[&a, &b], "after-leave");

        // A member that dies without leaving is dropped when its session times out.
        let mut killed = kcat_member(&bootstrap, group, topic);
        poll_until(
            &[&a, &b],
            |c, _| {
                let ours: usize = c.iter().map(|c| assigned(c).len()).sum();
                ours > 0 && ours < PARTITIONS as usize
            },
            "kcat to get partitions",
        );
        killed.kill().unwrap();
        killed.wait().unwrap();
        let started = Instant::now();
        wait_balanced(&[&a, &b], "the rebalance after the session timeout");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dead member was dropped within its session timeout (took {:?})",
            started.elapsed()
        );
        check_exactly_once(&bootstrap, topic, &[&a, &b], "after-kill");
    }
}

/// Consumes until `count` messages arrived, commits synchronously, and returns them.
fn consume_and_commit(consumer: &GroupConsumer, count: usize) -> BTreeSet<String> {
    let got = poll_until(
        &[consumer],
        |_, got| got[0].len() >= count,
        "messages to commit",
    );
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    got[0].iter().cloned().collect()
}

/// The group's committed offsets for every partition of `topic` (OffsetFetch), read by a
/// consumer outside the group's membership.
fn committed_offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<i64> {
    let reader = consumer(bootstrap, group, &[]);
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition(topic, p);
    }
    let committed = reader
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("groups-restart-{backend}"));
        let mut broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        create_topic(&bootstrap, "kept", PARTITIONS);
        let first = produce(&bootstrap, "kept", "before", 240);
        let member = consumer(&bootstrap, "keeper", &[]);
        member.subscribe(&["kept"]).unwrap();
        assert_eq!(consume_and_commit(&member, first.len()), first);
        member.unsubscribe();
        drop(member);
        assert_eq!(
            committed_offsets(&bootstrap, "keeper", "kept"),
            vec![20; PARTITIONS as usize]
        );

        broker.signal(libc::SIGTERM);
        assert!(broker.wait_exit(TIMEOUT).unwrap().success());
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        assert_eq!(
            committed_offsets(&bootstrap, "keeper", "kept"),
            vec![20; PARTITIONS as usize],
            "{backend}: loaded back from __consumer_offsets"
        );
        let second = produce(&bootstrap, "kept", "after", 120);
        let member = consumer(&bootstrap, "keeper", &[]);
        member.subscribe(&["kept"]).unwrap();
        let got = poll_until(
            &[&member],
            {
                let started = Instant::now();
                move |_, got| got[0].len() >= 120 && started.elapsed() > Duration::from_secs(2)
            },
            "the messages after the restart",
        );
        let got_set: BTreeSet<String> = got[0].iter().cloned().collect();
        assert_eq!(
            got_set, second,
            "{backend}: resumed after the committed offsets"
        );
        assert_eq!(got[0].len(), second.len(), "{backend}: nothing read twice");
    }
}

#[test]
fn auto_offset_reset_earliest_and_latest() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("groups-reset-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        create_topic(&bootstrap, "resets", PARTITIONS);
        let old = produce(&bootstrap, "resets", "old", 120);

        let earliest = consumer(
            &bootstrap,
            "from-earliest",
            &[("auto.offset.reset", "earliest")],
        );
        earliest.subscribe(&["resets"]).unwrap();
        let got = poll_until(&[&earliest], |_, got| got[0].len() >= old.len(), "earliest");
        assert_eq!(got[0].iter().cloned().collect::<BTreeSet<_>>(), old);

        let latest = consumer(
            &bootstrap,
            "from-latest",
            &[("auto.offset.reset", "latest")],
        );
        latest.subscribe(&["resets"]).unwrap();
        poll_until(
            &[&latest],
            |c, _| assigned(c[0]).len() == PARTITIONS as usize,
            "latest: assigned",
        );
        // The reset to the end happens a moment after the assignment: produce until messages
        // arrive, then check that none of the old ones did.
        let mut received = Vec::new();
        for round in 0.. {
            assert!(round < 60, "latest: nothing arrived");
            produce(&bootstrap, "resets", &format!("new{round}"), 12);
            let got = poll_until(
                &[&latest],
                {
                    let started = Instant::now();
                    move |_, got| {
                        !got[0].is_empty() || started.elapsed() > Duration::from_millis(500)
                    }
                },
                "latest: new messages",
            );
            received.extend(got[0].iter().cloned());
            if !received.is_empty() {
                break;
            }
        }
        let new = produce(&bootstrap, "resets", "final", 60);
        let got = poll_until(
            &[&latest],
            |_, got| got[0].len() >= new.len(),
            "latest: final",
        );
        received.extend(got[0].iter().cloned());
        assert!(
            received.iter().all(|m| !m.starts_with("old-")),
            "{backend}: latest skips what was there: {received:?}"
        );
        let got: BTreeSet<String> = received
            .into_iter()
            .filter(|m| m.starts_with("final-"))
            .collect();
        assert_eq!(got, new, "{backend}: latest starts after what was there");
    }
}

#[test]
fn static_members_rejoin_without_a_rebalance() {
    for backend in backends_under_test() {
        let dir = TempDir::new(&format!("groups-static-{backend}"));
        let broker = start(&dir, backend);
        let bootstrap = broker.addr.to_string();
        let topic = "statics";
        create_topic(&bootstrap, topic, PARTITIONS);
        let settings = |instance: &'static str| {
            [
                ("group.instance.id", instance),
                ("session.timeout.ms", "20000"),
                ("partition.assignment.strategy", "range"),
            ]
        };
        let a = consumer(&bootstrap, "static-group", &settings("static-a"));
        let b = consumer(&bootstrap, "static-group", &settings("static-b"));
        a.subscribe(&[topic]).unwrap();
        b.subscribe(&[topic]).unwrap();
        wait_balanced(&[&a, &b], "two static members");
        let a_partitions = assigned(&a);
        let b_rebalances = b.context().rebalances.clone();
        let before = b_rebalances.load(Ordering::SeqCst);

        // A static member closing doesn't leave the group; the same instance coming back
        // within the session timeout takes its place and its partitions.
        drop(a);
        let a2 = consumer(&bootstrap, "static-group", &settings("static-a"));
        a2.subscribe(&[topic]).unwrap();
        poll_until(
            &[&a2, &b],
            |c, _| assigned(c[0]) == a_partitions,
            "the restarted member's partitions",
        );
        check_exactly_once(&bootstrap, topic, &[&a2, &b], &format!("{backend}-static"));
        assert_eq!(
            b_rebalances.load(Ordering::SeqCst),
            before,
            "{backend}: the other member saw no rebalance"
        );
        assert_eq!(assigned(&b).len() + a_partitions.len(), PARTITIONS as usize);
    }
}
