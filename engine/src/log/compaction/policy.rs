//! Whether a log needs cleaning, and which offsets a pass covers: Kafka's
//! `LogCleanerManager.cleanableOffsets` and its dirty-ratio test. Pure: the log's segments
//! and settings in, a decision out.
//!
//! The log splits in three at any moment:
//! - the clean section, `[log start, first dirty)`: compacted by earlier passes;
//! - the dirty section, `[first dirty, first uncleanable)`: written since, cleanable now;
//! - the rest, never touched: the active segment, what is above the high watermark, and
//!   segments younger than `min.compaction.lag.ms` (by their newest record's timestamp).
//!
//! A pass is due when the dirty share of the clean and dirty bytes reaches
//! `min.cleanable.dirty.ratio`; or when the oldest dirty segment has waited longer than
//! `max.compaction.lag.ms`; or when a tombstone's delete horizon has passed (it can only be
//! removed by a pass, and without new writes no ratio would ever call for one).

/// What the policy needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    /// Newest record timestamp; `None` for an empty segment.
    pub max_timestamp: Option<i64>,
    /// When the segment got its first record (broker clock), if known.
    pub first_append_ms: Option<i64>,
}

/// The log's position and compaction settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PolicyInput {
    pub now_ms: i64,
    /// The cleaner checkpoint: where the last pass stopped.
    pub first_dirty: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// The earliest delete horizon of a tombstone kept by an earlier pass.
    pub earliest_tombstone_horizon: Option<i64>,
}

/// Why a pass is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    DirtyRatio,
    MaxCompactionLag,
    TombstoneHorizon,
}

/// The offsets a pass covers: it maps `[first_dirty, first_uncleanable)` and cleans the
/// segments below what it mapped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cleanable {
    pub first_dirty: i64,
    pub first_uncleanable: i64,
    pub dirty_ratio: f64,
    /// `None`: nothing calls for a pass now.
    pub trigger: Option<Trigger>,
}

/// Splits the log (`segments` in offset order, ending with the active one) and decides.
pub(crate) fn cleanable(segments: &[SegmentInfo], input: &PolicyInput) -> Cleanable {
    let Some((active, sealed)) = segments.split_last() else {
        return Cleanable {
            first_dirty: input.first_dirty,
            first_uncleanable: input.first_dirty,
            dirty_ratio: 0.0,
            trigger: None,
        };
    };
    // A checkpoint outside the log (data deleted below it, or a log recreated) is reset, as
    // Kafka does: clean from the start.
    let end = active.next_offset;
    let first_dirty = if input.first_dirty < input.log_start_offset || input.first_dirty > end {
        input.log_start_offset
    } else {
        input.first_dirty
    };
    let lag_floor = input.now_ms.saturating_sub(input.min_compaction_lag_ms);
    let too_young = sealed
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .find(|s| s.max_timestamp.is_some_and(|ts| ts > lag_floor))
        .map(|s| s.base_offset);
    let first_uncleanable = [
        Some(active.base_offset),
        Some(input.high_watermark),
        too_young,
    ]
    .into_iter()
    .flatten()
    .min()
    .expect("the active segment's base")
    .max(first_dirty);
    // Bytes by whole segment, as Kafka counts them: a segment straddling a boundary counts
    // on the side where it starts.
    let clean_bytes: u64 = sealed
        .iter()
        .filter(|s| s.base_offset < first_dirty)
        .map(|s| s.size)
        .sum();
    let dirty: Vec<&SegmentInfo> = sealed
        .iter()
        .filter(|s| s.base_offset >= first_dirty && s.next_offset <= first_uncleanable)
        .collect();
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let overdue = dirty.first().is_some_and(|s| {
        let first_record = s.first_append_ms.or(s.max_timestamp);
        first_record.is_some_and(|t| t <= input.now_ms.saturating_sub(input.max_compaction_lag_ms))
    });
    let trigger = if dirty_bytes > 0 && dirty_ratio >= input.min_cleanable_dirty_ratio {
        Some(Trigger::DirtyRatio)
    } else if dirty_bytes > 0 && overdue {
        Some(Trigger::MaxCompactionLag)
    } else if input
        .earliest_tombstone_horizon
        .is_some_and(|h| h <= input.now_ms)
        && clean_bytes > 0
    {
        Some(Trigger::TombstoneHorizon)
    } else {
        None
    };
    Cleanable {
        first_dirty,
        first_uncleanable,
        dirty_ratio,
        trigger,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: i64, size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo {
            base_offset: base,
            next_offset: next,
            size,
            max_timestamp: Some(ts),
            first_append_ms: Some(ts),
        }
    }

    /// Four sealed segments of 100 offsets and 1000 bytes, and the active one.
    fn log() -> Vec<SegmentInfo> {
        vec![
            seg(0, 100, 1000, 1_000),
            seg(100, 200, 1000, 2_000),
            seg(200, 300, 1000, 3_000),
            seg(300, 400, 1000, 4_000),
            seg(400, 450, 500, 5_000),
        ]
    }

    fn input() -> PolicyInput {
        PolicyInput {
            now_ms: 10_000,
            first_dirty: 0,
            log_start_offset: 0,
            high_watermark: 450,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            earliest_tombstone_horizon: None,
        }
    }

    #[test]
    fn a_never_cleaned_log_is_all_dirty_up_to_the_active_segment() {
        let c = cleanable(&log(), &input());
        assert_eq!((c.first_dirty, c.first_uncleanable), (0, 400));
        assert_eq!(c.dirty_ratio, 1.0);
        assert_eq!(c.trigger, Some(Trigger::DirtyRatio));
    }

    #[test]
    fn the_dirty_ratio_decides() {
        let after = |first_dirty, ratio| {
            cleanable(
                &log(),
                &PolicyInput {
                    first_dirty,
                    min_cleanable_dirty_ratio: ratio,
                    ..input()
                },
            )
        };
        let c = after(200, 0.5);
        assert_eq!(c.dirty_ratio, 0.5);
        assert_eq!(c.trigger, Some(Trigger::DirtyRatio));
        let c = after(300, 0.5);
        assert_eq!(c.dirty_ratio, 0.25);
        assert_eq!(c.trigger, None);
        assert_eq!(after(300, 0.25).trigger, Some(Trigger::DirtyRatio));
        // Everything sealed is clean: nothing to do, whatever the ratio.
        let c = after(400, 0.0);
        assert_eq!((c.dirty_ratio, c.trigger), (0.0, None));
    }

    #[test]
    fn young_segments_and_unwritten_offsets_stay_dirty() {
        let lagged = PolicyInput {
            min_compaction_lag_ms: 7_500,
            ..input()
        };
        // Records newer than now - 7.5 s = 2500 must wait: the segment at 200 (newest 3000)
        // is the first of those.
        assert_eq!(cleanable(&log(), &lagged).first_uncleanable, 200);
        let below_hw = PolicyInput {
            high_watermark: 250,
            ..input()
        };
        let c = cleanable(&log(), &below_hw);
        assert_eq!(c.first_uncleanable, 250);
        // Segment 200..300 straddles the high watermark: not dirty-and-cleanable yet.
        assert_eq!(c.dirty_ratio, 1.0);
    }

    #[test]
    fn max_compaction_lag_forces_a_pass_below_the_ratio() {
        let overdue = PolicyInput {
            first_dirty: 300,
            max_compaction_lag_ms: 5_000,
            ..input()
        };
        // The first dirty segment's first record (4000) is older than now - 5 s (5000).
        assert_eq!(
            cleanable(&log(), &overdue).trigger,
            Some(Trigger::MaxCompactionLag)
        );
        let patient = PolicyInput {
            max_compaction_lag_ms: 7_000,
            ..overdue
        };
        assert_eq!(cleanable(&log(), &patient).trigger, None);
    }

    #[test]
    fn a_passed_tombstone_horizon_forces_a_pass() {
        let clean = PolicyInput {
            first_dirty: 400,
            earliest_tombstone_horizon: Some(9_000),
            ..input()
        };
        assert_eq!(
            cleanable(&log(), &clean).trigger,
            Some(Trigger::TombstoneHorizon)
        );
        let later = PolicyInput {
            earliest_tombstone_horizon: Some(11_000),
            ..clean
        };
        assert_eq!(cleanable(&log(), &later).trigger, None);
    }

    #[test]
    fn a_checkpoint_outside_the_log_resets_to_its_start() {
        for first_dirty in [-5, 50, 10_000] {
            let c = cleanable(
                &log(),
                &PolicyInput {
                    first_dirty,
                    log_start_offset: 100,
                    ..input()
                },
            );
            assert_eq!(c.first_dirty, 100, "checkpoint {first_dirty}");
        }
        assert_eq!(cleanable(&[], &input()).trigger, None);
    }
}
