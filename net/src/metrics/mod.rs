//! The broker's own measurements: per shard, with no locks (each shard records into its
//! thread-local [`ShardMetrics`]); merged only when someone asks ([`gather`], for the admin
//! port's `/metrics`).
//!
//! - request latency per Kafka API and version (from the decoded request to the response
//!   being ready), produce append latency per partition append;
//! - queueing (a decoded request waiting for the connection's earlier requests) and response
//!   send time (a ready response written to the socket);
//! - messages and bytes in (produce) and bytes out (fetch) per topic;
//! - open connections;
//! - per partition, the high watermark, and for compacted partitions what the log cleaner did
//!   ([`compaction`]; read from the logs when scraped, not recorded here);
//! - replication ([`replication`]): ISR changes and the follower fetchers' work, recorded
//!   here; partitions led, followed and under-replicated, read when scraped.
//!
//! Latencies are HdrHistograms in microseconds (3 significant digits, up to 60 s).

pub mod compaction;
pub mod http;
pub mod prometheus;
pub mod replication;
pub mod report;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use runnel_engine::rt;

const MAX_MICROS: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds")
}

/// Counters of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounters {
    pub messages_in: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One shard's measurements, or several shards' merged.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (API key, version) -> latency in µs.
    pub requests: BTreeMap<(i16, i16), Histogram<u64>>,
    pub append: Option<Histogram<u64>>,
    /// Group-commit rounds' syncs and appends' page-cache writes (storage engine hooks).
    pub sync: Option<Histogram<u64>>,
    pub write: Option<Histogram<u64>>,
    /// Requests waiting for their connection's earlier ones; responses being sent.
    pub queueing: Option<Histogram<u64>>,
    pub send: Option<Histogram<u64>>,
    pub topics: BTreeMap<String, TopicCounters>,
    pub connections: i64,
    /// Replication's counters, and (after [`gather`]'s caller reads the partitions) its
    /// gauges.
    pub replication: replication::Counters,
}

impl Snapshot {
    /// Adds `other`'s counts into this one.
    pub fn merge(&mut self, other: &Snapshot) {
        for (key, h) in &other.requests {
            self.requests
                .entry(*key)
                .or_insert_with(histogram)
                .add(h)
                .expect("same bounds");
        }
        for (mine, theirs) in [
            (&mut self.append, &other.append),
            (&mut self.sync, &other.sync),
            (&mut self.write, &other.write),
            (&mut self.queueing, &other.queueing),
            (&mut self.send, &other.send),
        ] {
            if let Some(h) = theirs {
                mine.get_or_insert_with(histogram)
                    .add(h)
                    .expect("same bounds");
            }
        }
        for (topic, c) in &other.topics {
            let mine = self.topics.entry(topic.clone()).or_default();
            mine.messages_in += c.messages_in;
            mine.bytes_in += c.bytes_in;
            mine.bytes_out += c.bytes_out;
        }
        self.connections += other.connections;
        self.replication.merge(&other.replication);
    }
}

thread_local! {
    static SHARD: RefCell<Snapshot> = RefCell::new(Snapshot::default());
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

/// Records a request's handling time.
pub fn record_request(api_key: i16, version: i16, took: Duration) {
    SHARD.with(|s| {
        let mut s = s.borrow_mut();
        let h = s
            .requests
            .entry((api_key, version))
            .or_insert_with(histogram);
        h.record(micros(took)).expect("clamped");
    });
}

/// Records one partition append of a produce request.
pub fn record_append(topic: &str, messages: u64, bytes: u64, took: Duration) {
    SHARD.with(|s| {
        let mut s = s.borrow_mut();
        s.append
            .get_or_insert_with(histogram)
            .record(micros(took))
            .expect("clamped");
        let c = topic_entry(&mut s, topic);
        c.messages_in += messages;
        c.bytes_in += bytes;
    });
}

/// Records how long a decoded request waited before its handler started.
pub fn record_queueing(took: Duration) {
    SHARD.with(|s| record_into(&mut s.borrow_mut().queueing, took));
}

/// Records how long a ready response took to be written to its socket.
pub fn record_send(took: Duration) {
    SHARD.with(|s| record_into(&mut s.borrow_mut().send, took));
}

fn record_into(h: &mut Option<Histogram<u64>>, took: Duration) {
    h.get_or_insert_with(histogram)
        .record(micros(took))
        .expect("clamped");
}

/// Installs the storage engine's hooks on this shard (call once per shard thread).
pub fn observe_storage() {
    runnel_engine::log::observe::set_sync_observer(|took| {
        SHARD.with(|s| record_into(&mut s.borrow_mut().sync, took))
    });
    runnel_engine::log::observe::set_write_observer(|took| {
        SHARD.with(|s| record_into(&mut s.borrow_mut().write, took))
    });
}

/// Records record bytes a fetch response carries for `topic`.
pub fn record_fetched(topic: &str, bytes: u64) {
    if bytes > 0 {
        SHARD.with(|s| topic_entry(&mut s.borrow_mut(), topic).bytes_out += bytes);
    }
}

fn topic_entry<'a>(s: &'a mut Snapshot, topic: &str) -> &'a mut TopicCounters {
    if !s.topics.contains_key(topic) {
        s.topics.insert(topic.to_owned(), TopicCounters::default());
    }
    s.topics.get_mut(topic).expect("inserted")
}

/// A connection opened (+1) or closed (-1).
pub fn connection_change(delta: i64) {
    SHARD.with(|s| s.borrow_mut().connections += delta);
}

/// This shard's measurements.
pub fn shard_snapshot() -> Snapshot {
    SHARD.with(|s| s.borrow().clone())
}

/// Every shard's measurements, merged (shards that have stopped are left out).
pub async fn gather() -> Snapshot {
    let mut merged = Snapshot::default();
    for shard in 0..runnel_engine::rt::shard_count() {
        if let Ok(s) = rt::run_on(shard, || async { shard_snapshot() }).await {
            merged.merge(&s);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_histograms_and_counters() {
        let mut a = Snapshot::default();
        let mut b = Snapshot::default();
        let mut h = histogram();
        h.record(100).unwrap();
        a.requests.insert((0, 9), h.clone());
        b.requests.insert((0, 9), h.clone());
        b.requests.insert((1, 12), h);
        a.topics.insert(
            "t".into(),
            TopicCounters {
                messages_in: 1,
                bytes_in: 10,
                bytes_out: 0,
            },
        );
        b.topics.insert(
            "t".into(),
            TopicCounters {
                messages_in: 2,
                bytes_in: 20,
                bytes_out: 5,
            },
        );
        a.connections = 2;
        b.connections = 3;
        a.merge(&b);
        assert_eq!(a.requests[&(0, 9)].len(), 2);
        assert_eq!(a.requests[&(1, 12)].len(), 1);
        assert_eq!(
            a.topics["t"],
            TopicCounters {
                messages_in: 3,
                bytes_in: 30,
                bytes_out: 5
            }
        );
        assert_eq!(a.connections, 5);
    }

    #[test]
    fn recording_on_a_thread_lands_in_its_snapshot() {
        std::thread::spawn(|| {
            record_request(0, 9, Duration::from_micros(250));
            record_append("t", 10, 1000, Duration::from_micros(80));
            record_fetched("t", 500);
            record_queueing(Duration::from_micros(3));
            record_send(Duration::from_micros(40));
            record_send(Duration::from_micros(50));
            connection_change(1);
            let s = shard_snapshot();
            assert_eq!(s.queueing.as_ref().unwrap().len(), 1);
            assert_eq!(s.send.as_ref().unwrap().len(), 2);
            assert_eq!(s.requests[&(0, 9)].len(), 1);
            assert_eq!(s.append.as_ref().unwrap().len(), 1);
            assert_eq!(
                s.topics["t"],
                TopicCounters {
                    messages_in: 10,
                    bytes_in: 1000,
                    bytes_out: 500
                }
            );
            assert_eq!(s.connections, 1);
        })
        .join()
        .unwrap();
    }
}
