//! `runnel-bench`: end-to-end throughput and latency against a running broker, and this
//! machine's limits to compare them with. The subcommands (limits, run, loopback, stats,
//! rebalance, produce, pinned, fetch) and their flags are in `cli.rs` and
//! `runnel-bench <sub> --help`.
//!
//! `run` drives the load generator (the library's `runner`, `round_trip`, `rate_search`);
//! `produce`, `pinned`, `fetch` and `rebalance` are simpler loops on the blocking client.
//!
//! Exit codes: 0 done, 1 the measurement failed (an unreachable broker, a broker error),
//! 2 a usage error (a missing or bad flag, an unreadable or invalid workload file).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_bench::client::{produce_frame, Conn};
use runnel_bench::latency::Latencies;
use runnel_bench::transactional::TxnProducer;
use runnel_engine::log::builder::{BatchBuilder, Record};

use cli::{Cli, Command};

// Next to this file in a directory of its own: a cli.rs in src/bin/ would be taken for a binary.
#[path = "runnel-bench/cli.rs"]
mod cli;

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Limits { dir, seconds } => limits(&dir, Duration::from_secs(seconds)),
        Command::Loopback { seconds } => loopback(Duration::from_secs(seconds)),
        Command::Stats { admin } => stats(&admin),
        Command::Run {
            bootstrap,
            workload,
            cores,
            idle_poll_us,
            json,
            plots,
        } => {
            let generator = runnel_bench::runner::Generator {
                cores,
                idle_poll: Duration::from_micros(idle_poll_us),
            };
            run_workload(&bootstrap, &workload, generator, json, plots);
            Ok(())
        }
        Command::Rebalance {
            bootstrap,
            members,
            partitions,
            heartbeat_ms,
            rounds,
        } => rebalance(
            &bootstrap,
            members,
            partitions,
            Duration::from_millis(heartbeat_ms),
            rounds,
        ),
        Command::Produce {
            bootstrap,
            topic,
            seconds,
            records_per_batch,
            record_bytes,
            acks,
            in_flight,
            idempotent,
            transaction_batches,
        } => produce(
            &bootstrap,
            &topic,
            Duration::from_secs(seconds),
            &ProduceShape {
                records: records_per_batch,
                record_bytes,
                acks,
                in_flight,
                idempotent: idempotent || transaction_batches > 0,
                transaction_batches,
            },
        ),
        Command::Pinned {
            bootstrap,
            producers,
            consumers,
            message_size,
            messages_per_batch,
            in_flight,
            acks,
            seconds,
            topic_prefix,
            topic_configs,
            broker_pid,
            json,
        } => pinned(
            &bootstrap,
            &runnel_bench::pinned::PinnedShape {
                producers,
                consumers,
                message_size,
                messages_per_batch,
                in_flight,
                acks,
                seconds: Duration::from_secs(seconds),
                topic_prefix,
                topic_configs: topic_configs.into_iter().collect(),
            },
            broker_pid,
            json,
        ),
        Command::Fetch {
            bootstrap,
            topic,
            seconds,
            broker_pid,
        } => fetch(&bootstrap, &topic, Duration::from_secs(seconds), broker_pid),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn limits(dir: &Path, seconds: Duration) -> Result<(), String> {
    let l = runnel_bench::limits::measure(dir, seconds)
        .map_err(|e| format!("measuring the limits in {}: {e}", dir.display()))?;
    println!(
        "loopback: {:.2} GiB/s, round trip p50 {:?} p99 {:?}",
        l.loopback_bytes_per_sec / GIB,
        l.loopback_rtt_p50,
        l.loopback_rtt_p99
    );
    println!(
        "appends in {}: {:.0} MiB/s into the page cache, {:.0} MiB/s with an fdatasync every 100 ms; fdatasync (4 KiB append) p50 {:?} p99 {:?}",
        dir.display(),
        l.page_cache_append_bytes_per_sec / MIB,
        l.synced_append_bytes_per_sec / MIB,
        l.fdatasync_p50,
        l.fdatasync_p99
    );
    println!(
        "TCP into the page cache on one core (one connection, 1 MiB reads, each appended): {:.0} MiB/s",
        l.tcp_to_page_cache_bytes_per_sec / MIB
    );
    let w = l.wakeup;
    println!(
        "wake-up lateness (100 µs sleeps): p50 {:?} p99 {:?} p99.9 {:?} p99.99 {:?} max {:?}",
        w.p50, w.p99, w.p999, w.p9999, w.max
    );
    println!(
        "stalls of a spinning thread: {:.3}% of the time in gaps of 50 µs or more, {} of 1 ms or more, longest {:?}",
        l.spin.stalled_share * 100.0,
        l.spin.over_1ms,
        l.spin.longest
    );
    Ok(())
}

/// Exits itself rather than returning an error, with the codes it always had: 2 for a bad
/// workload file (a usage error), 1 for a failed run.
fn run_workload(
    bootstrap: &str,
    path: &Path,
    generator: runnel_bench::runner::Generator,
    json: Option<PathBuf>,
    plots: Option<PathBuf>,
) {
    let workload = runnel_bench::workload::Workload::load(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let fail = |e: String| -> ! {
        eprintln!("run failed: {e}");
        std::process::exit(1);
    };
    let (table, text) = match workload.scenario {
        runnel_bench::workload::Scenario::Stream => {
            let mut steps = Vec::new();
            let mut report = if workload.find_max_rate {
                runnel_bench::rate_search::measure_at_max(bootstrap, &workload, generator, |step| {
                    eprintln!(
                        "\rrate {} msg/s {} (published {:.0}/s, consumed {:.0}/s){}",
                        step.rate,
                        if step.sustained {
                            "sustained"
                        } else {
                            "NOT sustained"
                        },
                        step.publish_rate,
                        step.consume_rate,
                        step.reason
                            .as_ref()
                            .map_or(String::new(), |r| format!(": {r}"))
                    );
                    steps.push(step.clone());
                })
            } else {
                runnel_bench::runner::run(bootstrap, &workload, generator)
            }
            .unwrap_or_else(|e| fail(e));
            report.rate_search = steps;
            if let Some(dir) = &plots {
                plot_stream(dir, &report).unwrap_or_else(|e| fail(e));
            }
            (
                runnel_bench::runner::table(&report),
                serde_json::to_string_pretty(&report),
            )
        }
        runnel_bench::workload::Scenario::RoundTrip => {
            let report = runnel_bench::round_trip::run(bootstrap, &workload, generator)
                .unwrap_or_else(|e| fail(e));
            if let Some(dir) = &plots {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(e.to_string()));
                let series = [("round trip", &report.round_trip_us)];
                runnel_bench::plot::latency_distribution(
                    &dir.join("latency.svg"),
                    &report.workload,
                    &series,
                )
                .unwrap_or_else(|e| fail(e));
            }
            (
                runnel_bench::round_trip::table(&report),
                serde_json::to_string_pretty(&report),
            )
        }
    };
    print!("{table}");
    if let Some(out) = json {
        let text = text.expect("reports are plain data, always serializable");
        std::fs::write(&out, text)
            .unwrap_or_else(|e| fail(format!("writing {}: {e}", out.display())));
    }
}

/// latency.svg (percentile distributions) and throughput.svg (rates over time) in `dir`.
fn plot_stream(dir: &Path, report: &runnel_bench::runner::Report) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    runnel_bench::plot::latency_distribution(
        &dir.join("latency.svg"),
        &report.workload,
        &[
            ("end to end", &report.end_to_end_us),
            ("publish", &report.publish_latency_us),
            ("publish delay", &report.publish_delay_us),
        ],
    )?;
    runnel_bench::plot::throughput(
        &dir.join("throughput.svg"),
        &report.workload,
        &[
            ("published", &report.publish_per_second[..]),
            ("consumed", &report.consume_per_second[..]),
        ],
    )
}

/// The broker's metrics as served, one sample per line (`runnelctl stats` prints them as a table).
fn stats(admin: &str) -> Result<(), String> {
    let text = runnel_net::metrics::report::fetch(admin)?;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        println!("{line}");
    }
    Ok(())
}

fn loopback(seconds: Duration) -> Result<(), String> {
    let bytes_per_sec =
        runnel_bench::limits::loopback_bandwidth(seconds).map_err(|e| format!("loopback: {e}"))?;
    println!("loopback: {:.2} GiB/s", bytes_per_sec / GIB);
    Ok(())
}

fn rebalance(
    bootstrap: &str,
    members: usize,
    partitions: i32,
    heartbeat: Duration,
    rounds: usize,
) -> Result<(), String> {
    let suffix = std::process::id();
    let topic = format!("rebalance-{suffix}");
    let mut conn = Conn::connect(bootstrap)?;
    let mut create = CreateTopicsRequest::default();
    let mut creatable = CreatableTopic::default();
    creatable.name = topic_name(&topic);
    creatable.num_partitions = partitions;
    creatable.replication_factor = 1;
    create.topics = vec![creatable];
    create.timeout_ms = 30_000;
    conn.send(ApiKey::CreateTopics, 7, &create);
    let _: kafka_protocol::messages::CreateTopicsResponse = conn.receive(ApiKey::CreateTopics, 7);
    let settings = runnel_bench::rebalance::Settings {
        bootstrap: bootstrap.to_owned(),
        group: format!("rebalance-{suffix}"),
        topic,
        partitions,
        members,
        heartbeat,
        session_timeout: Duration::from_secs(10),
        rounds,
    };
    let rounds = runnel_bench::rebalance::measure(&settings);
    let summary = |mut times: Vec<Duration>| {
        times.sort();
        format!(
            "min {:.2} ms, median {:.2} ms, max {:.2} ms",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        )
    };
    println!(
        "rebalance: {members} members, {partitions} partitions, heartbeat {} ms, {} rounds",
        heartbeat.as_millis(),
        rounds.len()
    );
    println!(
        "  restart to stable: {}",
        summary(rounds.iter().map(|r| r.total).collect())
    );
    println!(
        "  last JoinGroup to last SyncGroup answer (the coordinator's part): {}",
        summary(rounds.iter().map(|r| r.coordinator).collect())
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// What `produce` sends: batches of `records` x `record_bytes`, `in_flight` requests at a time.
struct ProduceShape {
    records: usize,
    record_bytes: usize,
    acks: i16,
    in_flight: usize,
    idempotent: bool,
    /// Batches per transaction; 0 for none.
    transaction_batches: u64,
}

fn produce(
    bootstrap: &str,
    topic: &str,
    seconds: Duration,
    shape: &ProduceShape,
) -> Result<(), String> {
    let &ProduceShape {
        records,
        record_bytes,
        acks,
        in_flight,
        idempotent,
        transaction_batches,
    } = shape;
    let mut conn = Conn::connect(bootstrap)?;
    let mut create = CreateTopicsRequest::default();
    let mut creatable = CreatableTopic::default();
    creatable.name = topic_name(topic);
    creatable.num_partitions = 1;
    creatable.replication_factor = 1;
    let mut never = CreatableTopicConfig::default();
    never.name = StrBytes::from_static_str("flush.policy");
    never.value = Some(StrBytes::from_static_str("never"));
    creatable.configs = vec![never];
    create.topics = vec![creatable];
    create.timeout_ms = 30_000;
    conn.send(ApiKey::CreateTopics, 7, &create);
    let _: kafka_protocol::messages::CreateTopicsResponse = conn.receive(ApiKey::CreateTopics, 7);

    let mut builder = BatchBuilder::new();
    for i in 0..records {
        builder.push(&Record {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![(i % 251) as u8; record_bytes]),
            timestamp: runnel_bench::client::now_ms(),
            ..Default::default()
        });
    }
    let mut sequenced = None;
    let mut txn = None;
    if transaction_batches > 0 {
        let producer = TxnProducer::init(&mut conn, &format!("runnel-bench-{topic}"))?;
        builder = builder
            .producer(producer.producer_id, producer.epoch, 0)
            .transactional();
        txn = Some(producer);
    } else if idempotent {
        let producer_id = init_producer_id(&mut conn)?;
        builder = builder.producer(producer_id, 0, 0);
    }
    let batch = Bytes::from(builder.build());
    let mut frame = produce_frame(topic, vec![(0, batch.clone())], acks);
    if idempotent {
        sequenced = Some(SequencedBatch::find(&frame, &batch)?);
    }
    let started = Instant::now();
    let mut outstanding = VecDeque::new();
    let mut sent = 0u64;
    // Without transactions, one "transaction" that lasts the whole run.
    let per_txn = if transaction_batches > 0 {
        transaction_batches
    } else {
        u64::MAX
    };
    let mut commits = Latencies::default();
    let mut transactions = Latencies::default();
    while started.elapsed() < seconds {
        let txn_started = Instant::now();
        if let Some(producer) = txn.as_mut() {
            producer.begin(&mut conn, topic, 0)?;
        }
        let mut sent_in_txn = 0u64;
        while sent_in_txn < per_txn && started.elapsed() < seconds {
            while outstanding.len() < in_flight && sent_in_txn < per_txn {
                if let Some(batch) = &sequenced {
                    batch.set_sequence(&mut frame, (sent as i32).wrapping_mul(records as i32));
                }
                conn.send_frame(&mut frame);
                outstanding.push_back(());
                sent += 1;
                sent_in_txn += 1;
            }
            receive_produce(&mut conn, topic, acks)?;
            outstanding.pop_front();
        }
        let Some(producer) = txn.as_mut() else {
            continue;
        };
        // A transaction commits once all of its batches are acknowledged.
        for _ in outstanding.drain(..) {
            receive_produce(&mut conn, topic, acks)?;
        }
        let commit_started = Instant::now();
        producer.commit(&mut conn)?;
        commits.record(commit_started.elapsed());
        transactions.record(txn_started.elapsed());
    }
    for _ in outstanding.drain(..) {
        receive_produce(&mut conn, topic, acks)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = sent as f64 * batch.len() as f64;
    println!(
        "produce: {:.1} MiB/s, {:.0} records/s ({} batches of {} x {} B, acks={acks}, {in_flight} in flight, idempotent={idempotent}, {elapsed:.2}s)",
        bytes / MIB / elapsed,
        sent as f64 * records as f64 / elapsed,
        sent,
        records,
        record_bytes
    );
    if let Some(producer) = &txn {
        let (end, whole) = (commits.percentiles(), transactions.percentiles());
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "transactions: {} of {transaction_batches} batches, {:.0}/s; EndTxn p50 {:.3} ms p99 {:.3} ms; whole transaction p50 {:.3} ms p99 {:.3} ms; {} AddPartitionsToTxn retried (markers still being written)",
            whole.count,
            whole.count as f64 / elapsed,
            ms(end.p50),
            ms(end.p99),
            ms(whole.p50),
            ms(whole.p99),
            producer.retries
        );
    }
    Ok(())
}

/// Reads one Produce response (none under acks=0); a refused batch ends the run.
fn receive_produce(conn: &mut Conn, topic: &str, acks: i16) -> Result<(), String> {
    if acks == 0 {
        return Ok(());
    }
    let response: ProduceResponse = conn.receive(ApiKey::Produce, 9);
    // Nonzero for a topic the broker refused to create (a bad --topic), for one.
    let code = response.responses[0].partition_responses[0].error_code;
    if code != 0 {
        return Err(format!("produce to {topic} failed: error {code}"));
    }
    Ok(())
}

/// An idempotent producer's id (epoch 0) from InitProducerId.
fn init_producer_id(conn: &mut Conn) -> Result<i64, String> {
    let mut request = kafka_protocol::messages::InitProducerIdRequest::default();
    request.transactional_id = None;
    request.transaction_timeout_ms = 60_000;
    request.producer_id = kafka_protocol::messages::ProducerId(-1);
    request.producer_epoch = -1;
    conn.send(ApiKey::InitProducerId, 4, &request);
    let response: kafka_protocol::messages::InitProducerIdResponse =
        conn.receive(ApiKey::InitProducerId, 4);
    match response.error_code {
        0 => Ok(response.producer_id.0),
        code => Err(format!("InitProducerId failed: error {code}")),
    }
}

/// Where the record batch sits in a Produce frame that is sent over and over, so each send
/// can carry the next sequence numbers (as an idempotent producer's batches do) and a CRC
/// that covers them.
struct SequencedBatch {
    at: usize,
    len: usize,
}

impl SequencedBatch {
    /// Offset of the base sequence in a batch (RecordBatch v2), and of its CRC.
    const BASE_SEQUENCE: usize = 53;
    const CRC: usize = 17;

    fn find(frame: &[u8], batch: &[u8]) -> Result<SequencedBatch, String> {
        let at = frame
            .windows(batch.len())
            .rposition(|w| w == batch)
            .ok_or("the batch is not in its produce frame")?;
        Ok(SequencedBatch {
            at,
            len: batch.len(),
        })
    }

    fn set_sequence(&self, frame: &mut [u8], sequence: i32) {
        let batch = &mut frame[self.at..self.at + self.len];
        batch[Self::BASE_SEQUENCE..Self::BASE_SEQUENCE + 4]
            .copy_from_slice(&sequence.to_be_bytes());
        let crc = runnel_engine::log::batch::compute_crc(batch);
        batch[Self::CRC..Self::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

fn pinned(
    bootstrap: &str,
    shape: &runnel_bench::pinned::PinnedShape,
    broker_pid: Option<u32>,
    json: Option<PathBuf>,
) -> Result<(), String> {
    // Checked before anything is created, so a wrong pid fails at once.
    broker_pid.map(broker_cpu).transpose()?;
    let report = runnel_bench::pinned::run(bootstrap, shape, broker_pid)?;
    print!("{}", report.summary());
    if let Some(out) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&out, text).map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    Ok(())
}

/// The broker's CPU time so far, for the --broker-pid it was given.
fn broker_cpu(pid: u32) -> Result<f64, String> {
    runnel_bench::cpu::process_seconds(pid).map_err(|e| format!("--broker-pid {pid}: {e}"))
}

fn fetch(
    bootstrap: &str,
    topic: &str,
    seconds: Duration,
    broker_pid: Option<u32>,
) -> Result<(), String> {
    let mut conn = Conn::connect(bootstrap)?;
    let request = |offset: i64| {
        let mut partition = FetchPartition::default();
        partition.partition = 0;
        partition.fetch_offset = offset;
        partition.partition_max_bytes = 16 << 20;
        let mut t = FetchTopic::default();
        t.topic = topic_name(topic);
        t.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.max_wait_ms = 0;
        request.min_bytes = 1;
        request.max_bytes = 64 << 20;
        request.session_epoch = -1;
        request.topics = vec![t];
        request
    };
    // Read once before the run, so a wrong pid fails now rather than after --seconds.
    let cpu_before = broker_pid.map(broker_cpu).transpose()?;
    let started = Instant::now();
    let mut offset = 0i64;
    let mut total = 0u64;
    while started.elapsed() < seconds {
        conn.send(ApiKey::Fetch, 12, &request(offset));
        let response: FetchResponse = conn.receive(ApiKey::Fetch, 12);
        let partition = &response.responses[0].partitions[0];
        if partition.error_code != 0 {
            return Err(format!(
                "fetch from {topic} failed: error {}",
                partition.error_code
            ));
        }
        let records = partition.records.clone().unwrap_or_default();
        total += records.len() as u64;
        // Continue after the last whole batch; start over at the end.
        let next = runnel_bench::pinned::whole_batches(&records)
            .next_offset
            .unwrap_or(offset);
        offset = if next >= partition.high_watermark || next == offset {
            0
        } else {
            next
        };
    }
    let elapsed = started.elapsed().as_secs_f64();
    let gib = total as f64 / GIB;
    print!(
        "fetch: {:.2} GiB/s ({total} bytes in {elapsed:.2}s)",
        gib / elapsed
    );
    if let (Some(pid), Some(before)) = (broker_pid, cpu_before) {
        let cpu = broker_cpu(pid)? - before;
        print!(", broker CPU {cpu:.2}s = {:.2} CPU-s per GiB", cpu / gib);
    }
    println!();
    Ok(())
}
