//! Apache Iggy's "pinned" benchmarks spoken in Kafka's protocol, so the two brokers can be
//! measured side by side with the same shape of load (`bench/compare.sh`):
//!
//! - each producer owns a topic of one partition and sends the same prebuilt batch of
//!   `messages_per_batch` messages over and over, `in_flight` requests at a time (1, as
//!   iggy-bench's producers, unless told otherwise);
//! - each consumer reads one producer's topic from its start while it is being written, as a
//!   Kafka consumer with default fetch sizes would (1 MiB per partition, 100 ms long poll).
//!
//! Every producer and consumer is a thread with a blocking connection of its own, so the
//! generator spends its CPU on the sockets and nothing else; the report says how much CPU that
//! was next to the broker's, so a run that measured the generator shows as one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::log::builder::{BatchBuilder, Record};

use crate::client::{create_topics, produce_frame, Conn, PRODUCE_VERSION};
use crate::cpu;
use crate::latency::{Latencies, Percentiles};

const FETCH_VERSION: i16 = 12;
/// A Kafka consumer's default `max.partition.fetch.bytes`.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// Offsets inside a record batch's header (Kafka's v2 format).
const BATCH_LENGTH_AT: usize = 8;
const BATCH_HEADER_BYTES: usize = 61;
const RECORD_COUNT_AT: usize = 57;

/// What a pinned run does.
#[derive(Debug, Clone)]
pub struct PinnedShape {
    pub producers: usize,
    /// Consumers, each reading producer i's topic (at most one per producer).
    pub consumers: usize,
    pub message_size: usize,
    pub messages_per_batch: usize,
    pub in_flight: usize,
    pub acks: i16,
    pub seconds: Duration,
    /// Prefix of the topics' names (`<prefix>-<i>`), so repeated runs can use fresh topics.
    pub topic_prefix: String,
    /// Topic configs the topics are created with (e.g. `flush.policy`).
    pub topic_configs: std::collections::BTreeMap<String, String>,
}

/// What went through, and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PinnedReport {
    pub seconds: f64,
    pub produced_messages: u64,
    /// Message payload bytes acknowledged (what iggy-bench counts as user data).
    pub produced_bytes: u64,
    pub consumed_messages: u64,
    pub consumed_bytes: u64,
    /// Send to acknowledgement of each produce request.
    pub produce_latency_us: Percentiles,
    /// CPU time of this process (all its producers and consumers).
    pub generator_cpu_seconds: f64,
    /// CPU time of the broker's process, when its pid was given.
    pub broker_cpu_seconds: Option<f64>,
}

impl PinnedReport {
    pub fn produced_mb_per_sec(&self) -> f64 {
        self.produced_bytes as f64 / 1e6 / self.seconds
    }

    pub fn consumed_mb_per_sec(&self) -> f64 {
        self.consumed_bytes as f64 / 1e6 / self.seconds
    }

    /// One line per figure, for people and for `bench/compare.sh` (which greps the
    /// `key=value` pairs on the last line).
    pub fn summary(&self) -> String {
        let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        let per_gib = |cpu: f64| {
            let moved = gib(self.produced_bytes + self.consumed_bytes);
            if moved > 0.0 {
                cpu / moved
            } else {
                0.0
            }
        };
        let broker = self
            .broker_cpu_seconds
            .map_or("-".to_owned(), |c| format!("{c:.2}"));
        let broker_per_gib = self
            .broker_cpu_seconds
            .map_or("-".to_owned(), |c| format!("{:.2}", per_gib(c)));
        format!(
            "produced {:.1} MB/s ({} messages), consumed {:.1} MB/s ({} messages) in {:.2} s\n\
             produce request latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n\
             CPU: generator {:.2} s ({:.2} of a core), broker {broker} s ({broker_per_gib} CPU-s per GiB moved)\n\
             produce_mb_s={:.1} consume_mb_s={:.1} generator_cpu_s={:.2} broker_cpu_s={broker}\n",
            self.produced_mb_per_sec(),
            self.produced_messages,
            self.consumed_mb_per_sec(),
            self.consumed_messages,
            self.seconds,
            self.produce_latency_us.p50 as f64 / 1000.0,
            self.produce_latency_us.p99 as f64 / 1000.0,
            self.produce_latency_us.max as f64 / 1000.0,
            self.generator_cpu_seconds,
            self.generator_cpu_seconds / self.seconds,
            self.produced_mb_per_sec(),
            self.consumed_mb_per_sec(),
            self.generator_cpu_seconds,
        )
    }
}

/// What one producer or consumer thread counted.
#[derive(Default)]
struct Counted {
    messages: u64,
    bytes: u64,
    latencies: Latencies,
}

/// Creates the topics, runs the producers and consumers for `shape.seconds`, and reports.
pub fn run(
    bootstrap: &str,
    shape: &PinnedShape,
    broker_pid: Option<u32>,
) -> Result<PinnedReport, String> {
    if shape.consumers > shape.producers {
        return Err(format!(
            "{} consumers for {} producers: each consumer reads one producer's topic",
            shape.consumers, shape.producers
        ));
    }
    let topics: Vec<String> = (0..shape.producers)
        .map(|i| format!("{}-{i}", shape.topic_prefix))
        .collect();
    create_topics(bootstrap, &topics, 1, 1, &shape.topic_configs)?;
    let batch = prebuilt_batch(shape.message_size, shape.messages_per_batch);

    let broker_before = broker_pid.map(cpu::process_seconds).transpose()?;
    let generator_before = cpu::own_seconds()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut producers = Vec::new();
    for topic in &topics {
        let (bootstrap, topic, batch, stop) = (
            bootstrap.to_owned(),
            topic.clone(),
            batch.clone(),
            stop.clone(),
        );
        let shape = shape.clone();
        producers.push(std::thread::spawn(move || {
            produce(&bootstrap, &topic, &batch, &shape, &stop)
        }));
    }
    let mut consumers = Vec::new();
    for topic in topics.iter().take(shape.consumers) {
        let (bootstrap, topic, stop) = (bootstrap.to_owned(), topic.clone(), stop.clone());
        let message_size = shape.message_size as u64;
        consumers.push(std::thread::spawn(move || {
            consume(&bootstrap, &topic, message_size, &stop)
        }));
    }
    std::thread::sleep(shape.seconds);
    stop.store(true, Ordering::Relaxed);
    let join = |handles: Vec<std::thread::JoinHandle<Result<Counted, String>>>| -> Result<Counted, String> {
        let mut total = Counted::default();
        for handle in handles {
            let counted = handle.join().map_err(|_| "a load thread panicked".to_owned())??;
            total.messages += counted.messages;
            total.bytes += counted.bytes;
            total.latencies.merge(&counted.latencies);
        }
        Ok(total)
    };
    let produced = join(producers)?;
    let consumed = join(consumers)?;
    let seconds = started.elapsed().as_secs_f64();
    let generator_cpu_seconds = cpu::own_seconds()? - generator_before;
    let broker_cpu_seconds = match (broker_pid, broker_before) {
        (Some(pid), Some(before)) => Some(cpu::process_seconds(pid)? - before),
        _ => None,
    };
    Ok(PinnedReport {
        seconds,
        produced_messages: produced.messages,
        produced_bytes: produced.bytes,
        consumed_messages: consumed.messages,
        consumed_bytes: consumed.bytes,
        produce_latency_us: produced.latencies.percentiles(),
        generator_cpu_seconds,
        broker_cpu_seconds,
    })
}

/// One record batch of `messages` values of `size` bytes, no keys (as iggy-bench's messages).
fn prebuilt_batch(size: usize, messages: usize) -> Bytes {
    let mut builder = BatchBuilder::new();
    let timestamp = crate::client::now_ms();
    for i in 0..messages {
        builder.push(&Record {
            value: Some(vec![(i % 251) as u8; size]),
            timestamp,
            ..Default::default()
        });
    }
    Bytes::from(builder.build())
}

fn produce(
    bootstrap: &str,
    topic: &str,
    batch: &Bytes,
    shape: &PinnedShape,
    stop: &AtomicBool,
) -> Result<Counted, String> {
    let mut conn = Conn::connect(bootstrap)?;
    let mut frame = produce_frame(topic, vec![(0, batch.clone())], shape.acks);
    let mut counted = Counted::default();
    let mut sent_at = std::collections::VecDeque::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && sent_at.len() < shape.in_flight {
            conn.send_frame(&mut frame);
            sent_at.push_back(Instant::now());
        }
        let Some(sent) = sent_at.pop_front() else {
            return Ok(counted);
        };
        if shape.acks == 0 {
            continue;
        }
        let response: ProduceResponse = conn.receive(ApiKey::Produce, PRODUCE_VERSION);
        counted.latencies.record(sent.elapsed());
        let error = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map_or(-1, |p| p.error_code);
        if error != 0 {
            return Err(format!("producing to {topic}: error {error}"));
        }
        counted.messages += shape.messages_per_batch as u64;
        counted.bytes += (shape.messages_per_batch * shape.message_size) as u64;
    }
}

/// Counts `message_size` payload bytes per record read, as the producers count them.
fn consume(
    bootstrap: &str,
    topic: &str,
    message_size: u64,
    stop: &AtomicBool,
) -> Result<Counted, String> {
    let mut conn = Conn::connect(bootstrap)?;
    let mut counted = Counted::default();
    let mut offset = 0i64;
    let name = TopicName(StrBytes::from_string(topic.to_owned()));
    while !stop.load(Ordering::Relaxed) {
        let mut partition = FetchPartition::default();
        partition.fetch_offset = offset;
        partition.partition_max_bytes = PARTITION_FETCH_BYTES;
        let mut wanted = FetchTopic::default();
        wanted.topic = name.clone();
        wanted.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.max_wait_ms = 100;
        request.min_bytes = 1;
        request.max_bytes = 50 << 20;
        request.session_epoch = -1;
        request.topics = vec![wanted];
        conn.send(ApiKey::Fetch, FETCH_VERSION, &request);
        let response: FetchResponse = conn.receive(ApiKey::Fetch, FETCH_VERSION);
        let partition = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| format!("fetching {topic}: an answer without the partition"))?;
        if partition.error_code != 0 {
            return Err(format!("fetching {topic}: error {}", partition.error_code));
        }
        let records = partition.records.clone().unwrap_or_default();
        let whole = whole_batches(&records);
        counted.messages += whole.records;
        counted.bytes += whole.records * message_size;
        if let Some(next) = whole.next_offset {
            offset = next;
        }
    }
    Ok(counted)
}

/// What the whole batches at the front of a fetched records section hold.
#[derive(Debug, Default, PartialEq)]
pub struct WholeBatches {
    pub records: u64,
    /// The offset after the last whole batch (none without one).
    pub next_offset: Option<i64>,
}

/// Walks the whole batches of `records` (a fetch may end in a partial one, which the next
/// fetch returns whole).
pub fn whole_batches(records: &[u8]) -> WholeBatches {
    let mut found = WholeBatches::default();
    let mut at = 0usize;
    while let Some(header) = records.get(at..at + BATCH_HEADER_BYTES) {
        let field =
            |from: usize| -> [u8; 4] { header[from..from + 4].try_into().unwrap_or_default() };
        let Ok(length) = usize::try_from(i32::from_be_bytes(field(BATCH_LENGTH_AT))) else {
            break;
        };
        let size = length + 12;
        if size < BATCH_HEADER_BYTES || at + size > records.len() {
            break;
        }
        let base = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let last_delta = i32::from_be_bytes(field(23));
        let count = i32::from_be_bytes(field(RECORD_COUNT_AT));
        found.records += u64::try_from(count).unwrap_or(0);
        found.next_offset = Some(base + i64::from(last_delta) + 1);
        at += size;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_batches_count_records_and_stop_at_a_partial_batch() {
        let one = prebuilt_batch(100, 10);
        let mut two = one.to_vec();
        // The second batch starts at offset 10.
        let mut second = one.to_vec();
        second[0..8].copy_from_slice(&10i64.to_be_bytes());
        two.extend_from_slice(&second);
        let found = whole_batches(&two);
        assert_eq!(found.records, 20);
        assert_eq!(found.next_offset, Some(20));

        let cut = whole_batches(&two[..two.len() - 1]);
        assert_eq!((cut.records, cut.next_offset), (10, Some(10)));
        assert_eq!(whole_batches(&two[..30]), WholeBatches::default());
    }
}
