//! The maximum sustainable producer rate (`find_max_rate = true`), found as OpenMessaging
//! Benchmark does in spirit: short runs at increasing rates until one is not sustained, then
//! bisection between the last rate that was and the first that wasn't.
//!
//! Short steps overestimate what a long run holds (page-cache and writeback state drift over
//! tens of seconds), so [`measure_at_max`] then runs the workload's full duration at the found
//! rate and, while that run doesn't sustain it, backs off by 1/8 and runs again (at most
//! three times): the rate reported is one a full-length run held, or the report says it wasn't.
//!
//! A rate is sustained when the producers kept to it (published at least 97% of it and sent
//! on schedule: publish delay p99 under 500 ms, so a writeback stall they catch up from
//! doesn't count against a rate) and, with consumers, everything published was
//! consumed with no backlog building up (end-to-end p99 under one second). Past the broker's
//! limit the producers fall behind their schedule or the consumers behind the producers, and
//! both show within a few seconds.

use std::time::Duration;

use crate::runner::{self, Report};
use crate::workload::Workload;

/// Where the search starts (OpenMessaging Benchmark's starting rate).
const START_RATE: u64 = 10_000;
/// No search goes past this.
const MAX_RATE: u64 = 50_000_000;
/// Bisection steps after the first unsustained rate: the result is within 1/16 of the bracket.
const BISECTIONS: usize = 4;
const STEP_WARMUP_SECONDS: u64 = 1;
const STEP_SECONDS: u64 = 3;
const MAX_PUBLISH_DELAY: Duration = Duration::from_millis(500);
const MAX_END_TO_END: Duration = Duration::from_secs(1);

/// One step of the search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub rate: u64,
    pub sustained: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    pub publish_rate: f64,
    pub consume_rate: f64,
}

/// Whether a run at `rate` kept up; `Err` says how it didn't.
pub fn sustained(rate: u64, report: &Report, consumers: bool) -> Result<(), String> {
    if report.publish_rate < rate as f64 * 0.97 {
        return Err(format!(
            "published {:.0} msg/s of {rate}",
            report.publish_rate
        ));
    }
    let delay = Duration::from_micros(report.publish_delay_us.p99);
    if delay > MAX_PUBLISH_DELAY {
        return Err(format!("producers fell behind schedule (p99 {delay:?})"));
    }
    if consumers {
        if report.consumed < report.published {
            return Err(format!(
                "consumed {} of {} messages",
                report.consumed, report.published
            ));
        }
        let end_to_end = Duration::from_micros(report.end_to_end_us.p99);
        if end_to_end > MAX_END_TO_END {
            return Err(format!(
                "a backlog built up (end to end p99 {end_to_end:?})"
            ));
        }
    }
    Ok(())
}

/// Searches with short runs of `workload` at different rates against `bootstrap`; each step
/// is reported to `on_step` as it ends. Returns the highest sustained rate.
pub fn search(
    bootstrap: &str,
    workload: &Workload,
    generator: runner::Generator,
    mut on_step: impl FnMut(&Step),
) -> Result<u64, String> {
    let consumers = workload.consumers_per_topic > 0;
    let start = if workload.producer_rate > 0 {
        workload.producer_rate
    } else {
        START_RATE
    };
    bracket(start, |rate| {
        let mut step_workload = at_rate(workload, rate);
        step_workload.name = format!("{}-at-{rate}", workload.name);
        step_workload.warmup_seconds = STEP_WARMUP_SECONDS;
        step_workload.duration_seconds = STEP_SECONDS;
        let report = runner::run(bootstrap, &step_workload, generator)?;
        Ok(judge(rate, &report, consumers, &mut on_step))
    })
}

/// `workload` at the fixed producer `rate`, searching nothing.
fn at_rate(workload: &Workload, rate: u64) -> Workload {
    let mut fixed = workload.clone();
    fixed.producer_rate = rate;
    fixed.find_max_rate = false;
    fixed
}

/// Whether the run at `rate` that made `report` sustained it; tells `on_step` either way.
fn judge(rate: u64, report: &Report, consumers: bool, on_step: &mut impl FnMut(&Step)) -> bool {
    let verdict = sustained(rate, report, consumers);
    let kept_up = verdict.is_ok();
    on_step(&Step {
        rate,
        sustained: kept_up,
        reason: verdict.err(),
        publish_rate: report.publish_rate,
        consume_rate: report.consume_rate,
    });
    kept_up
}

/// Backs-offs after the search when a full-length run doesn't hold the found rate.
const CONFIRMATIONS: usize = 3;

/// Searches (see [`search`]), then runs `workload` for its full duration at the highest rate
/// found, backing off while that run doesn't sustain it. Every run is reported to `on_step`;
/// the result is the last full-length run's report, its rate the last step's.
pub fn measure_at_max(
    bootstrap: &str,
    workload: &Workload,
    generator: runner::Generator,
    mut on_step: impl FnMut(&Step),
) -> Result<Report, String> {
    let consumers = workload.consumers_per_topic > 0;
    let mut rate = search(bootstrap, workload, generator, &mut on_step)?;
    let mut attempt = 0;
    loop {
        let report = runner::run(bootstrap, &at_rate(workload, rate), generator)?;
        let kept_up = judge(rate, &report, consumers, &mut on_step);
        attempt += 1;
        if kept_up || attempt > CONFIRMATIONS {
            return Ok(report);
        }
        rate -= rate / 8;
    }
}

/// The search itself over `try_rate` (true when the rate was sustained): doubles from `start`
/// while rates are sustained (halves while they aren't), then bisects the bracket.
fn bracket(
    start: u64,
    mut try_rate: impl FnMut(u64) -> Result<bool, String>,
) -> Result<u64, String> {
    let (mut good, mut bad) = if try_rate(start)? {
        let mut good = start;
        loop {
            let next = (good * 2).min(MAX_RATE);
            if next == good || !try_rate(next)? {
                break (good, next);
            }
            good = next;
        }
    } else {
        let mut bad = start;
        loop {
            let next = bad / 2;
            if next < 1 {
                return Err(format!(
                    "not even 1 msg/s was sustained (tried down from {start})"
                ));
            }
            if try_rate(next)? {
                break (next, bad);
            }
            bad = next;
        }
    };
    for _ in 0..BISECTIONS {
        if bad - good <= 1 {
            break;
        }
        let middle = good + (bad - good) / 2;
        if try_rate(middle)? {
            good = middle;
        } else {
            bad = middle;
        }
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Percentiles;

    fn report(published: u64, consumed: u64, delay_p99_us: u64, e2e_p99_us: u64) -> Report {
        let percentiles = |p99| Percentiles {
            p99,
            ..Percentiles::default()
        };
        Report {
            workload: "w".into(),
            seconds: 1.0,
            published,
            consumed,
            publish_rate: published as f64,
            publish_mib_per_sec: 0.0,
            consume_rate: consumed as f64,
            publish_latency_us: Percentiles::default(),
            publish_delay_us: percentiles(delay_p99_us),
            end_to_end_us: percentiles(e2e_p99_us),
            publish_per_second: Vec::new(),
            consume_per_second: Vec::new(),
            rate_search: Vec::new(),
            generator_cpu_seconds: 0.0,
            generator_wall_seconds: 1.0,
        }
    }

    #[test]
    fn a_rate_is_sustained_only_when_producers_and_consumers_keep_up() {
        assert!(sustained(1000, &report(1000, 1000, 200, 2_000), true).is_ok());
        let short = sustained(1000, &report(900, 900, 200, 2_000), true).unwrap_err();
        assert!(short.contains("published 900"), "{short}");
        let late = sustained(1000, &report(1000, 1000, 800_000, 2_000), true).unwrap_err();
        assert!(late.contains("behind schedule"), "{late}");
        let unread = sustained(1000, &report(1000, 990, 200, 2_000), true).unwrap_err();
        assert!(unread.contains("consumed 990"), "{unread}");
        let backlog = sustained(1000, &report(1000, 1000, 200, 3_000_000), true).unwrap_err();
        assert!(backlog.contains("backlog"), "{backlog}");
        // Without consumers only the producers count.
        assert!(sustained(1000, &report(1000, 0, 200, 0), false).is_ok());
    }

    #[test]
    fn the_search_brackets_then_bisects_to_within_a_sixteenth() {
        for capacity in [7_000u64, 10_000, 123_456, 3_000_000] {
            let mut tried = Vec::new();
            let found = bracket(10_000, |rate| {
                tried.push(rate);
                Ok(rate <= capacity)
            })
            .unwrap();
            assert!(
                found <= capacity,
                "{capacity}: found {found}, tried {tried:?}"
            );
            assert!(
                found as f64 >= capacity as f64 * (1.0 - 1.0 / 16.0) - 1.0,
                "{capacity}: found {found}, tried {tried:?}"
            );
            assert!(tried.len() <= 14, "{capacity}: {} steps", tried.len());
        }
        assert!(bracket(10, |_| Ok(false)).is_err(), "nothing sustained");
        assert!(bracket(10, |_| Err("broker gone".into())).is_err());
    }
}
