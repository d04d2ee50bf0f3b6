//! A follower partition's fetch state driven step by step with explicit times.

use super::*;
use crate::replication::errors;
use crate::replication::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};

const BACKOFF: i64 = 1000;
const T0: i64 = 50_000;
/// The leader epoch the follower starts under.
const E: i32 = 7;

/// A follower log: (epoch, start offset) in order, and its end.
#[derive(Debug, Clone)]
struct Log {
    epochs: Vec<(i32, i64)>,
    end: i64,
}

impl Log {
    fn new(epochs: &[(i32, i64)], end: i64) -> Log {
        Log {
            epochs: epochs.to_vec(),
            end,
        }
    }

    fn latest(&self) -> Option<i32> {
        self.epochs.last().map(|&(e, _)| e)
    }

    fn truncate(&mut self, to: i64) {
        self.end = self.end.min(to);
        self.epochs.retain(|&(_, start)| start < to);
    }
}

impl LocalEpochs for Log {
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let i = self.epochs.iter().rposition(|&(e, _)| e <= epoch)?;
        let end = self.epochs.get(i + 1).map_or(self.end, |&(_, start)| start);
        Some((self.epochs.get(i)?.0, end))
    }
}

fn follower(log: &Log, hw: i64) -> FollowerState {
    FollowerState::new(2, E, log.end, hw, log.latest(), BACKOFF)
}

fn fetch_at(offset: i64, last_fetched_epoch: Option<i32>) -> Option<FollowerAction> {
    Some(FollowerAction::Fetch {
        offset,
        current_leader_epoch: E,
        last_fetched_epoch,
    })
}

/// Carries out a truncation the follower asked for, as the wiring would.
fn truncate(f: &mut FollowerState, log: &mut Log, now: i64) {
    match f.next_action(now) {
        Some(FollowerAction::Truncate { to }) => log.truncate(to),
        other => panic!("expected a truncation, got {other:?}"),
    }
    assert_eq!(f.next_action(now), None, "nothing while truncating");
    f.on_truncated(log.end, log.latest());
}

#[test]
fn it_asks_where_its_latest_epoch_ends_before_fetching() {
    let log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = follower(&log, 40);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::AskEpochEndOffset {
            epoch: 3,
            current_leader_epoch: E
        })
    );
    // The question is out: nothing more until the answer.
    assert_eq!(f.next_action(T0), None);
    // The leader has all of epoch 3 and more: nothing to cut, fetch from our end.
    f.on_epoch_end_offset(E, 3, 120, &log, T0);
    assert_eq!(f.next_action(T0), fetch_at(100, Some(3)));
    assert_eq!(f.next_action(T0), None);
}

#[test]
fn same_epoch_truncates_to_the_leaders_end_of_it() {
    let mut log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, 3, 80, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 80);
    assert_eq!(f.next_action(T0), fetch_at(80, Some(3)));
}

#[test]
fn an_older_epoch_both_hold_truncates_to_the_shorter_end() {
    // We have 1@0 and 3@50; the leader never had 3: its largest <= 3 is 1, ending at 45.
    let mut log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, 1, 45, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 45);
    assert_eq!(f.next_action(T0), fetch_at(45, Some(1)));
}

#[test]
fn an_epoch_we_never_had_takes_another_question() {
    // We have 1@0, 2@30, 4@60. The leader answers epoch 3 (which we never had) ending at 90.
    // Our largest epoch below 3 is 2, ending at 60 here: cut there, ask about 2.
    let mut log = Log::new(&[(1, 0), (2, 30), (4, 60)], 100);
    let mut f = follower(&log, 10);
    assert!(matches!(
        f.next_action(T0),
        Some(FollowerAction::AskEpochEndOffset { epoch: 4, .. })
    ));
    f.on_epoch_end_offset(E, 3, 90, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 60);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::AskEpochEndOffset {
            epoch: 2,
            current_leader_epoch: E
        })
    );
    // The leader's epoch 2 ends at 55 (it had fewer records of it).
    f.on_epoch_end_offset(E, 2, 55, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 55);
    assert_eq!(f.next_action(T0), fetch_at(55, Some(2)));
}

#[test]
fn an_undefined_answer_truncates_to_the_high_watermark() {
    let mut log = Log::new(&[(1, 0)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, UNDEFINED_EPOCH, UNDEFINED_OFFSET, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 40);
    assert_eq!(f.next_action(T0), fetch_at(40, Some(1)));
}

#[test]
fn a_log_without_epochs_truncates_to_the_high_watermark_without_asking() {
    let mut log = Log::new(&[], 100);
    let mut f = follower(&log, 40);
    truncate(&mut f, &mut log, T0);
    assert_eq!(f.next_action(T0), fetch_at(40, None));
    // An empty log has nothing to cut: it fetches at once.
    let mut f = follower(&Log::new(&[], 0), 0);
    assert_eq!(f.next_action(T0), fetch_at(0, None));
}

#[test]
fn fetched_records_move_the_log_end_and_the_high_watermark() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, 3, 100, &log, T0);
    assert_eq!(f.next_action(T0), fetch_at(100, Some(3)));
    assert!(f.expects_fetch_response(E));
    assert!(!f.expects_fetch_response(E - 1));
    // The leader's high watermark is past what we have: ours is capped at our end.
    assert_eq!(f.on_appended(E, 150, 170, Some(E)), Some(150));
    assert_eq!(f.next_action(T0), fetch_at(150, Some(E)));
    assert_eq!(f.on_appended(E, 180, 160, Some(E)), Some(160));
    assert_eq!(f.high_watermark(), 160);
    assert_eq!(f.log_end(), 180);
    // Not awaited: no high watermark from it.
    assert_eq!(f.on_appended(E, 180, 175, Some(E)), None);
    assert_eq!(f.high_watermark(), 160);
}

/// Brings a follower to the point where a Fetch from `log.end` is out.
fn fetching(log: &Log, hw: i64) -> FollowerState {
    let mut f = follower(log, hw);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, log.latest().unwrap_or(UNDEFINED_EPOCH), log.end, log, T0);
    assert!(matches!(
        f.next_action(T0),
        Some(FollowerAction::Fetch { .. })
    ));
    f
}

#[test]
fn out_of_range_past_the_leaders_end_truncates_to_it() {
    let mut log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    f.on_error(E, errors::OFFSET_OUT_OF_RANGE, T0);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::ListLeaderOffsets {
            current_leader_epoch: E
        })
    );
    assert_eq!(f.next_action(T0), None);
    f.on_leader_offsets(E, 0, 60, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(log.end, 60);
    assert_eq!(f.next_action(T0), fetch_at(60, Some(3)));
}

#[test]
fn out_of_range_below_the_leaders_start_starts_over_there() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    f.on_error(E, errors::OFFSET_OUT_OF_RANGE, T0);
    let _ = f.next_action(T0);
    f.on_leader_offsets(E, 500, 900, T0);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::TruncateFullyAndStartAt { offset: 500 })
    );
    assert_eq!(f.next_action(T0), None);
    f.on_truncated(500, None);
    assert_eq!(f.high_watermark(), 500);
    assert_eq!(f.next_action(T0), fetch_at(500, None));
}

#[test]
fn out_of_range_that_resolved_itself_fetches_again() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    f.on_error(E, errors::OFFSET_OUT_OF_RANGE, T0);
    let _ = f.next_action(T0);
    f.on_leader_offsets(E, 10, 130, T0);
    assert_eq!(f.next_action(T0), fetch_at(100, Some(3)));
    // A nonsensical answer is retried after the backoff.
    f.on_error(E, errors::OFFSET_OUT_OF_RANGE, T0);
    let _ = f.next_action(T0);
    f.on_leader_offsets(E, 50, 10, T0);
    assert_eq!(f.next_action(T0 + BACKOFF - 1), None);
    assert!(matches!(
        f.next_action(T0 + BACKOFF),
        Some(FollowerAction::ListLeaderOffsets { .. })
    ));
}

#[test]
fn errors_back_off_then_retry_what_failed() {
    let log = Log::new(&[(3, 0)], 100);
    for code in [errors::UNKNOWN_TOPIC_OR_PARTITION, errors::NONE, i16::MIN] {
        let mut f = fetching(&log, 40);
        f.on_error(E, code, T0);
        assert_eq!(f.next_wakeup(), Some(T0 + BACKOFF));
        assert_eq!(f.next_action(T0 + BACKOFF - 1), None, "code {code}");
        assert_eq!(f.next_action(T0 + BACKOFF), fetch_at(100, Some(3)));
        assert_eq!(f.next_wakeup(), None);
    }
    // An OffsetsForLeaderEpoch error asks again after the backoff.
    let mut f = follower(&log, 40);
    let ask = f.next_action(T0);
    f.on_error(E, errors::UNKNOWN_TOPIC_OR_PARTITION, T0);
    assert_eq!(f.next_action(T0 + BACKOFF - 1), None);
    assert_eq!(f.next_action(T0 + BACKOFF), ask);
    // So does a request that got no answer.
    f.on_request_failed(E, T0 + BACKOFF);
    assert_eq!(f.next_action(T0 + 2 * BACKOFF), ask);
    // An answer nobody asked for changes nothing.
    f.on_request_failed(E - 1, T0);
    f.on_error(E, errors::UNKNOWN_TOPIC_OR_PARTITION, T0);
    f.on_error(E, errors::UNKNOWN_TOPIC_OR_PARTITION, T0 + 5 * BACKOFF);
    assert_eq!(f.next_wakeup(), Some(T0 + BACKOFF));
}

/// Right after an election the follower may ask the new leader before it has taken its
/// leadership: it asks again within milliseconds a few times, then only after the backoff;
/// the next leader gets quick retries again.
#[test]
fn a_leader_not_leading_yet_is_asked_again_soon_then_after_the_backoff() {
    let log = Log::new(&[(3, 0)], 100);
    for code in [errors::NOT_LEADER_OR_FOLLOWER, errors::UNKNOWN_LEADER_EPOCH] {
        let mut f = follower(&log, 40);
        let ask = f.next_action(T0);
        let mut now = T0;
        for _ in 0..10 {
            f.on_error(E, code, now);
            let soon = f.next_wakeup().expect("delayed");
            assert!(
                soon > now && soon <= now + 5,
                "code {code}: retried at {soon}"
            );
            assert_eq!(f.next_action(soon - 1), None);
            assert_eq!(f.next_action(soon), ask);
            now = soon;
        }
        f.on_error(E, code, now);
        assert_eq!(f.next_wakeup(), Some(now + BACKOFF), "code {code}");
        assert!(f.on_new_leader(3, E + 1));
        let ask = f.next_action(now);
        f.on_error(E + 1, code, now);
        assert!(f.next_wakeup().expect("delayed") <= now + 5);
        assert_eq!(f.next_action(now + 5), ask);
    }
}

#[test]
fn an_abandoned_fetch_is_asked_again_at_once() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    assert_eq!(f.next_action(T0), None, "one fetch out at a time");
    // Under an older epoch: not this request, nothing changes.
    f.on_request_abandoned(E - 1);
    assert_eq!(f.next_action(T0), None);
    f.on_request_abandoned(E);
    assert_eq!(f.next_wakeup(), None, "no backoff");
    assert_eq!(f.next_action(T0), fetch_at(100, Some(3)));
    // Backing off, nothing is out: nothing to abandon.
    f.on_error(E, errors::UNKNOWN_TOPIC_OR_PARTITION, T0);
    f.on_request_abandoned(E);
    assert_eq!(
        f.next_wakeup(),
        Some(T0 + BACKOFF),
        "a backoff is not cut short"
    );
}

#[test]
fn a_fenced_epoch_waits_for_the_new_leader_which_restarts_truncation() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    f.on_error(E, errors::FENCED_LEADER_EPOCH, T0);
    assert_eq!(f.phase(), FollowerPhase::Idle);
    assert_eq!(f.next_action(T0 + 100 * BACKOFF), None);
    // Older metadata, or the same leader at the same epoch, doesn't wake it.
    assert!(!f.on_new_leader(2, E));
    assert!(!f.on_new_leader(5, E - 1));
    assert!(f.on_new_leader(5, E + 1));
    assert_eq!(f.leader(), 5);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::AskEpochEndOffset {
            epoch: 3,
            current_leader_epoch: E + 1
        })
    );
}

#[test]
fn a_new_leader_mid_fetch_drops_the_old_leaders_answers() {
    let log = Log::new(&[(3, 0)], 100);
    let mut f = fetching(&log, 40);
    assert!(f.on_new_leader(4, E + 1));
    // The old fetch's answer arrives: not appended, not obeyed.
    assert!(!f.expects_fetch_response(E));
    assert_eq!(f.on_appended(E, 100, 100, Some(3)), None);
    f.on_error(E, errors::FENCED_LEADER_EPOCH, T0);
    f.on_diverging_epoch(E, 2, 10, &log, T0);
    assert_eq!(f.phase(), FollowerPhase::Truncating);
    let ask = f.next_action(T0);
    assert!(matches!(
        ask,
        Some(FollowerAction::AskEpochEndOffset { epoch: 3, current_leader_epoch }) if current_leader_epoch == E + 1
    ));
    // An old epoch question's answer is ignored too.
    f.on_epoch_end_offset(E, 3, 10, &log, T0);
    assert!(matches!(
        f.phase(),
        FollowerPhase::AwaitingEpochEnd { epoch: 3 }
    ));
}

#[test]
fn a_new_leader_during_a_truncation_waits_for_it_to_finish() {
    let mut log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, 3, 80, &log, T0);
    let Some(FollowerAction::Truncate { to }) = f.next_action(T0) else {
        panic!("expected a truncation");
    };
    assert!(f.on_new_leader(4, E + 1));
    log.truncate(to);
    f.on_truncated(log.end, log.latest());
    assert_eq!(f.log_end(), 80);
    assert_eq!(
        f.next_action(T0),
        Some(FollowerAction::AskEpochEndOffset {
            epoch: 3,
            current_leader_epoch: E + 1
        })
    );
}

#[test]
fn a_diverging_epoch_in_a_fetch_answer_truncates_by_the_same_rule() {
    let mut log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = fetching(&log, 40);
    // The leader's largest epoch <= 3 is 1, which it ends at 45.
    f.on_diverging_epoch(E, 1, 45, &log, T0);
    truncate(&mut f, &mut log, T0);
    assert_eq!(f.next_action(T0), fetch_at(45, Some(1)));
    // Nonsense (an epoch above the one we sent) backs off and fetches again.
    f.on_diverging_epoch(E, 9, 45, &log, T0);
    assert_eq!(f.next_action(T0 + BACKOFF - 1), None);
    assert_eq!(f.next_action(T0 + BACKOFF), fetch_at(45, Some(1)));
}

/// A leader's log for the simulation: its epochs and end.
fn leader_answer(leader: &Log, asked: i32) -> (i32, i64) {
    leader
        .end_offset_for(asked)
        .unwrap_or((UNDEFINED_EPOCH, UNDEFINED_OFFSET))
}

/// Several partitions of one leader, each diverged differently, driven together the way the
/// wiring will: each round gathers every partition's action, then answers them all.
#[test]
fn several_partitions_driven_together_converge_on_their_leaders_logs() {
    let leader_logs = [
        Log::new(&[(1, 0), (5, 40)], 120),
        Log::new(&[(1, 0), (2, 30), (5, 70)], 200),
        Log::new(&[], 0),
        Log::new(&[(4, 0)], 30),
    ];
    let mut follower_logs = [
        Log::new(&[(1, 0), (3, 60)], 90), // diverged at 60 (leader's epoch 1 ends at 40)
        Log::new(&[(1, 0), (2, 30), (4, 50)], 80), // epoch 4 never reached the leader
        Log::new(&[], 0),
        Log::new(&[(4, 0)], 30), // already equal
    ];
    let mut followers: Vec<FollowerState> = follower_logs.iter().map(|l| follower(l, 0)).collect();
    let mut now = T0;
    for _round in 0..20 {
        let actions: Vec<Option<FollowerAction>> =
            followers.iter_mut().map(|f| f.next_action(now)).collect();
        for (i, action) in actions.into_iter().enumerate() {
            let (f, log, leader) = (&mut followers[i], &mut follower_logs[i], &leader_logs[i]);
            match action {
                None => {}
                Some(FollowerAction::AskEpochEndOffset {
                    epoch,
                    current_leader_epoch,
                }) => {
                    let (e, end) = leader_answer(leader, epoch);
                    f.on_epoch_end_offset(current_leader_epoch, e, end, &*log, now);
                }
                Some(FollowerAction::Truncate { to }) => {
                    log.truncate(to);
                    f.on_truncated(log.end, log.latest());
                }
                Some(FollowerAction::Fetch {
                    offset,
                    current_leader_epoch,
                    ..
                }) => {
                    // The leader sends everything from `offset`, with its epochs.
                    for &(e, start) in &leader.epochs {
                        if start >= offset && log.latest() != Some(e) {
                            log.epochs.push((e, start));
                        } else if start < offset && log.latest().is_none() {
                            log.epochs.push((e, offset));
                        }
                    }
                    log.epochs.sort_unstable();
                    log.epochs.dedup_by_key(|&mut (e, _)| e);
                    log.end = leader.end;
                    let hw = f.on_appended(current_leader_epoch, log.end, leader.end, log.latest());
                    assert_eq!(hw, Some(leader.end));
                }
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
        now += 10;
    }
    for (i, (log, leader)) in follower_logs.iter().zip(&leader_logs).enumerate() {
        assert_eq!(log.end, leader.end, "partition {i}");
        assert_eq!(log.epochs, leader.epochs, "partition {i}");
        assert_eq!(followers[i].high_watermark(), leader.end);
        assert!(matches!(
            followers[i].phase(),
            FollowerPhase::Fetching { .. }
        ));
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn offset(&mut self) -> i64 {
        match self.next() % 6 {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -1,
            3 => 0,
            _ => (self.next() % 1000) as i64,
        }
    }

    fn epoch(&mut self) -> i32 {
        [i32::MIN, i32::MAX, -1, 0, 3, 7, 8][(self.next() % 7) as usize]
    }

    fn maybe_epoch(&mut self) -> Option<i32> {
        (self.next() % 4 != 0).then(|| self.epoch())
    }
}

#[test]
fn any_input_never_panics_nor_asks_for_a_negative_offset() {
    let log = Log::new(&[(1, 0), (3, 50)], 100);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut f = FollowerState::new(
            rng.epoch(),
            rng.epoch(),
            rng.offset(),
            rng.offset(),
            rng.maybe_epoch(),
            rng.offset(),
        );
        for _ in 0..200 {
            let now = rng.offset();
            let at = if rng.next() % 2 == 0 {
                f.leader_epoch()
            } else {
                rng.epoch()
            };
            match rng.next() % 9 {
                0 | 1 => match f.next_action(now) {
                    Some(FollowerAction::Fetch { offset: o, .. })
                    | Some(FollowerAction::Truncate { to: o })
                    | Some(FollowerAction::TruncateFullyAndStartAt { offset: o }) => {
                        assert!(o >= 0, "seed {seed}")
                    }
                    _ => {}
                },
                2 => f.on_epoch_end_offset(at, rng.epoch(), rng.offset(), &log, now),
                3 => f.on_diverging_epoch(at, rng.epoch(), rng.offset(), &log, now),
                4 => {
                    let _ = f.on_appended(at, rng.offset(), rng.offset(), rng.maybe_epoch());
                }
                5 => f.on_error(at, rng.next() as i16, now),
                6 => f.on_leader_offsets(at, rng.offset(), rng.offset(), now),
                7 => f.on_truncated(rng.offset(), rng.maybe_epoch()),
                _ => {
                    let _ = f.on_new_leader(rng.epoch(), rng.epoch());
                    f.on_request_failed(at, now);
                }
            }
        }
    }
}

#[test]
fn a_failed_truncation_backs_off_and_asks_again() {
    let log = Log::new(&[(1, 0), (3, 50)], 100);
    let mut f = follower(&log, 40);
    let _ = f.next_action(T0);
    f.on_epoch_end_offset(E, 3, 80, &log, T0);
    assert_eq!(f.next_action(T0), Some(FollowerAction::Truncate { to: 80 }));
    f.on_truncation_failed(T0);
    assert_eq!(f.next_action(T0 + BACKOFF - 1), None);
    assert_eq!(
        f.next_action(T0 + BACKOFF),
        Some(FollowerAction::AskEpochEndOffset {
            epoch: 3,
            current_leader_epoch: E
        })
    );
}
