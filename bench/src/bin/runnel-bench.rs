//! `runnel-bench`: end-to-end throughput against a running broker, and this machine's
//! loopback bandwidth to compare it with.
//!
//! - `runnel-bench limits [--dir D] [--seconds S]`: this machine's limits (loopback bandwidth
//!   and round trip, page-cache append bandwidth and fdatasync latency in D, default `.`).
//! - `runnel-bench run --bootstrap ADDR --workload FILE [--cores N] [--json OUT]`: runs a
//!   workload file (bench/workloads/) with producers and consumers on N shards of Runnel's
//!   runtime; prints rates and latency percentiles, writes them as JSON to OUT and SVG plots
//!   (`--plots DIR`: latency distribution, throughput over time).
//! - `runnel-bench loopback [--seconds S]`: TCP bandwidth over 127.0.0.1 (1 MiB writes).
//! - `runnel-bench stats --admin HOST:PORT`: prints the broker's `/metrics` (request latency
//!   per API and version, append latency, per-topic counters, high watermarks, connections);
//!   a stand-in for `runnelctl stats`.
//! - `runnel-bench rebalance --bootstrap ADDR [--members N] [--partitions P] [--heartbeat-ms H]
//!   [--rounds R]`: a group of N members over a new P-partition topic; each round restarts one
//!   member and times until every member has synced the next generation.
//! - `runnel-bench produce --bootstrap ADDR --topic T [--seconds S] [--records-per-batch N]
//!   [--record-bytes B] [--acks A] [--in-flight K]`: creates T (flush.policy=never) and produces
//!   batches to partition 0, K requests in flight.
//! - `runnel-bench fetch --bootstrap ADDR --topic T [--seconds S] [--broker-pid PID]`: reads
//!   partition 0 from the start over and over; with the broker's pid, reports its CPU time per
//!   GiB served (from /proc).
//!
//! A simple blocking client on the kafka-protocol codec; the full load generator with
//! workloads and latency histograms is issue 6.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_bench::client::{produce_frame, Conn};
use runnel_engine::log::builder::{BatchBuilder, Record};

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("usage: runnel-bench loopback|produce|fetch [options]");
        std::process::exit(2);
    };
    let option = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: u64| -> u64 {
        option(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
    };
    let seconds = Duration::from_secs(number("--seconds", 5));
    match command.as_str() {
        "limits" => limits(
            std::path::Path::new(&option("--dir").unwrap_or_else(|| ".".into())),
            seconds,
        ),
        "loopback" => loopback(seconds),
        "stats" => {
            stats(&option("--admin").expect("--admin HOST:PORT (the broker's admin_listen)"))
        }
        "run" => run_workload(
            &option("--bootstrap").expect("--bootstrap"),
            std::path::Path::new(&option("--workload").expect("--workload FILE")),
            number("--cores", 1) as usize,
            option("--json"),
            option("--plots"),
        ),
        "rebalance" => rebalance(
            &option("--bootstrap").expect("--bootstrap"),
            number("--members", 3) as usize,
            number("--partitions", 12) as i32,
            Duration::from_millis(number("--heartbeat-ms", 100)),
            number("--rounds", 10) as usize,
        ),
        "produce" => produce(
            &option("--bootstrap").expect("--bootstrap"),
            &option("--topic").expect("--topic"),
            seconds,
            number("--records-per-batch", 1000) as usize,
            number("--record-bytes", 1024) as usize,
            number("--acks", 1) as i16,
            number("--in-flight", 8) as usize,
        ),
        "fetch" => fetch(
            &option("--bootstrap").expect("--bootstrap"),
            &option("--topic").expect("--topic"),
            seconds,
            option("--broker-pid").map(|p| p.parse().expect("--broker-pid takes a pid")),
        ),
        other => {
            eprintln!("unknown command {other}");
            std::process::exit(2);
        }
    }
}

fn limits(dir: &std::path::Path, seconds: Duration) {
    let l = runnel_bench::limits::measure(dir, seconds).expect("measuring the limits");
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
    let w = l.wakeup;
    println!(
        "wake-up lateness (100 µs sleeps): p50 {:?} p99 {:?} p99.9 {:?} p99.99 {:?} max {:?}",
        w.p50, w.p99, w.p999, w.p9999, w.max
    );
}

fn run_workload(
    bootstrap: &str,
    path: &std::path::Path,
    cores: usize,
    json: Option<String>,
    plots: Option<String>,
) {
    let workload = runnel_bench::workload::Workload::load(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let fail = |e: String| -> ! {
        eprintln!("run failed: {e}");
        std::process::exit(1);
    };
    let plots = plots.map(std::path::PathBuf::from);
    let (table, text) = match workload.scenario {
        runnel_bench::workload::Scenario::Stream => {
            let mut steps = Vec::new();
            let mut report = if workload.find_max_rate {
                runnel_bench::rate_search::measure_at_max(bootstrap, &workload, cores, |step| {
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
                runnel_bench::runner::run(bootstrap, &workload, cores)
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
            let report =
                runnel_bench::round_trip::run(bootstrap, &workload).unwrap_or_else(|e| fail(e));
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
        let text = text.expect("serializable");
        std::fs::write(&out, text).unwrap_or_else(|e| panic!("writing {out}: {e}"));
    }
}

/// latency.svg (percentile distributions) and throughput.svg (rates over time) in `dir`.
fn plot_stream(dir: &std::path::Path, report: &runnel_bench::runner::Report) -> Result<(), String> {
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
fn stats(admin: &str) {
    match runnel_net::metrics::report::fetch(admin) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                println!("{line}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

fn loopback(seconds: Duration) {
    let bytes_per_sec = runnel_bench::limits::loopback_bandwidth(seconds).expect("loopback");
    println!("loopback: {:.2} GiB/s", bytes_per_sec / GIB);
}

fn rebalance(bootstrap: &str, members: usize, partitions: i32, heartbeat: Duration, rounds: usize) {
    let suffix = std::process::id();
    let topic = format!("rebalance-{suffix}");
    let mut conn = Conn::connect(bootstrap);
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
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn produce(
    bootstrap: &str,
    topic: &str,
    seconds: Duration,
    records: usize,
    record_bytes: usize,
    acks: i16,
    in_flight: usize,
) {
    let mut conn = Conn::connect(bootstrap);
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
    let batch = Bytes::from(builder.build());
    let mut frame = produce_frame(topic, vec![(0, batch.clone())], acks);
    let started = Instant::now();
    let mut outstanding = VecDeque::new();
    let mut sent = 0u64;
    while started.elapsed() < seconds {
        while outstanding.len() < in_flight {
            conn.send_frame(&mut frame);
            outstanding.push_back(());
            sent += 1;
        }
        if acks != 0 {
            let response: ProduceResponse = conn.receive(ApiKey::Produce, 9);
            assert_eq!(
                response.responses[0].partition_responses[0].error_code, 0,
                "produce failed"
            );
        }
        outstanding.pop_front();
    }
    if acks != 0 {
        for _ in outstanding.drain(..) {
            let _: ProduceResponse = conn.receive(ApiKey::Produce, 9);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = sent as f64 * batch.len() as f64;
    println!(
        "produce: {:.1} MiB/s, {:.0} records/s ({} batches of {} x {} B, acks={acks}, {in_flight} in flight, {elapsed:.2}s)",
        bytes / MIB / elapsed,
        sent as f64 * records as f64 / elapsed,
        sent,
        records,
        record_bytes
    );
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("broker pid");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

fn fetch(bootstrap: &str, topic: &str, seconds: Duration, broker_pid: Option<u32>) {
    let mut conn = Conn::connect(bootstrap);
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
    let cpu_before = broker_pid.map(cpu_seconds);
    let started = Instant::now();
    let mut offset = 0i64;
    let mut total = 0u64;
    while started.elapsed() < seconds {
        conn.send(ApiKey::Fetch, 12, &request(offset));
        let response: FetchResponse = conn.receive(ApiKey::Fetch, 12);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch failed");
        let records = partition.records.clone().unwrap_or_default();
        total += records.len() as u64;
        // Continue after the last whole batch; start over at the end.
        let mut at = 0usize;
        let mut next = offset;
        while records.len() >= at + 12 {
            let len =
                i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize + 12;
            if at + len > records.len() || at + 61 > records.len() {
                break;
            }
            let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
            let delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap());
            next = base + i64::from(delta) + 1;
            at += len;
        }
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
        let cpu = cpu_seconds(pid) - before;
        print!(", broker CPU {cpu:.2}s = {:.2} CPU-s per GiB", cpu / gib);
    }
    println!();
}
