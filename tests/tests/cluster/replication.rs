//! Replication through faults: three brokers, a topic of three replicas with
//! `min.insync.replicas=2`, an idempotent librdkafka producer with acks=all, and the
//! partition's leader SIGKILLed again and again (restarted each time, and back in the ISR
//! before the next kill). Every fifth fault is a SIGSTOP instead: the leader is frozen while
//! it still believes it leads, until the controller has fenced it and elected another; then
//! it resumes (SIGCONT) with its stale view and whatever it took meanwhile. A second test
//! partitions the network instead: the leader keeps running but is cut off from the other
//! brokers, the controller and the clients (every connection to it goes through proxies the
//! test cuts), holding the writes it took but cannot replicate, until another leads; then the
//! network heals. Afterwards:
//! - every acknowledged message is in the log at the offset it was acknowledged with, and
//!   every message is there at most once, in the order it was sent;
//! - nothing a consumer read during the kills was lost later (each offset it read still holds
//!   what it read);
//! - the three replicas' logs are byte for byte the same.
//!
//! `RUNNEL_REPLICATION_KILLS` sets the faults of the first (default 25: 20 kills, 5 stops),
//! `RUNNEL_REPLICATION_PARTITIONS` the partitions of the second (default 4);
//! `scripts/replication-kills.sh` runs a long campaign. `RUNNEL_TEST_BROKER_LOG=<filter>` and
//! `RUNNEL_TEST_PRODUCER_DEBUG=<librdkafka debug contexts>` print the brokers' and the
//! producer's logs with wall-clock times, to follow a slow failover from both sides.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use runnel_tests::cluster::Cluster;
use runnel_tests::kafka::KafkaConn;
use runnel_tests::requests;

use crate::{eventually, partition_seen_by, wait_for_brokers};

const TOPIC: &str = "replicated";
const TIMEOUT: Duration = Duration::from_secs(30);
const LEADER_NOT_AVAILABLE: i16 = 5;

/// (offset) -> the message's number, as acknowledged, read, or stored.
pub type Numbers = BTreeMap<i64, u64>;

fn kills() -> usize {
    std::env::var("RUNNEL_REPLICATION_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(25)
}

fn partitions() -> usize {
    std::env::var("RUNNEL_REPLICATION_PARTITIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4)
}

/// The number a message carries (`m-00001234`), or `u64::MAX` for anything else.
pub fn number(payload: Option<&[u8]>) -> u64 {
    payload
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.strip_prefix("m-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// What happens to the leader in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Stop,
    Partition,
}

impl Fault {
    fn done(self) -> &'static str {
        match self {
            Fault::Kill => "killed",
            Fault::Stop => "stopped",
            Fault::Partition => "cut off",
        }
    }
}

/// A deterministic pause between 100 and 700 ms before each kill.
fn pause(round: usize) -> Duration {
    Duration::from_millis(100 + (round as u64 * 7919) % 600)
}

pub struct Deliveries(pub Arc<Mutex<Numbers>>);

impl ClientContext for Deliveries {
    /// `RUNNEL_TEST_PRODUCER_DEBUG=<librdkafka debug contexts>` echoes the producer's log with
    /// wall-clock times, to line it up with the brokers' logs (`RUNNEL_TEST_BROKER_LOG`).
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        eprintln!("producer {}: {facility} {message}", wall_clock());
    }
}

/// The time of day (UTC) to the millisecond, as the brokers' logs print it.
fn wall_clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        now.subsec_millis()
    )
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            self.0
                .lock()
                .unwrap()
                .insert(message.offset(), number(message.payload()));
        }
    }
}

/// An idempotent acks=all librdkafka producer writing `m-<n>` to partition 0 of `topic`, about
/// 2,000 messages a second, until `stop`; each acknowledgement lands in `acked`, and
/// `sent_so_far` counts the messages handed to the client. Joining it flushes and answers how
/// many were sent.
pub fn spawn_producer(
    bootstrap: String,
    topic: &'static str,
    acked: Arc<Mutex<Numbers>>,
    sent_so_far: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut config = ClientConfig::new();
        if let Ok(contexts) = std::env::var("RUNNEL_TEST_PRODUCER_DEBUG") {
            config
                .set("debug", contexts)
                .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
        let producer: BaseProducer<Deliveries> = config
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "120000")
            // A stopped leader never answers: give up on its requests in seconds (then the
            // idempotent producer resends to the new leader) rather than in 30.
            .set("request.timeout.ms", "5000")
            .set("socket.timeout.ms", "10000")
            .set("linger.ms", "2")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "200")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create_with_context(Deliveries(acked))
            .unwrap();
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let value = format!("m-{sent:08}");
            let record = BaseRecord::to(topic).payload(&value).key("k").partition(0);
            match producer.send(record) {
                Ok(()) => {
                    sent += 1;
                    sent_so_far.store(sent, Ordering::SeqCst);
                }
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
            producer.poll(Duration::ZERO);
            if sent % 20 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        producer
            .flush(Duration::from_secs(120))
            .expect("every message acknowledged or failed");
        sent
    })
}

/// Creates `topic` (one partition, `replicas` replicas, `configs`) through node `via`.
pub fn create_replicated_topic(
    cluster: &Cluster,
    via: i32,
    topic: &str,
    replicas: i16,
    configs: &[(&str, &str)],
) {
    let mut creatable = CreatableTopic::default();
    creatable.name = requests::name(topic);
    creatable.num_partitions = 1;
    creatable.replication_factor = replicas;
    creatable.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    request.timeout_ms = 10_000;
    eventually(TIMEOUT, || {
        let mut conn = KafkaConn::connect(cluster.addr(via)).map_err(|e| e.to_string())?;
        let response: CreateTopicsResponse = conn
            .call(ApiKey::CreateTopics, 7, &request)
            .map_err(|e| e.to_string())?;
        match response.topics[0].error_code {
            0 | 36 => Ok(()),
            code => Err(format!(
                "create {topic}: {code} {:?}",
                response.topics[0].error_message
            )),
        }
    });
}

/// Waits until every running node agrees on a live leader and the ISR is `isr`; returns the
/// leader.
pub fn wait_for_isr(cluster: &Cluster, topic: &str, isr: &[i32]) -> i32 {
    let mut leader = -1;
    eventually(TIMEOUT, || {
        let running = cluster.running();
        let mut seen = Vec::new();
        for &node in &running {
            seen.push(partition_seen_by(cluster, node, topic)?);
        }
        let first = &seen[0];
        if seen.iter().any(|s| s != first) {
            return Err(format!("nodes disagree: {seen:?}"));
        }
        if !running.contains(&first.leader) || first.isr != isr {
            return Err(format!(
                "leader {} with ISR {:?}, want {isr:?}",
                first.leader, first.isr
            ));
        }
        leader = first.leader;
        Ok(())
    });
    leader
}

/// Every record of partition 0 of `topic` from offset 0 to the end, read through `bootstrap`.
pub fn read_all(bootstrap: &str, topic: &str) -> Numbers {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut stored = Numbers::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored.keys().next_back().map_or(0, |o| o + 1) < high {
        assert!(Instant::now() < deadline, "read {} of {high}", stored.len());
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let previous = stored.insert(message.offset(), number(message.payload()));
            assert!(previous.is_none(), "offset {} read twice", message.offset());
        }
    }
    stored
}

/// The partition's log as one byte string: its segment files in offset order.
pub fn log_bytes(data_dir: &Path, topic: &str) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn acknowledged_records_survive_leader_kills_and_replicas_end_identical() {
    // Controllers talking directly: a killed node's controller listener refuses connections
    // (through a proxy it would not), which is what the failover times measure.
    let cluster = Cluster::start("cluster-replication", 3);
    survive_faults(cluster, kills(), |round| {
        if round % 5 == 4 {
            Fault::Stop
        } else {
            Fault::Kill
        }
    });
}

#[test]
fn acknowledged_records_survive_network_partitions_of_the_leader() {
    let cluster = Cluster::start_partitionable("cluster-replication-cut", 3);
    survive_faults(cluster, partitions(), |_| Fault::Partition);
}

/// While the controller has not yet fenced a leader that other brokers cannot reach (a
/// network partition: its connections drop, nothing refuses them, so only its session
/// timeout ends it), their Metadata names no leader for its partitions, LEADER_NOT_AVAILABLE,
/// rather than the unreachable one; then the one the controller elects.
#[test]
fn a_leader_cut_off_from_the_others_is_not_named_until_another_leads() {
    let cluster = Cluster::start_partitionable("cluster-unreachable-leader", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_replicated_topic(&cluster, 1, "cut", 3, &[]);
    let leader = wait_for_isr(&cluster, "cut", &[1, 2, 3]);
    let other = if leader == 1 { 2 } else { 1 };
    cluster.cut_off(leader, true);
    eventually(TIMEOUT, || {
        let seen = partition_seen_by(&cluster, other, "cut")?;
        if seen.leader == -1 && seen.error_code == LEADER_NOT_AVAILABLE {
            Ok(())
        } else {
            Err(format!("node {other} sees {seen:?}"))
        }
    });
    eventually(TIMEOUT, || {
        let seen = partition_seen_by(&cluster, other, "cut")?;
        if seen.leader >= 0 && seen.leader != leader && seen.error_code == 0 {
            Ok(())
        } else {
            Err(format!("node {other} sees {seen:?}"))
        }
    });
    cluster.cut_off(leader, false);
}

/// A client that lost its connection to a leader asks another broker at once: the answer
/// must not name the dead leader, and rather than "no leader" (which parks librdkafka until
/// its once-a-second rescan when it had nothing in flight) it names the new one, waiting up
/// to half a second for the controller to elect it. Meanwhile the dead broker stays listed:
/// librdkafka, seeing it leave the list while still handling its lost connection, undid the
/// move to the new leader.
#[test]
fn an_answer_right_after_a_leaders_death_names_its_successor() {
    let mut cluster = Cluster::start("cluster-successor-named", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_replicated_topic(&cluster, 1, "successor", 3, &[]);
    let leader = wait_for_isr(&cluster, "successor", &[1, 2, 3]);
    let other = if leader == 1 { 2 } else { 1 };
    let mut conn = KafkaConn::connect(cluster.addr(other)).expect("connect");
    let mut request = kafka_protocol::messages::MetadataRequest::default();
    let mut wanted = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    wanted.name = Some(requests::name("successor"));
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = false;
    let killed = Instant::now();
    cluster.kill(leader);
    let asked = Instant::now();
    let response: kafka_protocol::messages::MetadataResponse =
        conn.call(ApiKey::Metadata, 12, &request).expect("Metadata");
    let took = asked.elapsed();
    let named = response.topics[0].partitions[0].leader_id.0;
    assert_ne!(
        named, leader,
        "the dead leader is named {took:?} after its death"
    );
    if named < 0 {
        assert!(
            took >= Duration::from_millis(450),
            "no leader named after {took:?}, without waiting for the controller's election"
        );
    }
    let listed: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
    // Within the second after the death (a slow machine may take longer to answer).
    if killed.elapsed() < Duration::from_millis(900) {
        assert!(
            listed.contains(&leader),
            "the dead broker {leader} left the list at once: {listed:?}"
        );
    }
}

/// Runs the faults `fault_of(round)` for `rounds` rounds on the leader of a replicated
/// topic under an acks=all producer and a consumer, then checks what the module promises.
fn survive_faults(mut cluster: Cluster, rounds: usize, fault_of: fn(usize) -> Fault) {
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_replicated_topic(&cluster, 1, TOPIC, 3, &[("min.insync.replicas", "2")]);
    wait_for_isr(&cluster, TOPIC, &[1, 2, 3]);
    let bootstrap = |cluster: &Cluster| {
        cluster
            .running()
            .iter()
            .map(|&n| cluster.addr(n).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };

    let acked: Arc<Mutex<Numbers>> = Arc::default();
    let read: Arc<Mutex<Numbers>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = spawn_producer(
        bootstrap(&cluster),
        TOPIC,
        acked.clone(),
        sent.clone(),
        stop.clone(),
    );
    let consuming = {
        let (read, stop, addrs) = (read.clone(), stop.clone(), bootstrap(&cluster));
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addrs)
                .set("group.id", "replication-reader")
                .set("enable.auto.commit", "false")
                .set("reconnect.backoff.ms", "20")
                .set("reconnect.backoff.max.ms", "200")
                .create()
                .unwrap();
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(TOPIC, 0, Offset::Beginning)
                .unwrap();
            consumer.assign(&assignment).unwrap();
            while !stop.load(Ordering::SeqCst) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    read.lock()
                        .unwrap()
                        .insert(message.offset(), number(message.payload()));
                }
            }
        })
    };

    // The producer must be under way (its producer id acquired, writes acknowledged) before
    // the first fault, or that fault's failover time would be the producer's start.
    eventually(TIMEOUT, || {
        if acked.lock().unwrap().is_empty() {
            Err("nothing acknowledged yet".into())
        } else {
            Ok(())
        }
    });
    let mut failovers = Vec::new();
    for round in 0..rounds {
        std::thread::sleep(pause(round));
        let fault = fault_of(round);
        let before = partition_seen_by(&cluster, cluster.running()[0], TOPIC).unwrap();
        let (leader, epoch) = (before.leader, before.leader_epoch);
        let controller = cluster.describe(leader).map_or(-1, |d| d.controller_id.0);
        match fault {
            Fault::Stop => cluster.signal(leader, libc::SIGSTOP),
            Fault::Partition => cluster.cut_off(leader, true),
            Fault::Kill => cluster.kill(leader),
        }
        let killed_at = Instant::now();
        let killed_wall = wall_clock();
        // Messages numbered from here on were handed to the client after the fault: the
        // first of them acknowledged was written through the new leader.
        let first_after = sent.load(Ordering::SeqCst);
        let asked: Vec<i32> = cluster
            .running()
            .into_iter()
            .filter(|&n| n != leader)
            .collect();
        // A new leader from the ISR, and the producer's first acknowledgement after it.
        eventually(TIMEOUT, || {
            let now = partition_seen_by(&cluster, asked[0], TOPIC)?;
            if now.leader != leader && now.leader >= 0 && now.leader_epoch > epoch {
                Ok(())
            } else {
                Err(format!(
                    "leader {} at epoch {}",
                    now.leader, now.leader_epoch
                ))
            }
        });
        let elected = killed_at.elapsed();
        eventually(TIMEOUT, || {
            if acked
                .lock()
                .unwrap()
                .values()
                .next_back()
                .is_some_and(|&number| number >= first_after)
            {
                Ok(())
            } else {
                Err("no message sent since the fault acknowledged".into())
            }
        });
        let took = killed_at.elapsed();
        let role = if controller == leader {
            " (the active controller too)"
        } else {
            ""
        };
        eprintln!(
            "fault {round} at {killed_wall}: node {leader}{role} {}; new leader in metadata \
             after {elected:?}, next acknowledgement after {took:?}",
            fault.done()
        );
        match fault {
            Fault::Stop => cluster.signal(leader, libc::SIGCONT),
            Fault::Partition => cluster.cut_off(leader, false),
            Fault::Kill => {
                failovers.push((took, controller == leader));
                cluster.start_node(leader);
            }
        }
        wait_for_isr(&cluster, TOPIC, &[1, 2, 3]);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let sent = producing.join().unwrap();
    consuming.join().unwrap();
    for (which, controllers) in [
        ("kills of a leader only", false),
        (
            "kills of a leader that was also the active controller",
            true,
        ),
    ] {
        let mut took: Vec<Duration> = failovers
            .iter()
            .filter(|(_, c)| *c == controllers)
            .map(|(t, _)| *t)
            .collect();
        took.sort();
        if took.is_empty() {
            continue;
        }
        let at = |q: usize| took[(took.len() * q / 100).min(took.len() - 1)];
        eprintln!(
            "{} {which}; killed to the next acknowledgement: p50 {:?}, p99 {:?}, max {:?}",
            took.len(),
            at(50),
            at(99),
            took[took.len() - 1]
        );
    }
    eprintln!("{sent} messages sent");

    let stored = read_all(&bootstrap(&cluster), TOPIC);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "only {} acknowledged", acked.len());
    for (offset, number) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(number),
            "acknowledged message {number} at offset {offset} is not in the log"
        );
    }
    // At most once, in the order sent (the idempotent producer keeps order through retries).
    let numbers: Vec<u64> = stored.values().copied().collect();
    for pair in numbers.windows(2) {
        assert!(
            pair[0] < pair[1],
            "message {} stored after {}",
            pair[1],
            pair[0]
        );
    }
    for (offset, number) in read.lock().unwrap().iter() {
        assert_eq!(
            stored.get(offset),
            Some(number),
            "a consumer read {number} at offset {offset}, which the log no longer holds"
        );
    }

    // Every replica has caught up once the ISR is whole and the followers' next fetch found
    // nothing new; then the logs must be the same bytes.
    wait_for_isr(&cluster, TOPIC, &[1, 2, 3]);
    let data = |cluster: &Cluster, id: i32| cluster.node(id).dir.path().join("data");
    eventually(TIMEOUT, || {
        let logs: Vec<usize> = [1, 2, 3]
            .iter()
            .map(|&id| log_bytes(&data(&cluster, id), TOPIC).len())
            .collect();
        if logs.iter().all(|&l| l == logs[0]) {
            Ok(())
        } else {
            Err(format!("replica logs of {logs:?} bytes"))
        }
    });
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    let first = log_bytes(&data(&cluster, 1), TOPIC);
    for id in [2, 3] {
        assert!(
            log_bytes(&data(&cluster, id), TOPIC) == first,
            "replica on node {id} differs from node 1's"
        );
    }
}

#[test]
fn a_leader_stopped_with_sigterm_hands_its_partitions_over_first() {
    let mut cluster = Cluster::start("cluster-controlled-shutdown", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_replicated_topic(
        &cluster,
        1,
        "handed-over",
        3,
        &[("min.insync.replicas", "2")],
    );
    let leader = wait_for_isr(&cluster, "handed-over", &[1, 2, 3]);
    let other = [1, 2, 3].into_iter().find(|&n| n != leader).unwrap();
    let stopping = cluster.nodes[(leader - 1) as usize]
        .broker
        .as_mut()
        .unwrap();
    stopping.signal(libc::SIGTERM);
    // The controller moves the leadership and takes the broker out of the ISR before the
    // broker stops serving: well before its session (2 s here) could have expired.
    stopping
        .wait_for_log(
            "moved this broker's leaderships away",
            Duration::from_secs(5),
        )
        .unwrap();
    eventually(Duration::from_secs(2), || {
        let now = partition_seen_by(&cluster, other, "handed-over")?;
        if now.leader != leader && now.leader >= 0 && !now.isr.contains(&leader) {
            Ok(())
        } else {
            Err(format!("{now:?} after the handover"))
        }
    });
    let stopping = cluster.nodes[(leader - 1) as usize]
        .broker
        .as_mut()
        .unwrap();
    stopping.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(
        stopping
            .log
            .iter()
            .any(|l| l.contains("clean shutdown complete")),
        "{}",
        stopping.log.join("\n")
    );
}

#[test]
fn refusals_reach_the_client_with_their_kafka_errors() {
    use kafka_protocol::messages::FetchResponse;
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    let cluster = Cluster::start("cluster-refusals", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    // More in-sync replicas required than the partition has: acks=all can never be met.
    create_replicated_topic(&cluster, 1, "strict", 3, &[("min.insync.replicas", "4")]);
    let leader = wait_for_isr(&cluster, "strict", &[1, 2, 3]);
    let epoch = partition_seen_by(&cluster, leader, "strict")
        .unwrap()
        .leader_epoch;
    let mut conn = KafkaConn::connect(cluster.addr(leader)).unwrap();
    let batch = || requests::records("strict", 2, 1_700_000_000_000);
    // The leader named in the metadata may still be taking the partition up: retried, as
    // clients retry NOT_LEADER_OR_FOLLOWER.
    eventually(TIMEOUT, || {
        match requests::produce(&mut conn, "strict", 0, -1, batch()).0 {
            NOT_ENOUGH_REPLICAS => Ok(()),
            NOT_LEADER_OR_FOLLOWER => Err("the leader is not leading yet".into()),
            code => panic!("acks=all answered {code}, not NOT_ENOUGH_REPLICAS"),
        }
    });
    // Nothing was appended; acks=1 is not held to the ISR.
    assert_eq!(
        requests::produce(&mut conn, "strict", 0, 1, batch()),
        (0, 0)
    );
    // A fetch naming a leader epoch the leader has not reached is refused, not served.
    let mut request = requests::fetch_request("strict", 0, 0, 0);
    request.topics[0].partitions[0].current_leader_epoch = epoch + 1;
    let response: FetchResponse = conn.call(ApiKey::Fetch, 12, &request).unwrap();
    let answer = &response.responses[0].partitions[0];
    assert_eq!(answer.error_code, UNKNOWN_LEADER_EPOCH);
    assert!(answer.records.as_ref().is_none_or(|r| r.is_empty()));
}
