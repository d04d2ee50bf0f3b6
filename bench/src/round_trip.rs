//! The round-trip scenario: `clients` clients each send `messages_per_request` messages in
//! one Produce request and wait until a consumer has read all of them, then send the next
//! request (at once, or when the client's `client_interval_ms` comes round); the time from
//! sending (or from when the request was due) to the last of its messages being consumed is
//! the round trip (a request/response carried over Kafka). Everything runs on one shard of Runnel's
//! runtime, so clients and consumers share plain `Rc` state.
//!
//! Each message value starts with the client number and the request number (4 bytes each);
//! consumers count down the request's outstanding messages and wake its client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::rt::{self, LocalEvent, Runtime};
use runnel_net::kafka::frame::FrameReader;

use crate::client::{connect, create_topics, produce_frame, PRODUCE_VERSION};
use crate::fetcher::Fetcher;
use crate::latency::{Latencies, Percentiles};
use crate::workload::Workload;

/// What a round-trip run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub workload: String,
    pub clients: usize,
    pub seconds: f64,
    /// Round trips completed in the measured window.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub round_trip_us: Percentiles,
}

/// Outstanding messages per (client, request), and each client's wake-up.
struct Waiting {
    remaining: RefCell<HashMap<(u32, u32), usize>>,
    done: Vec<LocalEvent>,
    /// Clients still running: the consumers stop when none is.
    clients_left: std::cell::Cell<usize>,
}

pub fn run(
    bootstrap: &str,
    workload: &Workload,
    generator: crate::runner::Generator,
) -> Result<Report, String> {
    let topic = format!("{}-{}", workload.name, std::process::id());
    create_topics(
        bootstrap,
        std::slice::from_ref(&topic),
        workload.partitions_per_topic,
        workload.replication_factor,
        &workload.topic_configs,
    )?;
    // One shard: every client's request and its consumer share it.
    let config = crate::runner::Generator {
        cores: 1,
        ..generator
    }
    .runtime_config();
    let runtime = Runtime::start(config, |_| async {}).map_err(|e| e.to_string())?;
    let (bootstrap, w) = (bootstrap.to_owned(), workload.clone());
    let outcome = runtime
        .handle()
        .run_on(0, move || run_on_shard(bootstrap, w, topic))
        .map_err(|e| e.to_string());
    runtime.shutdown();
    runtime.join().map_err(|e| e.to_string())?;
    let (latencies, requests) = outcome??;
    let seconds = workload.duration().as_secs_f64();
    Ok(Report {
        workload: workload.name.clone(),
        clients: workload.clients,
        seconds,
        requests,
        requests_per_sec: requests as f64 / seconds,
        round_trip_us: latencies.percentiles(),
    })
}

async fn run_on_shard(
    bootstrap: String,
    w: Workload,
    topic: String,
) -> Result<(Latencies, u64), String> {
    let waiting = Rc::new(Waiting {
        remaining: RefCell::new(HashMap::new()),
        done: (0..w.clients).map(|_| LocalEvent::new()).collect(),
        clients_left: std::cell::Cell::new(w.clients),
    });
    let start = Instant::now();
    let measure_from = start + w.warmup();
    let end = measure_from + w.duration();
    let consumers: Vec<_> = (0..w.consumers_per_topic.max(1))
        .map(|c| {
            let partitions: Vec<i32> = (0..w.partitions_per_topic as i32)
                .filter(|p| *p as usize % w.consumers_per_topic.max(1) == c)
                .collect();
            rt::spawn_local(consume(
                bootstrap.clone(),
                topic.clone(),
                partitions,
                waiting.clone(),
                end,
            ))
        })
        .collect();
    let clients: Vec<_> = (0..w.clients)
        .map(|c| {
            rt::spawn_local(client(
                bootstrap.clone(),
                topic.clone(),
                w.clone(),
                c as u32,
                waiting.clone(),
                measure_from,
                end,
            ))
        })
        .collect();
    let mut latencies = Latencies::default();
    let mut requests = 0;
    let mut failure = None;
    for task in clients {
        let outcome = task.await;
        waiting.clients_left.set(waiting.clients_left.get() - 1);
        match outcome {
            Ok(l) => {
                requests += l.count();
                latencies.merge(&l);
            }
            Err(e) => failure = Some(e),
        }
    }
    for task in consumers {
        if let Err(e) = task.await {
            failure = Some(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((latencies, requests)),
    }
}

async fn client(
    bootstrap: String,
    topic: String,
    w: Workload,
    me: u32,
    waiting: Rc<Waiting>,
    measure_from: Instant,
    end: Instant,
) -> Result<Latencies, String> {
    let stream = connect(&bootstrap).await?;
    let mut frames = FrameReader::new(16 << 20);
    let mut latencies = Latencies::default();
    let padding = vec![0u8; w.message_size.saturating_sub(8)];
    let partition = me as usize % w.partitions_per_topic;
    let mut request_number: u32 = 0;
    // Paced clients start a request every interval, spread over it so they don't all start
    // at once; a late request counts from when it was due (no coordinated omission).
    let interval = Duration::from_millis(w.client_interval_ms);
    let first_due = Instant::now() + interval.mul_f64(f64::from(me) / w.clients as f64);
    while Instant::now() < end {
        let due = (!interval.is_zero()).then(|| first_due + interval * request_number);
        if let Some(due) = due {
            rt::sleep(due.saturating_duration_since(Instant::now())).await;
        }
        let mut builder = BatchBuilder::new();
        for _ in 0..w.messages_per_request {
            let mut value = Vec::with_capacity(w.message_size.max(8));
            value.extend_from_slice(&me.to_be_bytes());
            value.extend_from_slice(&request_number.to_be_bytes());
            value.extend_from_slice(&padding);
            builder.push(&Record {
                value: Some(value),
                timestamp: crate::client::now_ms(),
                ..Default::default()
            });
        }
        let key = (me, request_number);
        waiting
            .remaining
            .borrow_mut()
            .insert(key, w.messages_per_request);
        let started = due.unwrap_or_else(Instant::now);
        let frame = produce_frame(
            &topic,
            vec![(partition, Bytes::from(builder.build()))],
            w.acks,
        );
        let (sent, _) = stream.send_all(frame).await;
        sent.map_err(|e| format!("client {me}: {e}"))?;
        let mut body = frames
            .next(&stream)
            .await
            .map_err(|e| format!("client {me}: {e}"))?;
        ResponseHeader::decode(
            &mut body,
            ApiKey::Produce.response_header_version(PRODUCE_VERSION),
        )
        .map_err(|e| e.to_string())?;
        let response =
            ProduceResponse::decode(&mut body, PRODUCE_VERSION).map_err(|e| e.to_string())?;
        let code = response.responses[0].partition_responses[0].error_code;
        if code != 0 {
            return Err(format!("client {me}: produce error {code}"));
        }
        // Wait until the consumers have seen every message of this request.
        let done = &waiting.done[me as usize];
        loop {
            let wait = done.wait();
            if !waiting.remaining.borrow().contains_key(&key) {
                break;
            }
            if Instant::now() >= end + Duration::from_secs(5) {
                return Err(format!(
                    "client {me}: request {request_number} was never consumed"
                ));
            }
            let _ = rt::select(wait, rt::sleep(Duration::from_millis(500))).await;
        }
        if started >= measure_from && Instant::now() < end {
            latencies.record(started.elapsed());
        }
        request_number += 1;
    }
    let _ = stream.close().await;
    Ok(latencies)
}

async fn consume(
    bootstrap: String,
    topic: String,
    partitions: Vec<i32>,
    waiting: Rc<Waiting>,
    end: Instant,
) -> Result<(), String> {
    if partitions.is_empty() {
        return Ok(());
    }
    let mut fetcher = Fetcher::connect(&bootstrap, &topic, partitions).await?;
    while waiting.clients_left.get() > 0 && Instant::now() < end + Duration::from_secs(10) {
        let (_, values) = fetcher.next().await?;
        for value in values {
            if value.len() < 8 {
                continue;
            }
            let client = u32::from_be_bytes(value[..4].try_into().expect("4 bytes"));
            let request = u32::from_be_bytes(value[4..8].try_into().expect("4 bytes"));
            let mut remaining = waiting.remaining.borrow_mut();
            if let Some(left) = remaining.get_mut(&(client, request)) {
                *left -= 1;
                if *left == 0 {
                    remaining.remove(&(client, request));
                    if let Some(done) = waiting.done.get(client as usize) {
                        done.notify_all();
                    }
                }
            }
        }
    }
    fetcher.close().await;
    Ok(())
}

/// A human summary.
pub fn table(report: &Report) -> String {
    format!(
        "{}: {} clients, {:.0} round trips/s over {:.0} s\n\
         round trip (ms)   p50      p75      p95      p99    p99.9   p99.99      max\n{}",
        report.workload,
        report.clients,
        report.requests_per_sec,
        report.seconds,
        report.round_trip_us.table_row("request")
    )
}
