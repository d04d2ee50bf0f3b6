//! The admin HTTP port: `GET /metrics` answers every shard's measurements merged, in
//! Prometheus text. A deliberately small HTTP/1.1 server (one request per connection, no
//! keep-alive): scrapers need nothing more, and it keeps a web framework out of the broker.

use std::time::Duration;

use runnel_engine::rt::{self, Either, TcpListener, TcpStream};

use super::compaction::Compaction;
use super::prometheus::{self, PartitionMetrics};
use super::replication::ReplicaGauges;
use crate::partitions::shard;

/// Longest request head accepted.
const MAX_HEAD: usize = 8192;
/// A client that doesn't finish its request head in this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin port until shutdown (run it on one shard).
pub async fn serve(listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the admin listener");
            return;
        }
    };
    loop {
        match rt::select(rt::shutdown_requested(), listener.accept()).await {
            Either::Left(()) => return,
            Either::Right(Ok((stream, _))) => {
                rt::spawn_local(answer(stream));
            }
            Either::Right(Err(e)) => {
                tracing::debug!(error = %e, "admin accept failed");
                rt::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(stream: TcpStream) {
    let response = match rt::timeout(READ_TIMEOUT, read_head(&stream)).await {
        Ok(Some(head)) => respond(&head).await,
        _ => None,
    };
    if let Some(response) = response {
        let _ = stream.send_all(response).await;
    }
    let _ = stream.close().await;
}

/// Reads up to the end of the request head; `None` if the peer closes or sends too much.
async fn read_head(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(head);
        }
        if head.len() >= MAX_HEAD {
            return None;
        }
        let (result, buf) = stream.recv(Vec::with_capacity(1024)).await;
        match result {
            Ok(0) | Err(_) => return None,
            Ok(_) => head.extend_from_slice(&buf),
        }
    }
}

async fn respond(head: &[u8]) -> Option<Vec<u8>> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, path) = (parts.next()?, parts.next()?);
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut snapshot = super::gather().await;
            let (partitions, replicas) = partitions().await;
            snapshot.replication.gauges = replicas;
            let body = prometheus::render(&snapshot, &partitions);
            ("200 OK", "text/plain; version=0.0.4", body)
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is here\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    Some(response)
}

/// Every open partition's figures, from the shards that own them, and the replicas'
/// gauges of every shard.
async fn partitions() -> (Vec<PartitionMetrics>, ReplicaGauges) {
    let mut all = Vec::new();
    let mut replicas = ReplicaGauges::default();
    for s in 0..rt::shard_count() {
        let on_this = rt::run_on(s, || async {
            let now_ms = crate::groups::group::wall_ms();
            let partitions = shard::current()
                .logs
                .snapshot()
                .into_iter()
                .map(|(tp, partition)| PartitionMetrics {
                    topic: tp.topic.to_string(),
                    partition: tp.partition as usize,
                    high_watermark: partition.high_watermark(),
                    compaction: Compaction::of(partition.log(), now_ms),
                })
                .collect::<Vec<_>>();
            (partitions, ReplicaGauges::of_shard())
        })
        .await;
        if let Ok((partitions, gauges)) = on_this {
            all.extend(partitions);
            replicas.merge(&gauges);
        }
    }
    all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    (all, replicas)
}
