//! The leader's replica tracking driven step by step with explicit times.

use super::*;

const LAG: i64 = 10_000;
const RETRY: i64 = 100;
const T0: i64 = 1_000_000;

/// Broker 1 leads at leader epoch 5, partition epoch 10, the epoch starting at offset 0.
fn leader(replicas: &[i32], isr: &[i32], log_end: i64, hw: i64) -> LeaderState {
    LeaderState::new(LeaderInit {
        local: 1,
        leader_epoch: 5,
        partition_epoch: 10,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader_log_end: log_end,
        high_watermark: hw,
        epoch_start_offset: 0,
        now_ms: T0,
        lag_time_max_ms: LAG,
        isr_retry_backoff_ms: RETRY,
    })
}

fn fetch(l: &mut LeaderState, follower: i32, offset: i64, now: i64) -> FetchOutcome {
    let leo = l.leader_log_end();
    l.on_follower_fetch(follower, offset, leo, now).unwrap()
}

fn change(isr: &[i32], partition_epoch: i32) -> IsrChange {
    IsrChange {
        new_isr: isr.to_vec(),
        leader_epoch: 5,
        partition_epoch,
    }
}

fn committed(isr: &[i32], partition_epoch: i32) -> IsrChangeResult {
    IsrChangeResult::Committed {
        leader_epoch: 5,
        isr: isr.to_vec(),
        partition_epoch,
    }
}

#[test]
fn the_high_watermark_is_the_least_log_end_over_the_isr() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    // Follower 3 hasn't fetched yet: its log end is unknown, so nothing is committed.
    assert_eq!(fetch(&mut l, 2, 60, T0), FetchOutcome::default());
    assert_eq!(l.high_watermark(), 0);
    assert!(fetch(&mut l, 3, 80, T0).hw_advanced);
    assert_eq!(l.high_watermark(), 60);
    assert!(fetch(&mut l, 2, 100, T0 + 1).hw_advanced);
    assert_eq!(l.high_watermark(), 80);
    // The leader's own log end counts too.
    assert!(fetch(&mut l, 3, 100, T0 + 2).hw_advanced);
    assert_eq!(l.high_watermark(), 100);
    assert!(!l.on_leader_append(150, T0 + 3));
    assert_eq!(l.high_watermark(), 100);
}

#[test]
fn the_high_watermark_never_moves_backward() {
    // The log's checkpointed high watermark is 50; the followers report less.
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 50);
    assert!(!fetch(&mut l, 2, 20, T0).hw_advanced);
    assert!(!fetch(&mut l, 3, 30, T0).hw_advanced);
    assert_eq!(l.high_watermark(), 50);
    // A high watermark above the log end is capped at it.
    let l = leader(&[1, 2], &[1, 2], 100, 400);
    assert_eq!(l.high_watermark(), 100);
}

#[test]
fn a_leader_alone_in_the_isr_commits_what_it_appends() {
    let mut l = leader(&[1, 2], &[1], 100, 40);
    assert_eq!(l.high_watermark(), 100);
    assert!(l.under_replicated());
    assert!(l.on_leader_append(130, T0));
    assert_eq!(l.high_watermark(), 130);
}

#[test]
fn a_stuck_follower_leaves_the_isr_after_the_lag_time() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    let _ = fetch(&mut l, 3, 40, T0);
    for t in (T0..=T0 + LAG).step_by(1000) {
        let _ = fetch(&mut l, 2, 100, t);
        // Follower 3 had the benefit of the doubt at T0 (it was in the ISR).
        assert_eq!(l.maybe_shrink(t), None, "at {t}");
    }
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    assert_eq!(l.maybe_shrink(t), Some(change(&[1, 2], 10)));
    assert_eq!(l.high_watermark(), 40);
    assert!(l.on_isr_change_result(committed(&[1, 2], 11), t));
    assert_eq!(l.isr(), &[1, 2]);
    assert_eq!(l.partition_epoch(), 11);
    assert_eq!(l.high_watermark(), 100);
}

/// Kafka's caught-up rule: a follower that keeps fetching gets, at each fetch, what the
/// leader had at its previous one, so it is never at the leader's log end while the leader
/// keeps appending, yet it is in sync.
#[test]
fn a_follower_fetching_steadily_behind_an_appending_leader_stays_in_the_isr() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
    let mut leo = 0;
    // What each follower got at its previous fetch.
    let (mut at2, mut at3) = (0, 0);
    for round in 1..=300 {
        let t = T0 + round * 400;
        leo += 10;
        let _ = l.on_leader_append(leo, t);
        let _ = fetch(&mut l, 2, at2, t);
        at2 = leo;
        // Follower 3 is slower: it fetches every third round.
        if round % 3 == 0 {
            let _ = fetch(&mut l, 3, at3, t);
            at3 = leo;
        }
        assert_eq!(l.maybe_shrink(t), None, "round {round}");
    }
    assert_eq!(l.isr(), &[1, 2, 3]);
    assert!(l.high_watermark() >= leo - 30);
}

#[test]
fn a_follower_falling_ever_further_behind_leaves() {
    let mut l = leader(&[1, 2], &[1, 2], 0, 0);
    let mut leo = 0;
    let mut shrunk_at = None;
    for round in 1..=100 {
        let t = T0 + round * 400;
        leo += 10;
        let _ = l.on_leader_append(leo, t);
        // It reaches only half of what the leader had: never where the leader was.
        let _ = fetch(&mut l, 2, leo / 2 - 1, t);
        if let Some(c) = l.maybe_shrink(t) {
            assert_eq!(c, change(&[1], 10));
            shrunk_at = Some(t);
            break;
        }
    }
    // Its last caught-up time is T0 (when this leader started): out after the lag time.
    assert_eq!(shrunk_at, Some(T0 + 26 * 400));
}

#[test]
fn a_caught_up_follower_joins_the_isr() {
    let mut l = leader(&[1, 2, 3], &[1, 2], 100, 0);
    assert!(fetch(&mut l, 2, 70, T0).hw_advanced);
    assert_eq!(l.high_watermark(), 70);
    // Below the high watermark: not yet.
    assert_eq!(fetch(&mut l, 3, 69, T0).propose, None);
    let out = fetch(&mut l, 3, 70, T0 + 1);
    assert_eq!(out.propose, Some(change(&[1, 2, 3], 10)));
    assert!(!l.on_isr_change_result(committed(&[1, 2, 3], 11), T0 + 2));
    assert_eq!(l.isr(), &[1, 2, 3]);
    assert!(!l.under_replicated());
}

#[test]
fn joining_needs_the_start_of_the_leader_epoch() {
    let mut l = LeaderState::new(LeaderInit {
        local: 1,
        leader_epoch: 5,
        partition_epoch: 10,
        replicas: vec![1, 2, 3],
        isr: vec![1, 2],
        leader_log_end: 100,
        high_watermark: 0,
        epoch_start_offset: 80,
        now_ms: T0,
        lag_time_max_ms: LAG,
        isr_retry_backoff_ms: RETRY,
    });
    let _ = fetch(&mut l, 2, 50, T0);
    assert_eq!(l.high_watermark(), 50);
    // Follower 3 has passed the high watermark (50) but not the epoch's start (80): it may
    // lack records this leader wrote that the ISR already acknowledged.
    assert_eq!(fetch(&mut l, 3, 60, T0).propose, None);
    assert_eq!(
        fetch(&mut l, 3, 80, T0).propose,
        Some(change(&[1, 2, 3], 10))
    );
}

#[test]
fn only_one_change_is_in_flight() {
    let mut l = leader(&[1, 2, 3, 4], &[1, 2, 3], 100, 0);
    let _ = fetch(&mut l, 2, 100, T0);
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    assert_eq!(l.maybe_shrink(t), Some(change(&[1, 2], 10)));
    // Follower 4 catches up meanwhile: no expansion while the shrink is out.
    assert_eq!(fetch(&mut l, 4, 100, t).propose, None);
    assert_eq!(l.maybe_shrink(t + 1), None);
    assert_eq!(l.pending_change(), Some(&change(&[1, 2], 10)));
    // Once it commits, the next fetch proposes the expansion, based on the new epoch.
    let _ = l.on_isr_change_result(committed(&[1, 2], 11), t + 2);
    assert_eq!(
        fetch(&mut l, 4, 100, t + 3).propose,
        Some(change(&[1, 2, 4], 11))
    );
}

#[test]
fn a_fenced_leader_stops_proposing_until_new_metadata() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    assert!(l.maybe_shrink(t).is_some());
    let _ = l.on_isr_change_result(
        IsrChangeResult::from_error_code(errors::INVALID_UPDATE_VERSION),
        t,
    );
    for later in [t + 1, t + RETRY * 10, t + LAG * 10] {
        assert_eq!(l.maybe_shrink(later), None);
        assert_eq!(fetch(&mut l, 2, 100, later).propose, None);
    }
    // Stale or same-epoch metadata changes nothing.
    assert!(!l.on_metadata(5, 10, vec![1, 2, 3], vec![1, 2, 3], t + 2));
    assert!(!l.on_metadata(4, 30, vec![1], vec![1, 2, 3], t + 2));
    assert!(l.pending_change().is_some());
    // The controller's newer state: follower 2 was dropped by someone else meanwhile.
    let now = t + LAG * 10 + 1;
    let _ = l.on_metadata(5, 12, vec![1, 3], vec![1, 2, 3], now);
    assert_eq!(l.isr(), &[1, 3]);
    assert_eq!(l.pending_change(), None);
    // Follower 3 still hasn't fetched and its lag is counted from its old state.
    assert_eq!(l.maybe_shrink(now), Some(change(&[1], 12)));
}

#[test]
fn an_unknown_outcome_is_sent_again_after_the_backoff() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    let proposed = l.maybe_shrink(t).unwrap();
    let code = kafka_protocol::error::ResponseError::NotController.code();
    assert_eq!(
        IsrChangeResult::from_error_code(code),
        IsrChangeResult::Retriable
    );
    assert_eq!(l.next_retry_at(), None, "sent, not yet answered");
    let _ = l.on_isr_change_result(IsrChangeResult::Retriable, t);
    assert_eq!(l.next_retry_at(), Some(t + RETRY));
    assert_eq!(l.maybe_shrink(t + RETRY - 1), None);
    assert_eq!(fetch(&mut l, 2, 100, t + RETRY - 1).propose, None);
    // A fetch or the ticker sends it again, once.
    assert_eq!(
        fetch(&mut l, 2, 100, t + RETRY).propose,
        Some(proposed.clone())
    );
    assert_eq!(l.maybe_shrink(t + RETRY), None);
    let _ = l.on_isr_change_result(IsrChangeResult::Retriable, t + RETRY);
    assert_eq!(l.maybe_shrink(t + 2 * RETRY), Some(proposed));
}

#[test]
fn a_change_the_controller_did_not_apply_is_proposed_again_later() {
    let mut l = leader(&[1, 2, 3], &[1, 2], 100, 0);
    let _ = fetch(&mut l, 2, 100, T0);
    assert!(fetch(&mut l, 3, 100, T0).propose.is_some());
    let refused = IsrChangeResult::from_error_code(errors::INELIGIBLE_REPLICA);
    assert_eq!(refused, IsrChangeResult::NotApplied);
    let _ = l.on_isr_change_result(refused, T0);
    assert_eq!(l.pending_change(), None);
    assert_eq!(l.isr(), &[1, 2]);
    assert_eq!(fetch(&mut l, 3, 100, T0 + RETRY - 1).propose, None);
    assert_eq!(
        fetch(&mut l, 3, 100, T0 + RETRY).propose,
        Some(change(&[1, 2, 3], 10))
    );
}

#[test]
fn a_member_being_added_counts_for_the_high_watermark_at_once() {
    let mut l = leader(&[1, 2, 3], &[1, 2], 100, 0);
    let _ = fetch(&mut l, 2, 70, T0);
    assert_eq!(
        fetch(&mut l, 3, 70, T0).propose,
        Some(change(&[1, 2, 3], 10))
    );
    assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
    // Follower 2 reaches the leader's end; the committed ISR alone would allow 100, but 3
    // may already be in the controller's ISR and could lead without offsets 70..100.
    assert!(!fetch(&mut l, 2, 100, T0 + 1).hw_advanced);
    assert_eq!(l.high_watermark(), 70);
    // The min.insync.replicas check uses the committed ISR only.
    assert!(!l.can_append(3));
    // The controller refused: 3 stops counting and the high watermark moves on.
    assert!(l.on_isr_change_result(IsrChangeResult::NotApplied, T0 + 2));
    assert_eq!(l.high_watermark(), 100);
}

#[test]
fn a_member_being_removed_counts_until_the_removal_commits() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 40, 0);
    let _ = fetch(&mut l, 3, 40, T0);
    let _ = l.on_leader_append(100, T0);
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    assert_eq!(l.maybe_shrink(t), Some(change(&[1, 2], 10)));
    assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
    assert_eq!(l.high_watermark(), 40);
    // Fenced: we don't know what the controller holds, so 3 still counts.
    let _ = l.on_isr_change_result(IsrChangeResult::Fenced, t);
    assert_eq!(l.high_watermark(), 40);
    // The metadata settles it.
    assert!(l.on_metadata(5, 11, vec![1, 2], vec![1, 2, 3], t + 1));
    assert_eq!(l.high_watermark(), 100);
}

#[test]
fn a_caught_up_follower_outside_the_isr_holds_the_high_watermark_so_it_can_rejoin() {
    let mut l = leader(&[1, 2], &[1], 100, 100);
    let _ = fetch(&mut l, 2, 50, T0);
    assert!(l.on_leader_append(110, T0 + 1));
    assert_eq!(l.high_watermark(), 110);
    // It fetches what the leader had at its last fetch: caught up as of then.
    assert_eq!(fetch(&mut l, 2, 100, T0 + 2).propose, None);
    // Now the high watermark waits for it instead of running ahead with every append.
    assert!(!l.on_leader_append(120, T0 + 3));
    assert_eq!(l.high_watermark(), 110);
    assert_eq!(
        fetch(&mut l, 2, 110, T0 + 4).propose,
        Some(change(&[1, 2], 10))
    );
    // A follower that stops fetching no longer holds it after the lag time.
    let mut l = leader(&[1, 2], &[1], 100, 100);
    let _ = fetch(&mut l, 2, 100, T0);
    let _ = l.on_isr_change_result(IsrChangeResult::NotApplied, T0);
    let _ = l.on_leader_append(200, T0 + 1);
    assert_eq!(l.high_watermark(), 100);
    assert!(!l.refresh_high_watermark(T0 + LAG));
    assert!(l.refresh_high_watermark(T0 + LAG + 1));
    assert_eq!(l.high_watermark(), 200);
}

#[test]
fn produce_waits_for_the_high_watermark_and_checks_the_isr_size() {
    let mut l = leader(&[1, 2, 3], &[1, 2], 100, 0);
    assert!(l.can_append(2));
    assert!(!l.can_append(3));
    assert!(l.can_append(-7));
    assert_eq!(l.produce_ready(100, 2), ProduceCheck::Wait);
    let _ = fetch(&mut l, 2, 100, T0);
    assert_eq!(l.produce_ready(100, 2), ProduceCheck::Ready);
    assert_eq!(l.produce_ready(101, 2), ProduceCheck::Wait);
    // The ISR shrank below min.insync.replicas while the produce waited.
    assert_eq!(
        l.produce_ready(100, 3),
        ProduceCheck::NotEnoughReplicasAfterAppend
    );
    assert_eq!(errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20);
}

#[test]
fn fetches_from_strangers_or_past_the_log_end_are_refused() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    let refused = |l: &mut LeaderState, id, offset| l.on_follower_fetch(id, offset, 100, T0);
    assert_eq!(
        refused(&mut l, 9, 10),
        Err(FetchRejected::NotLeaderOrFollower)
    );
    // The leader itself is not one of its followers.
    assert_eq!(
        refused(&mut l, 1, 10),
        Err(FetchRejected::NotLeaderOrFollower)
    );
    assert_eq!(
        refused(&mut l, 2, 101),
        Err(FetchRejected::OffsetOutOfRange)
    );
    assert_eq!(refused(&mut l, 2, -1), Err(FetchRejected::OffsetOutOfRange));
    assert_eq!(l.high_watermark(), 0);
    assert_eq!(FetchRejected::NotLeaderOrFollower.code(), 6);
    assert_eq!(FetchRejected::OffsetOutOfRange.code(), 1);
    assert_eq!(l.check_leader_epoch(5), Ok(()));
    assert_eq!(l.check_leader_epoch(-1), Ok(()));
    assert_eq!(
        l.check_leader_epoch(4),
        Err(FetchRejected::FencedLeaderEpoch)
    );
    assert_eq!(
        l.check_leader_epoch(6),
        Err(FetchRejected::UnknownLeaderEpoch)
    );
}

#[test]
fn stale_answers_are_ignored() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    // No proposal out.
    assert!(!l.on_isr_change_result(committed(&[1], 99), T0));
    assert_eq!(l.isr(), &[1, 2, 3]);
    let t = T0 + LAG + 1;
    let _ = fetch(&mut l, 2, 100, t);
    assert!(l.maybe_shrink(t).is_some());
    // About another leader epoch, or older than what we know.
    let other_epoch = IsrChangeResult::Committed {
        leader_epoch: 4,
        isr: vec![1, 2],
        partition_epoch: 11,
    };
    assert!(!l.on_isr_change_result(other_epoch, t));
    assert!(!l.on_isr_change_result(committed(&[1, 2], 9), t));
    assert_eq!(l.isr(), &[1, 2, 3]);
    assert!(l.pending_change().is_some());
}

#[test]
fn a_new_leader_epoch_resets_followers_and_keeps_their_progress() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    let _ = fetch(&mut l, 2, 100, T0);
    let _ = fetch(&mut l, 3, 100, T0);
    assert_eq!(l.high_watermark(), 100);
    // Reassigned: 3 leaves, 4 arrives (in the ISR by the controller's word).
    let t = T0 + 5 * LAG;
    let _ = l.on_metadata(6, 20, vec![1, 2, 4], vec![1, 2, 4], t);
    assert_eq!(l.leader_epoch(), 6);
    let views: Vec<FollowerView> = l.followers().collect();
    assert_eq!(
        views,
        vec![
            FollowerView {
                broker: 2,
                log_end: 100,
                last_caught_up_ms: Some(t)
            },
            FollowerView {
                broker: 4,
                log_end: -1,
                last_caught_up_ms: Some(t)
            },
        ]
    );
    // ISR members get a full lag time from the new epoch.
    assert_eq!(l.maybe_shrink(t + LAG), None);
    assert_eq!(
        l.maybe_shrink(t + LAG + 1),
        Some(IsrChange {
            new_isr: vec![1, 2],
            leader_epoch: 6,
            partition_epoch: 20,
        })
    );
}

/// A small deterministic generator (xorshift), so failures replay.
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

    fn broker(&mut self) -> i32 {
        [1, 2, 3, 4, -1, i32::MAX, i32::MIN][(self.next() % 7) as usize]
    }

    fn brokers(&mut self) -> Vec<i32> {
        (0..self.next() % 5).map(|_| self.broker()).collect()
    }
}

#[test]
fn any_input_keeps_the_invariants_and_never_panics() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut l = LeaderState::new(LeaderInit {
            local: rng.broker(),
            leader_epoch: rng.next() as i32,
            partition_epoch: rng.next() as i32,
            replicas: rng.brokers(),
            isr: rng.brokers(),
            leader_log_end: rng.offset(),
            high_watermark: rng.offset(),
            epoch_start_offset: rng.offset(),
            now_ms: rng.offset(),
            lag_time_max_ms: rng.offset(),
            isr_retry_backoff_ms: rng.offset(),
        });
        for _ in 0..200 {
            let hw = l.high_watermark();
            let now = rng.offset();
            match rng.next() % 8 {
                0 | 1 => {
                    let _ = l.on_follower_fetch(rng.broker(), rng.offset(), rng.offset(), now);
                }
                2 => {
                    let _ = l.on_leader_append(rng.offset(), now);
                }
                3 => {
                    let _ = l.maybe_shrink(now);
                }
                4 => {
                    let result = match rng.next() % 4 {
                        0 => IsrChangeResult::Committed {
                            leader_epoch: l.leader_epoch(),
                            isr: rng.brokers(),
                            partition_epoch: rng.next() as i32,
                        },
                        1 => IsrChangeResult::NotApplied,
                        2 => IsrChangeResult::Retriable,
                        _ => IsrChangeResult::Fenced,
                    };
                    let _ = l.on_isr_change_result(result, now);
                }
                5 => {
                    let (le, pe) = (rng.next() as i32, rng.next() as i32);
                    let _ = l.on_metadata(le, pe, rng.brokers(), rng.brokers(), now);
                }
                6 => {
                    let _ = l.produce_ready(rng.offset(), rng.next() as i32);
                    let _ = l.can_append(rng.next() as i32);
                    let _ = l.refresh_high_watermark(now);
                }
                _ => {
                    let _ = l.check_leader_epoch(rng.next() as i32);
                    let _ = l.followers().count();
                }
            }
            assert!(l.high_watermark() >= hw, "seed {seed}: backward");
            assert!(
                l.high_watermark() <= l.leader_log_end(),
                "seed {seed}: past the log end"
            );
        }
    }
}

#[test]
fn the_summary_counts_the_isr_and_the_furthest_follower() {
    let mut l = leader(&[1, 2, 3], &[1, 2, 3], 100, 0);
    // Nobody has fetched: no lag known.
    assert_eq!(
        l.summary(2),
        LeaderSummary {
            isr_len: 3,
            replicas_len: 3,
            min_insync: 2,
            max_follower_lag_messages: None,
        }
    );
    let _ = fetch(&mut l, 2, 60, T0);
    assert_eq!(l.summary(2).max_follower_lag_messages, Some(40));
    let _ = fetch(&mut l, 3, 90, T0);
    assert_eq!(l.summary(2).max_follower_lag_messages, Some(40));
    assert!(!l.on_leader_append(150, T0 + 1));
    assert_eq!(l.summary(2).max_follower_lag_messages, Some(90));
    assert!(!l.summary(2).under_replicated() && !l.summary(2).under_min_isr());

    // Follower 3 drops out: under-replicated, and under min.insync.replicas 3.
    let shrink = l.maybe_shrink(T0 + LAG + 10).expect("3 and 2 fell behind");
    let _ = l.on_isr_change_result(committed(&shrink.new_isr, 11), T0 + LAG + 11);
    let s = l.summary(3);
    assert_eq!((s.isr_len, s.replicas_len), (shrink.new_isr.len(), 3));
    assert!(s.under_replicated() && s.under_min_isr());
    assert!(!l.summary(1).under_min_isr());
}
