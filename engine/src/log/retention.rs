//! Which old segments retention removes: by age (`retention.ms`), by total size
//! (`retention.bytes`) and below the log start offset (DeleteRecords). Whole segments only,
//! never the active one, never one with writes still in flight.

use std::time::Duration;

/// What retention needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    /// Newest record timestamp; `None` for an empty segment.
    pub max_timestamp: Option<i64>,
}

/// The retention settings and the log's current position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionInput {
    pub now_ms: i64,
    pub retention_ms: Option<Duration>,
    pub retention_bytes: Option<u64>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// How many segments, from the oldest, to delete. `segments` are in offset order and end with
/// the active segment, which is never deleted.
pub(crate) fn segments_to_delete(segments: &[SegmentSummary], input: &RetentionInput) -> usize {
    let Some((_active, sealed)) = segments.split_last() else {
        return 0;
    };
    let mut size: u64 = segments.iter().map(|s| s.size).sum();
    let expired_before = input.retention_ms.map(|ms| {
        input
            .now_ms
            .saturating_sub(ms.as_millis().min(i64::MAX as u128) as i64)
    });
    let mut count = 0;
    for segment in sealed {
        if segment.next_offset > input.high_watermark {
            break;
        }
        let below_start = segment.next_offset <= input.log_start_offset;
        let expired = match (expired_before, segment.max_timestamp) {
            (Some(before), Some(ts)) => ts < before,
            _ => false,
        };
        let oversized = input
            .retention_bytes
            .is_some_and(|limit| size - segment.size >= limit);
        if !(below_start || expired || oversized) {
            break;
        }
        size -= segment.size;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: i64, size: u64, ts: i64) -> SegmentSummary {
        SegmentSummary {
            base_offset: base,
            next_offset: next,
            size,
            max_timestamp: Some(ts),
        }
    }

    fn input() -> RetentionInput {
        RetentionInput {
            now_ms: 10_000,
            retention_ms: None,
            retention_bytes: None,
            log_start_offset: 0,
            high_watermark: 400,
        }
    }

    const LOG: [SegmentSummary; 4] = [
        SegmentSummary {
            base_offset: 0,
            next_offset: 100,
            size: 1000,
            max_timestamp: Some(1_000),
        },
        SegmentSummary {
            base_offset: 100,
            next_offset: 200,
            size: 1000,
            max_timestamp: Some(5_000),
        },
        SegmentSummary {
            base_offset: 200,
            next_offset: 300,
            size: 1000,
            max_timestamp: Some(9_000),
        },
        SegmentSummary {
            base_offset: 300,
            next_offset: 400,
            size: 1000,
            max_timestamp: Some(1_000),
        },
    ];

    #[test]
    fn nothing_configured_deletes_nothing() {
        assert_eq!(segments_to_delete(&LOG, &input()), 0);
        assert_eq!(segments_to_delete(&[], &input()), 0);
    }

    #[test]
    fn by_time_stops_at_the_first_young_segment_and_spares_the_active_one() {
        let by_time = |ms| RetentionInput {
            retention_ms: Some(Duration::from_millis(ms)),
            ..input()
        };
        assert_eq!(segments_to_delete(&LOG, &by_time(6_000)), 1);
        assert_eq!(segments_to_delete(&LOG, &by_time(2_000)), 2);
        // Everything is old, but the active segment (ts 1000) stays.
        assert_eq!(segments_to_delete(&LOG, &by_time(0)), 3);
    }

    #[test]
    fn by_size_keeps_at_least_the_limit() {
        let by_size = |bytes| RetentionInput {
            retention_bytes: Some(bytes),
            ..input()
        };
        assert_eq!(segments_to_delete(&LOG, &by_size(4000)), 0);
        assert_eq!(segments_to_delete(&LOG, &by_size(3000)), 1);
        assert_eq!(segments_to_delete(&LOG, &by_size(2500)), 1);
        assert_eq!(segments_to_delete(&LOG, &by_size(1)), 3);
    }

    #[test]
    fn below_the_log_start_offset() {
        let start = |offset| RetentionInput {
            log_start_offset: offset,
            ..input()
        };
        assert_eq!(segments_to_delete(&LOG, &start(150)), 1);
        assert_eq!(segments_to_delete(&LOG, &start(200)), 2);
        assert_eq!(segments_to_delete(&LOG, &start(400)), 3);
    }

    #[test]
    fn segments_with_writes_in_flight_stay() {
        let log = [
            seg(0, 100, 10, 0),
            seg(100, 200, 10, 0),
            seg(200, 200, 0, 0),
        ];
        let unwritten = RetentionInput {
            retention_ms: Some(Duration::ZERO),
            high_watermark: 150,
            ..input()
        };
        assert_eq!(segments_to_delete(&log, &unwritten), 1);
    }
}
