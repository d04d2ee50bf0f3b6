//! The load generator: producers and consumers as tasks on Runnel's own runtime, speaking the
//! Kafka protocol through the kafka-protocol codec, so the client costs little next to the
//! broker it measures.
//!
//! Every message value starts with the time it was meant to be sent (nanoseconds since the run's
//! base instant; the actual send time when the producer is unthrottled) and the producer's
//! sequence number. Producers record publish latency (send call to acknowledgement, from the
//! intended time when the rate is fixed) and publish delay (how late the send call was);
//! consumers record end-to-end latency from the value's time to the moment they decode it.
//! Only messages meant to be sent after the warm-up count.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::rt::{self, Runtime, RuntimeConfig, TcpStream};
use runnel_net::kafka::frame::FrameReader;

use crate::client::{connect, create_topics, produce_frame, PRODUCE_VERSION};
use crate::compression::compress_batch;
use crate::fetcher::Fetcher;
use crate::group::{form_group, GroupSession, Membership};
use crate::latency::{corrected_latency, intended_send_time, Latencies, Percentiles};
use crate::workload::{KeyDistribution, Workload, MESSAGE_HEADER};

/// How often group consumers commit their positions and heartbeat.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long consumers keep reading after the producers stop, for messages still in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub workload: String,
    pub seconds: f64,
    pub published: u64,
    pub consumed: u64,
    pub publish_rate: f64,
    pub publish_mib_per_sec: f64,
    pub consume_rate: f64,
    /// Send call to acknowledgement (from the intended send time when the rate is fixed).
    pub publish_latency_us: Percentiles,
    /// How late send calls were against the schedule (zero when unthrottled).
    pub publish_delay_us: Percentiles,
    /// Intended send time to the consumer decoding the message.
    pub end_to_end_us: Percentiles,
    /// Messages acknowledged and consumed in each second of the run (warm-up included).
    pub publish_per_second: Vec<u64>,
    pub consume_per_second: Vec<u64>,
    /// With `find_max_rate`: the search's steps; this run is at the highest sustained rate.
    pub rate_search: Vec<crate::rate_search::Step>,
    /// CPU time the generator's process used from the start of its producers to the end of
    /// its consumers' drain, and that span's length: the generator's share of a core, so a
    /// run it could not keep up with shows as one (with `publish_delay_us`, its lateness).
    pub generator_cpu_seconds: f64,
    pub generator_wall_seconds: f64,
}

/// What every task adds to at the end.
#[derive(Default)]
struct Collected {
    publish: Latencies,
    delay: Latencies,
    end_to_end: Latencies,
    published: u64,
    consumed: u64,
}

/// Shared by all tasks of a run.
struct Run {
    bootstrap: String,
    workload: Workload,
    topics: Vec<String>,
    /// With `consumer_group`: each topic's consumers' group memberships, in consumer order.
    memberships: Vec<Vec<Membership>>,
    base: Instant,
    /// `base` as milliseconds since the Unix epoch, for the records' CreateTime.
    base_unix_ms: i64,
    /// Messages meant to be sent from here on are measured.
    measure_from: Instant,
    /// Producers stop sending here.
    end: Instant,
    collected: Mutex<Collected>,
    publish_seconds: Vec<AtomicU64>,
    consume_seconds: Vec<AtomicU64>,
    /// Producers that have sent everything and had it acknowledged.
    producers_done: AtomicU64,
    /// Messages sent (warm-up included) and messages consumed: consumers stop early once
    /// every producer is done and they have read everything.
    sent_total: AtomicU64,
    received_total: AtomicU64,
}

impl Run {
    fn second_of(&self, at: Instant) -> usize {
        (at.saturating_duration_since(self.base).as_secs() as usize)
            .min(self.publish_seconds.len() - 1)
    }
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }
    fn instant(&self, nanos: u64) -> Instant {
        self.base + Duration::from_nanos(nanos)
    }
}

/// The load generator's own runtime.
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    /// Shards its producers and consumers are spread over; 0: one per online core.
    pub cores: usize,
    /// How long an idle shard spins before it sleeps in the kernel. A sleeping generator
    /// wakes tens of microseconds late for each message it is due to send (more in a VM);
    /// spinning removes that from what it measures, at the cost of a core per shard, so it
    /// belongs on a core of its own.
    pub idle_poll: Duration,
}

impl Generator {
    /// One shard that sleeps when idle.
    pub const DEFAULT: Generator = Generator {
        cores: 1,
        idle_poll: Duration::ZERO,
    };

    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            cores: self.cores,
            pin_threads: false,
            idle_poll: self.idle_poll,
            ..RuntimeConfig::default()
        }
    }
}

/// Creates the workload's topics (named `<workload>-<run id>-<n>`) and runs it against
/// `bootstrap` with the generator on a runtime of its own.
pub fn run(bootstrap: &str, workload: &Workload, generator: Generator) -> Result<Report, String> {
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 100_000)
    );
    let topics: Vec<String> = (0..workload.topics)
        .map(|t| format!("{}-{run_id}-{t}", workload.name))
        .collect();
    create_topics(
        bootstrap,
        &topics,
        workload.partitions_per_topic,
        workload.replication_factor,
        &workload.topic_configs,
    )?;
    let memberships = if workload.consumer_group && workload.consumers_per_topic > 0 {
        form_groups(bootstrap, &topics, workload)?
    } else {
        Vec::new()
    };
    let base = Instant::now();
    let total = workload.warmup() + workload.duration();
    let seconds = (total + DRAIN).as_secs() as usize + 2;
    let run = Arc::new(Run {
        bootstrap: bootstrap.to_owned(),
        workload: workload.clone(),
        topics,
        memberships,
        base,
        base_unix_ms: crate::client::now_ms(),
        measure_from: base + workload.warmup(),
        end: base + total,
        collected: Mutex::new(Collected::default()),
        publish_seconds: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        consume_seconds: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        producers_done: AtomicU64::new(0),
        sent_total: AtomicU64::new(0),
        received_total: AtomicU64::new(0),
    });
    let config = generator.runtime_config();
    let cpu_before = crate::cpu::own_seconds()?;
    let runtime = Runtime::start(config, |_| async {}).map_err(|e| e.to_string())?;
    let handle = runtime.handle();
    let shards = runtime.shard_count();
    let threads: Vec<_> = (0..shards)
        .map(|shard| {
            let handle = handle.clone();
            let run = run.clone();
            std::thread::spawn(move || {
                handle
                    .run_on(shard, move || run_shard(run, shard, shards))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let progress = progress_line(run.clone());
    let mut failures = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) | Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a generator thread panicked".into()),
        }
    }
    runtime.shutdown();
    runtime.join().map_err(|e| e.to_string())?;
    progress.finish();
    let generator_cpu_seconds = crate::cpu::own_seconds()? - cpu_before;
    let generator_wall_seconds = base.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let collected = run.collected.lock().unwrap_or_else(|e| e.into_inner());
    let measured = workload.duration().as_secs_f64();
    Ok(Report {
        workload: workload.name.clone(),
        seconds: measured,
        published: collected.published,
        consumed: collected.consumed,
        publish_rate: collected.published as f64 / measured,
        publish_mib_per_sec: collected.published as f64 * workload.message_size as f64
            / measured
            / (1u64 << 20) as f64,
        consume_rate: collected.consumed as f64 / measured,
        publish_latency_us: collected.publish.percentiles(),
        publish_delay_us: collected.delay.percentiles(),
        end_to_end_us: collected.end_to_end.percentiles(),
        publish_per_second: counts(&run.publish_seconds),
        consume_per_second: counts(&run.consume_seconds),
        rate_search: Vec::new(),
        generator_cpu_seconds,
        generator_wall_seconds,
    })
}

/// Prints the last second's publish and consume counts on stderr once a second.
struct Progress {
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Progress {
    fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        eprintln!();
    }
}

fn progress_line(run: Arc<Run>) -> Progress {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let thread = std::thread::spawn(move || {
        let mut second = 1;
        while !stop.load(Ordering::Relaxed) {
            let next = run.base + Duration::from_secs(second);
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
            if Instant::now() < next {
                continue;
            }
            let at = (second - 1) as usize;
            let phase = if run.base + Duration::from_secs(second) <= run.measure_from {
                "warm-up"
            } else if run.base + Duration::from_secs(second) <= run.end {
                "measuring"
            } else {
                "draining"
            };
            if at < run.publish_seconds.len() {
                eprint!(
                    "\r[{second:>4} s {phase:<9}] published {:>9} msg/s, consumed {:>9} msg/s ",
                    run.publish_seconds[at].load(Ordering::Relaxed),
                    run.consume_seconds[at].load(Ordering::Relaxed)
                );
            }
            second += 1;
        }
    });
    Progress { done, thread }
}

fn counts(seconds: &[AtomicU64]) -> Vec<u64> {
    let mut counts: Vec<u64> = seconds.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    while counts.last() == Some(&0) {
        counts.pop();
    }
    counts
}

/// Forms each topic's consumer group (`<topic>-consumers`), the topics' groups concurrently.
fn form_groups(
    bootstrap: &str,
    topics: &[String],
    w: &Workload,
) -> Result<Vec<Vec<Membership>>, String> {
    std::thread::scope(|scope| {
        let forming: Vec<_> = topics
            .iter()
            .map(|topic| {
                scope.spawn(move || {
                    let group = format!("{topic}-consumers");
                    form_group(
                        bootstrap,
                        &group,
                        topic,
                        w.partitions_per_topic,
                        w.consumers_per_topic,
                    )
                })
            })
            .collect();
        forming
            .into_iter()
            .map(|f| {
                f.join()
                    .map_err(|_| "forming a group panicked".to_string())?
            })
            .collect()
    })
}

/// This shard's share of the producers and consumers (spread round-robin over shards).
async fn run_shard(run: Arc<Run>, shard: usize, shards: usize) -> Result<(), String> {
    let w = &run.workload;
    let mut tasks = Vec::new();
    let mut index = 0;
    for topic in 0..w.topics {
        for consumer in 0..w.consumers_per_topic {
            if index % shards == shard {
                let membership = run.memberships.get(topic).map(|m| m[consumer].clone());
                let partitions: Vec<i32> = match &membership {
                    Some(m) => m.partitions.clone(),
                    None => (0..w.partitions_per_topic as i32)
                        .filter(|p| *p as usize % w.consumers_per_topic == consumer)
                        .collect(),
                };
                tasks.push(rt::spawn_local(consume(
                    run.clone(),
                    topic,
                    partitions,
                    membership,
                )));
            }
            index += 1;
        }
    }
    for topic in 0..w.topics {
        for producer in 0..w.producers_per_topic {
            if index % shards == shard {
                tasks.push(rt::spawn_local(produce(run.clone(), topic, producer)));
            }
            index += 1;
        }
    }
    let mut result = Ok(());
    for task in tasks {
        if let Err(e) = task.await {
            result = Err(e);
        }
    }
    result
}

/// The messages of one Produce request: when each was meant to go out and was handed over.
type Sent = Vec<(Option<Instant>, Instant)>;

/// A producer's requests awaiting their responses, shared with its response reader.
#[derive(Default)]
struct Pipeline {
    sent: RefCell<VecDeque<Sent>>,
    /// Why the reader stopped, if it failed: no more responses will come.
    failure: RefCell<Option<String>>,
    /// Notified on every response (a slot freed) and when the reader stops.
    changed: rt::LocalEvent,
}

impl Pipeline {
    /// Whether another request may be sent now.
    fn has_slot(&self, w: &Workload) -> bool {
        w.acks == 0 || self.sent.borrow().len() < w.max_in_flight
    }
}

/// One partition's batch being filled.
struct Batch {
    builder: BatchBuilder,
    bytes: usize,
    messages: Sent,
    opened: Instant,
}

async fn produce(run: Arc<Run>, topic: usize, producer: usize) -> Result<(), String> {
    let w = run.workload.clone();
    let stream = Rc::new(connect(&run.bootstrap).await?);
    let pipeline: Rc<Pipeline> = Rc::default();
    let acks = if w.acks == 0 {
        None
    } else {
        Some(rt::spawn_local(read_acks(
            run.clone(),
            stream.clone(),
            pipeline.clone(),
        )))
    };
    let rate = w.rate_per_producer();
    let partitions = w.partitions_per_topic;
    let linger = Duration::from_millis(w.linger_ms);
    let mut batches: Vec<Option<Batch>> = (0..partitions).map(|_| None).collect();
    let padding = vec![0u8; w.message_size - MESSAGE_HEADER];
    let start = Instant::now();
    let mut delay = Latencies::default();
    let mut seq: u64 = 0;
    let mut next_partition = producer % partitions;
    loop {
        let now = Instant::now();
        let intended = intended_send_time(start, seq, rate);
        if now >= run.end || intended.is_some_and(|i| i >= run.end) {
            break;
        }
        // Send batches whose linger ran out while a request slot is free; with every slot
        // taken they keep filling (as a Kafka client's accumulator does) until one frees.
        // Like a Kafka client, one request carries every partition's ready batch.
        if pipeline.has_slot(&w) {
            let ready: Vec<(usize, Batch)> = batches
                .iter_mut()
                .enumerate()
                .filter(|(_, slot)| slot.as_ref().is_some_and(|b| now >= b.opened + linger))
                .map(|(p, slot)| (p, slot.take().expect("checked")))
                .collect();
            if !ready.is_empty() {
                send_batches(&run, &stream, &pipeline, topic, ready).await?;
            }
        }
        if let Some(at) = intended {
            if at > Instant::now() {
                let oldest = batches.iter().flatten().map(|b| b.opened + linger).min();
                let lingered = oldest.is_some_and(|o| o <= Instant::now());
                if lingered {
                    // A batch waits for a slot: wake on a response or the next message.
                    let changed = pipeline.changed.wait();
                    let until = at.saturating_duration_since(Instant::now());
                    rt::select(rt::sleep(until), changed).await;
                } else {
                    let wake = oldest.map_or(at, |o| o.min(at));
                    rt::sleep(wake.saturating_duration_since(Instant::now())).await;
                }
                if Instant::now() < at {
                    continue;
                }
            }
        }
        let sent = Instant::now();
        if let Some(i) = intended {
            if i >= run.measure_from {
                delay.record(sent.saturating_duration_since(i));
            }
        }
        let stamp = run.nanos(intended.unwrap_or(sent));
        let mut value = Vec::with_capacity(w.message_size);
        value.extend_from_slice(&stamp.to_be_bytes());
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(&padding);
        let partition = next_partition;
        next_partition = (next_partition + 1) % partitions;
        let key = match w.key_distribution {
            KeyDistribution::None => None,
            KeyDistribution::RoundRobin => Some((seq % partitions as u64).to_string().into_bytes()),
            KeyDistribution::Random => {
                let mut key = stamp.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                if w.key_space > 0 {
                    key %= w.key_space;
                }
                Some(format!("{key:x}").into_bytes())
            }
        };
        let batch = batches[partition].get_or_insert_with(|| Batch {
            builder: BatchBuilder::new(),
            bytes: 0,
            messages: Vec::new(),
            opened: sent,
        });
        batch.builder.push(&Record {
            key,
            value: Some(value),
            headers: Vec::new(),
            timestamp: run.base_unix_ms + (stamp / 1_000_000) as i64,
        });
        batch.bytes += w.message_size;
        batch.messages.push((intended, sent));
        seq += 1;
        if batch.bytes >= w.batch_size {
            let batch = batches[partition].take().expect("just filled");
            send_batches(&run, &stream, &pipeline, topic, vec![(partition, batch)]).await?;
        }
    }
    let rest: Vec<(usize, Batch)> = batches
        .into_iter()
        .enumerate()
        .filter_map(|(p, b)| Some((p, b?)))
        .collect();
    if !rest.is_empty() {
        send_batches(&run, &stream, &pipeline, topic, rest).await?;
    }
    // Wait for the last acknowledgements, then stop the reader.
    loop {
        let wait = pipeline.changed.wait();
        if pipeline.sent.borrow().is_empty() || pipeline.failure.borrow().is_some() {
            break;
        }
        wait.await;
    }
    if let Some(acks) = acks {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        acks.await?;
    }
    run.collected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .delay
        .merge(&delay);
    run.sent_total.fetch_add(seq, Ordering::SeqCst);
    run.producers_done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Sends one Produce request carrying `batches` (partition, batch), once a request slot is
/// free.
async fn send_batches(
    run: &Run,
    stream: &TcpStream,
    pipeline: &Pipeline,
    topic: usize,
    batches: Vec<(usize, Batch)>,
) -> Result<(), String> {
    let w = &run.workload;
    loop {
        let wait = pipeline.changed.wait();
        if let Some(e) = pipeline.failure.borrow().as_ref() {
            return Err(e.clone());
        }
        if pipeline.has_slot(w) {
            break;
        }
        wait.await;
    }
    let mut messages = Vec::new();
    let mut records = Vec::with_capacity(batches.len());
    for (partition, batch) in batches {
        let built = compress_batch(batch.builder.build(), w.compression)?;
        records.push((partition, Bytes::from(built)));
        messages.extend(batch.messages);
    }
    let frame = produce_frame(&run.topics[topic], records, w.acks);
    if w.acks == 0 {
        let done = Instant::now();
        count_published(run, &messages, done, &mut Latencies::default());
    } else {
        pipeline.sent.borrow_mut().push_back(messages);
    }
    let (result, _) = stream.send_all(frame).await;
    result.map_err(|e| format!("sending a produce request: {e}"))
}

/// Counts acknowledged messages (and, when `publish` is given, their latencies).
fn count_published(run: &Run, messages: &Sent, done: Instant, publish: &mut Latencies) {
    let mut measured = 0;
    for &(intended, sent) in messages {
        if intended.unwrap_or(sent) >= run.measure_from {
            publish.record(corrected_latency(intended, sent, done));
            measured += 1;
        }
    }
    run.publish_seconds[run.second_of(done)].fetch_add(messages.len() as u64, Ordering::Relaxed);
    run.collected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .published += measured;
}

/// Reads Produce responses in order and records each request's messages as acknowledged.
async fn read_acks(
    run: Arc<Run>,
    stream: Rc<TcpStream>,
    pipeline: Rc<Pipeline>,
) -> Result<(), String> {
    let mut frames = FrameReader::new(64 << 20);
    let mut publish = Latencies::default();
    let result = loop {
        let frame = match frames.next(&stream).await {
            Ok(frame) => frame,
            Err(_) if pipeline.sent.borrow().is_empty() => break Ok(()),
            Err(e) => break Err(format!("reading produce responses: {e}")),
        };
        let done = Instant::now();
        let mut body = frame;
        let header_version = ApiKey::Produce.response_header_version(PRODUCE_VERSION);
        if ResponseHeader::decode(&mut body, header_version).is_err() {
            break Err("bad response header".into());
        }
        let response = match ProduceResponse::decode(&mut body, PRODUCE_VERSION) {
            Ok(r) => r,
            Err(e) => break Err(format!("bad produce response: {e}")),
        };
        let error = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .map(|p| p.error_code)
            .find(|c| *c != 0);
        if let Some(code) = error {
            break Err(format!("produce failed with error {code}"));
        }
        let Some(messages) = pipeline.sent.borrow_mut().pop_front() else {
            break Err("a response nobody asked for".into());
        };
        count_published(&run, &messages, done, &mut publish);
        pipeline.changed.notify_all();
    };
    if let Err(e) = &result {
        *pipeline.failure.borrow_mut() = Some(e.clone());
    }
    pipeline.changed.notify_all();
    run.collected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .publish
        .merge(&publish);
    result
}

async fn consume(
    run: Arc<Run>,
    topic: usize,
    partitions: Vec<i32>,
    membership: Option<Membership>,
) -> Result<(), String> {
    let mut session = match membership {
        Some(m) => Some(GroupSession::connect(m).await?),
        None if partitions.is_empty() => return Ok(()),
        None => None,
    };
    // A group member given no partitions (more consumers than partitions) only heartbeats.
    let idle = partitions.is_empty();
    let mut fetcher = Fetcher::connect(&run.bootstrap, &run.topics[topic], partitions).await?;
    let mut next_commit = Instant::now() + COMMIT_INTERVAL;
    let mut end_to_end = Latencies::default();
    let mut consumed = 0u64;
    let stop = run.end + DRAIN;
    let producers = (run.workload.topics * run.workload.producers_per_topic) as u64;
    while Instant::now() < stop {
        let everything_read = run.producers_done.load(Ordering::SeqCst) == producers
            && run.received_total.load(Ordering::SeqCst) >= run.sent_total.load(Ordering::SeqCst);
        if everything_read {
            break;
        }
        if let Some(session) = &mut session {
            if Instant::now() >= next_commit {
                let closing = Instant::now() >= run.end;
                session
                    .commit_and_heartbeat(&run.topics[topic], &fetcher.positions(), closing)
                    .await?;
                next_commit += COMMIT_INTERVAL;
            }
        }
        if idle {
            rt::sleep(next_commit.saturating_duration_since(Instant::now())).await;
            continue;
        }
        let (now, values) = fetcher.next().await?;
        for value in values {
            if value.len() < MESSAGE_HEADER {
                continue;
            }
            let stamp = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            let meant = run.instant(stamp);
            run.consume_seconds[run.second_of(now)].fetch_add(1, Ordering::Relaxed);
            run.received_total.fetch_add(1, Ordering::SeqCst);
            if meant >= run.measure_from && meant < run.end {
                end_to_end.record(now.saturating_duration_since(meant));
                consumed += 1;
            }
        }
    }
    if let Some(mut session) = session {
        session
            .commit_and_heartbeat(&run.topics[topic], &fetcher.positions(), true)
            .await?;
        session.leave().await?;
    }
    fetcher.close().await;
    let mut collected = run.collected.lock().unwrap_or_else(|e| e.into_inner());
    collected.end_to_end.merge(&end_to_end);
    collected.consumed += consumed;
    Ok(())
}

/// A human summary of a report: rates and each latency's percentiles, in milliseconds.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}: {:.0} msg/s published ({:.1} MiB/s), {:.0} msg/s consumed, over {:.0} s\n",
        report.workload,
        report.publish_rate,
        report.publish_mib_per_sec,
        report.consume_rate,
        report.seconds
    ));
    if let Some(last) = report.rate_search.last() {
        let verdict = if last.sustained {
            "held for the whole run"
        } else {
            "NOT held for the whole run"
        };
        out.push_str(&format!(
            "maximum sustainable rate: {} msg/s, {verdict} ({} steps)\n",
            last.rate,
            report.rate_search.len()
        ));
    }
    out.push_str("latency (ms)      p50      p75      p95      p99    p99.9   p99.99      max\n");
    for (name, p) in [
        ("publish", &report.publish_latency_us),
        ("publish delay", &report.publish_delay_us),
        ("end to end", &report.end_to_end_us),
    ] {
        out.push_str(&p.table_row(name));
    }
    out.push_str(&format!(
        "generator: {:.2} CPU-s over {:.1} s ({:.2} of a core)\n",
        report.generator_cpu_seconds,
        report.generator_wall_seconds,
        report.generator_cpu_seconds / report.generator_wall_seconds.max(f64::MIN_POSITIVE)
    ));
    out
}
