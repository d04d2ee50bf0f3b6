//! Latency recording: HdrHistograms in microseconds, merged across tasks, and the
//! coordinated-omission correction.
//!
//! A load generator that sends the next message only when the previous one got through hides
//! the broker's stalls: while the broker stalls, no message is *sent* late, so none is
//! *measured* late. With a fixed rate every message has an intended send time (the start plus
//! its index over the rate); measuring from that time instead of from the actual send counts
//! the wait a stall imposed on every message that should have gone out during it.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Longest latency a histogram holds (longer values are clamped to it).
const MAX_MICROS: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"))
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.0.record(micros).expect("clamped into range");
    }

    /// Adds another histogram's counts (same bounds, so this cannot fail).
    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.0;
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p75: h.value_at_quantile(0.75),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

impl Percentiles {
    /// One line of a human table: `name` and the percentiles in milliseconds.
    pub fn table_row(&self, name: &str) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{name:<14}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9.3}{:>9.3}\n",
            ms(self.p50),
            ms(self.p75),
            ms(self.p95),
            ms(self.p99),
            ms(self.p999),
            ms(self.p9999),
            ms(self.max)
        )
    }
}

/// When message `index` of a producer sending `rate` messages per second from `start` should
/// go out; `None` when the producer is unthrottled (rate 0).
pub fn intended_send_time(start: Instant, index: u64, rate: f64) -> Option<Instant> {
    (rate > 0.0).then(|| start + Duration::from_secs_f64(index as f64 / rate))
}

/// The latency to record for a message acknowledged (or consumed) at `done` that was sent at
/// `sent` and meant to go out at `intended`: measured from the intended time when there is one
/// (coordinated-omission corrected), else from the actual send.
pub fn corrected_latency(intended: Option<Instant>, sent: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(intended.map_or(sent, |i| i.min(sent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_keeps_percentiles() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for us in 1..=500 {
            a.record(Duration::from_micros(us));
        }
        for us in 501..=1000 {
            b.record(Duration::from_micros(us));
        }
        a.merge(&b);
        let p = a.percentiles();
        assert_eq!(p.count, 1000);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!((989..=991).contains(&p.p99), "{p:?}");
        assert!((999..=1001).contains(&p.max), "{p:?}");
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = Latencies::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        assert_eq!(h.count(), 2);
        assert!(h.percentiles().max >= MAX_MICROS);
    }

    #[test]
    fn a_stall_counts_for_every_message_it_delayed() {
        // 1000 msg/s for one second; the broker stalls 500 ms at the start, then answers each
        // message 100 µs after it is sent. Sends happen back to back once the stall ends.
        let start = Instant::now();
        let rate = 1000.0;
        let stall_end = start + Duration::from_millis(500);
        let mut corrected = Latencies::default();
        let mut naive = Latencies::default();
        for i in 0..1000 {
            let intended = intended_send_time(start, i, rate).unwrap();
            let sent = intended.max(stall_end);
            let done = sent + Duration::from_micros(100);
            corrected.record(corrected_latency(Some(intended), sent, done));
            naive.record(corrected_latency(None, sent, done));
        }
        let (c, n) = (corrected.percentiles(), naive.percentiles());
        assert!(n.p99 <= 101, "uncorrected, the stall is invisible: {n:?}");
        // Half the messages waited out part of the stall: 0.1 to 500 ms.
        assert!(
            c.p75 >= 200_000 && c.max >= 499_000,
            "corrected, it shows: {c:?}"
        );
    }

    #[test]
    fn intended_times_follow_the_rate() {
        let start = Instant::now();
        assert_eq!(intended_send_time(start, 0, 0.0), None);
        assert_eq!(
            intended_send_time(start, 10, 100.0),
            Some(start + Duration::from_millis(100))
        );
    }
}
