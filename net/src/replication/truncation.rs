//! Where a follower truncates its log once the leader said where an epoch ends: Kafka's rule
//! from `AbstractFetcherThread.getOffsetTruncationState` (KIP-101, refined by KIP-279).
//!
//! The follower asks the leader "where does epoch E end in your log?" with E its own latest
//! epoch (OffsetsForLeaderEpoch), or the leader volunteers it in a Fetch response (KIP-320's
//! diverging epoch). The leader answers with the largest epoch L <= E it has and the offset
//! where L ends in its log. Everything the follower holds past the point where the two logs
//! agree must go, since it was written by a leader whose records the current leader never had.

use super::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};

/// The follower's own leader-epoch history (its log's epoch cache), supplied by the wiring.
pub trait LocalEpochs {
    /// The largest epoch <= `epoch` this log holds records of, and the offset where that epoch
    /// ends here: the next epoch's start offset, or the log end for the latest epoch (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`). `None` when the log holds no epoch <= `epoch`.
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)>;
}

impl<F: Fn(i32) -> Option<(i32, i64)>> LocalEpochs for F {
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        self(epoch)
    }
}

/// What the follower does with the leader's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationPlan {
    /// Truncate to `to` (never above the log end) and start fetching there.
    Complete { to: i64 },
    /// The follower doesn't hold the leader's epoch L: truncate to where the follower's own
    /// last epoch before L ends, then ask again with that epoch (KIP-279: the logs may have
    /// diverged earlier than one question can tell, when leaders changed several times).
    AskAgain { to: i64 },
}

impl TruncationPlan {
    pub fn to(self) -> i64 {
        match self {
            TruncationPlan::Complete { to } | TruncationPlan::AskAgain { to } => to,
        }
    }
}

/// The answer made no sense (an epoch above the one asked, a negative offset): the caller
/// backs off and asks again rather than truncating on a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonsense;

/// Kafka's truncation rule.
///
/// - `asked`: the epoch the follower asked about (for a diverging epoch, the last fetched
///   epoch the Fetch carried); the leader's epoch can't be above it.
/// - `leader_epoch`, `leader_end`: the answer.
/// - `log_end`, `high_watermark`: the follower's log now.
pub fn plan(
    asked: i32,
    leader_epoch: i32,
    leader_end: i64,
    log_end: i64,
    high_watermark: i64,
    local: &impl LocalEpochs,
) -> Result<TruncationPlan, Nonsense> {
    let log_end = log_end.max(0);
    if leader_end == UNDEFINED_OFFSET {
        // The leader has no epoch at or below ours (its log starts later, or it predates
        // epochs). All the follower can trust is its high watermark: records below it were
        // committed by some leader. Kafka truncates to the high watermark here too.
        return Ok(TruncationPlan::Complete {
            to: high_watermark.clamp(0, log_end),
        });
    }
    if leader_end < 0 || leader_epoch < UNDEFINED_EPOCH || leader_epoch > asked {
        return Err(Nonsense);
    }
    if leader_epoch == UNDEFINED_EPOCH {
        // A leader without KIP-279 answers an end offset alone: trust it (KIP-101's rule).
        return Ok(TruncationPlan::Complete {
            to: leader_end.min(log_end),
        });
    }
    match local.end_offset_for(leader_epoch) {
        Some((epoch, end)) if epoch == leader_epoch => {
            // Both logs hold epoch L: they agree up to where the shorter one's L ends.
            Ok(TruncationPlan::Complete {
                to: end.min(leader_end).clamp(0, log_end),
            })
        }
        Some((epoch, end)) if epoch < leader_epoch => {
            // We never had L; our records from our last epoch before L are suspect past where
            // that epoch ends for us, and whether the leader agrees below takes another question.
            Ok(TruncationPlan::AskAgain {
                to: end.clamp(0, log_end),
            })
        }
        // No epoch at or below L here (the log predates epochs, or is new), or an epoch cache
        // that answers above the question (not to be trusted): the leader's end offset is the
        // best bound there is (Kafka's rule for the former).
        _ => Ok(TruncationPlan::Complete {
            to: leader_end.min(log_end),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log with epochs starting at the given offsets, ending at `log_end`.
    fn epochs(starts: &'static [(i32, i64)], log_end: i64) -> impl Fn(i32) -> Option<(i32, i64)> {
        move |asked| {
            let i = starts.iter().rposition(|&(e, _)| e <= asked)?;
            let end = starts.get(i + 1).map_or(log_end, |&(_, start)| start);
            Some((starts[i].0, end))
        }
    }

    #[test]
    fn same_epoch_truncates_to_the_shorter_end() {
        // We have epochs 1@0, 3@50, log end 80. Leader's epoch 3 ends at 70.
        let local = epochs(&[(1, 0), (3, 50)], 80);
        assert_eq!(
            plan(3, 3, 70, 80, 40, &local),
            Ok(TruncationPlan::Complete { to: 70 })
        );
        // The leader has more of epoch 3 than we do: nothing to cut.
        assert_eq!(
            plan(3, 3, 95, 80, 40, &local),
            Ok(TruncationPlan::Complete { to: 80 })
        );
    }

    #[test]
    fn an_older_leader_epoch_we_hold_bounds_by_both_ends() {
        // We asked about 3; the leader's largest epoch <= 3 is 1, ending at 45 (it never had 3).
        let local = epochs(&[(1, 0), (3, 50)], 80);
        assert_eq!(
            plan(3, 1, 45, 80, 40, &local),
            Ok(TruncationPlan::Complete { to: 45 })
        );
    }

    #[test]
    fn an_epoch_we_never_had_means_truncate_and_ask_again() {
        // We have 1@0, 4@60; the leader answers epoch 2 ending at 70. Our last epoch before 2
        // is 1, ending at 60: cut there and ask about epoch 1.
        let local = epochs(&[(1, 0), (4, 60)], 90);
        assert_eq!(
            plan(4, 2, 70, 90, 10, &local),
            Ok(TruncationPlan::AskAgain { to: 60 })
        );
    }

    #[test]
    fn undefined_answers() {
        let local = epochs(&[(1, 0)], 80);
        // No epoch at all on the leader: the high watermark.
        assert_eq!(
            plan(1, UNDEFINED_EPOCH, UNDEFINED_OFFSET, 80, 30, &local),
            Ok(TruncationPlan::Complete { to: 30 })
        );
        // A leader without epochs but with an end offset.
        assert_eq!(
            plan(1, UNDEFINED_EPOCH, 55, 80, 30, &local),
            Ok(TruncationPlan::Complete { to: 55 })
        );
        // We hold no epoch <= the leader's.
        let none = |_: i32| None;
        assert_eq!(
            plan(5, 2, 65, 80, 30, &none),
            Ok(TruncationPlan::Complete { to: 65 })
        );
    }

    #[test]
    fn nonsense_is_refused_not_obeyed() {
        let local = epochs(&[(1, 0)], 80);
        assert_eq!(plan(1, 7, 10, 80, 0, &local), Err(Nonsense));
        assert_eq!(plan(1, 1, -5, 80, 0, &local), Err(Nonsense));
        assert_eq!(plan(1, -3, 10, 80, 0, &local), Err(Nonsense));
    }
}
