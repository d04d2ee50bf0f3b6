//! A follower partition's fetch state: Kafka's `AbstractFetcherThread` state for one
//! partition, with KIP-101/279 truncation before fetching and KIP-320 divergence on fetch.
//!
//! The cycle: `Truncating` (ask the leader where our latest epoch ends, truncate what it
//! lacks) → `Fetching` from our log end, round after round → back to `Truncating` when the
//! leader changes. Errors make the partition wait (`Delayed`, `replica.fetch.backoff.ms`) and
//! retry what failed; a fenced epoch makes it `Idle` until the metadata names a leader.
//!
//! The wiring asks [`FollowerState::next_action`] what to send or do, does it, and reports
//! the outcome. Each request action carries the leader epoch it was made under; answers are
//! reported with it, and answers to an older epoch's requests are ignored. While a request
//! or a truncation is out, `next_action` has nothing more, so many partitions can be driven
//! together (one request per leader broker gathering every partition's action).

use super::errors::LeaderError;
use super::truncation::{self, LocalEpochs, TruncationPlan};
use super::BrokerId;

/// What the wiring does next for this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerAction {
    /// Ask the leader (OffsetsForLeaderEpoch) where `epoch` ends in its log.
    AskEpochEndOffset {
        epoch: i32,
        current_leader_epoch: i32,
    },
    /// Fetch from `offset`. `last_fetched_epoch` is the Fetch v12+ field (KIP-320): the
    /// epoch of the last record we hold, so the leader can report a divergence.
    Fetch {
        offset: i64,
        current_leader_epoch: i32,
        last_fetched_epoch: Option<i32>,
    },
    /// Ask the leader (ListOffsets, earliest and latest) for its log start and end, after
    /// OFFSET_OUT_OF_RANGE.
    ListLeaderOffsets { current_leader_epoch: i32 },
    /// Truncate the local log to `to` (no-op above its end), then report `on_truncated`.
    Truncate { to: i64 },
    /// Empty the local log and restart it at `offset` (the leader's log start is past our
    /// whole log), then report `on_truncated`.
    TruncateFullyAndStartAt { offset: i64 },
}

/// What follows a truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTruncation {
    Fetch,
    /// Ask the leader again with our new latest epoch, which must be below `asked`.
    AskAgain {
        asked: i32,
    },
}

/// A truncation to hand out or in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    To { to: i64, then: AfterTruncation },
    Fully { offset: i64 },
}

/// What a delayed partition does when its backoff ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Truncating,
    Fetching { offset: i64 },
    ResolvingOutOfRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerPhase {
    /// Must find where the log diverges from the leader's before fetching.
    Truncating,
    AwaitingEpochEnd {
        epoch: i32,
    },
    /// A truncation for `next_action` to hand out.
    MustTruncate(Truncation),
    AwaitingTruncation(Truncation),
    Fetching {
        offset: i64,
    },
    AwaitingFetch {
        offset: i64,
    },
    /// OFFSET_OUT_OF_RANGE: must learn the leader's log start and end.
    ResolvingOutOfRange,
    AwaitingLeaderOffsets,
    /// Backing off after an error.
    Delayed {
        until_ms: i64,
        then: Resume,
    },
    /// Fenced: waits for [`FollowerState::on_new_leader`].
    Idle,
}

impl From<Resume> for FollowerPhase {
    fn from(resume: Resume) -> FollowerPhase {
        match resume {
            Resume::Truncating => FollowerPhase::Truncating,
            Resume::Fetching { offset } => FollowerPhase::Fetching { offset },
            Resume::ResolvingOutOfRange => FollowerPhase::ResolvingOutOfRange,
        }
    }
}

/// How soon a follower asks again a leader that has not taken its leadership yet
/// ([`LeaderError::LeaderBehind`]), and how many times before the full backoff applies. The
/// leader applies the same metadata as the follower, usually within a millisecond or two; a
/// full `replica.fetch.backoff.ms` there would hold acks=all writes on the new leader
/// (waiting for this follower) for that long after every failover.
const LEADER_BEHIND_RETRY_MS: i64 = 2;
const LEADER_BEHIND_RETRIES: u8 = 10;

#[derive(Debug, Clone)]
pub struct FollowerState {
    leader: BrokerId,
    leader_epoch: i32,
    log_end: i64,
    high_watermark: i64,
    latest_local_epoch: Option<i32>,
    backoff_ms: i64,
    /// Quick retries left for a leader that is behind (reset by each new leader).
    leader_behind_retries: u8,
    phase: FollowerPhase,
}

impl FollowerState {
    /// A follower of `leader` at `leader_epoch`, whose log ends at `log_end` with the given
    /// high watermark and latest epoch (`None`: the log holds no epoch, e.g. it is empty).
    /// `backoff_ms` is `replica.fetch.backoff.ms`.
    pub fn new(
        leader: BrokerId,
        leader_epoch: i32,
        log_end: i64,
        high_watermark: i64,
        latest_local_epoch: Option<i32>,
        backoff_ms: i64,
    ) -> FollowerState {
        // A log end is never negative; clamping here keeps every fetch offset valid.
        let log_end = log_end.max(0);
        FollowerState {
            leader,
            leader_epoch,
            log_end,
            high_watermark: high_watermark.min(log_end),
            latest_local_epoch,
            backoff_ms: backoff_ms.max(0),
            leader_behind_retries: LEADER_BEHIND_RETRIES,
            phase: FollowerPhase::Truncating,
        }
    }

    /// What to do now, if anything. Handing out a request or truncation marks it as out.
    pub fn next_action(&mut self, now_ms: i64) -> Option<FollowerAction> {
        // A few steps at most: a finished delay becomes the phase it resumes, and a
        // truncation with nothing to cut becomes a fetch.
        for _ in 0..4 {
            match self.phase {
                FollowerPhase::Delayed { until_ms, then } => {
                    if now_ms < until_ms {
                        return None;
                    }
                    self.phase = then.into();
                }
                FollowerPhase::Truncating => {
                    let Some(epoch) = self.latest_local_epoch else {
                        // No epochs to ask about: keep only what is below the high
                        // watermark, which some leader committed (Kafka's choice for logs
                        // without epochs; usually an empty log, so nothing is cut).
                        let to = self.high_watermark.clamp(0, self.log_end.max(0));
                        self.plan_truncation(Truncation::To {
                            to,
                            then: AfterTruncation::Fetch,
                        });
                        continue;
                    };
                    self.phase = FollowerPhase::AwaitingEpochEnd { epoch };
                    return Some(FollowerAction::AskEpochEndOffset {
                        epoch,
                        current_leader_epoch: self.leader_epoch,
                    });
                }
                FollowerPhase::MustTruncate(t) => {
                    self.phase = FollowerPhase::AwaitingTruncation(t);
                    return Some(match t {
                        Truncation::To { to, .. } => FollowerAction::Truncate { to },
                        Truncation::Fully { offset } => {
                            FollowerAction::TruncateFullyAndStartAt { offset }
                        }
                    });
                }
                FollowerPhase::Fetching { offset } => {
                    self.phase = FollowerPhase::AwaitingFetch { offset };
                    return Some(FollowerAction::Fetch {
                        offset,
                        current_leader_epoch: self.leader_epoch,
                        last_fetched_epoch: self.latest_local_epoch,
                    });
                }
                FollowerPhase::ResolvingOutOfRange => {
                    self.phase = FollowerPhase::AwaitingLeaderOffsets;
                    return Some(FollowerAction::ListLeaderOffsets {
                        current_leader_epoch: self.leader_epoch,
                    });
                }
                FollowerPhase::AwaitingEpochEnd { .. }
                | FollowerPhase::AwaitingTruncation(_)
                | FollowerPhase::AwaitingFetch { .. }
                | FollowerPhase::AwaitingLeaderOffsets
                | FollowerPhase::Idle => return None,
            }
        }
        None
    }

    /// When a backing-off partition wants `next_action` called again.
    pub fn next_wakeup(&self) -> Option<i64> {
        match self.phase {
            FollowerPhase::Delayed { until_ms, .. } => Some(until_ms),
            _ => None,
        }
    }

    /// Whether a Fetch answer made under `for_leader_epoch` is awaited: the wiring checks
    /// this before appending the records it brought.
    pub fn expects_fetch_response(&self, for_leader_epoch: i32) -> bool {
        for_leader_epoch == self.leader_epoch
            && matches!(self.phase, FollowerPhase::AwaitingFetch { .. })
    }

    /// The leader's OffsetsForLeaderEpoch answer: its largest epoch <= the one asked and
    /// where that epoch ends in its log.
    pub fn on_epoch_end_offset(
        &mut self,
        for_leader_epoch: i32,
        leader_epoch: i32,
        end_offset: i64,
        local: &impl LocalEpochs,
        now_ms: i64,
    ) {
        if for_leader_epoch != self.leader_epoch {
            return;
        }
        let FollowerPhase::AwaitingEpochEnd { epoch: asked } = self.phase else {
            return;
        };
        self.apply_plan(
            asked,
            leader_epoch,
            end_offset,
            local,
            now_ms,
            Resume::Truncating,
        );
    }

    /// A Fetch answer reported a diverging epoch (KIP-320, Fetch v12+): the leader's largest
    /// epoch <= our last fetched epoch and where it ends. Truncate by the same rule; nothing
    /// was appended.
    pub fn on_diverging_epoch(
        &mut self,
        for_leader_epoch: i32,
        leader_epoch: i32,
        end_offset: i64,
        local: &impl LocalEpochs,
        now_ms: i64,
    ) {
        if !self.expects_fetch_response(for_leader_epoch) {
            return;
        }
        let FollowerPhase::AwaitingFetch { offset } = self.phase else {
            return;
        };
        // We sent our latest epoch; without one the leader had nothing to compare with.
        let asked = self.latest_local_epoch.unwrap_or(i32::MAX);
        let resume = Resume::Fetching { offset };
        self.apply_plan(asked, leader_epoch, end_offset, local, now_ms, resume);
    }

    /// The wiring appended a Fetch answer's records (possibly none): the log now ends at
    /// `new_log_end` with `latest_local_epoch` its last epoch, and the leader's high
    /// watermark was `leader_high_watermark`. Returns the local high watermark to set on the
    /// log (the leader's, capped at our log end), or `None` for an answer not awaited.
    pub fn on_appended(
        &mut self,
        for_leader_epoch: i32,
        new_log_end: i64,
        leader_high_watermark: i64,
        latest_local_epoch: Option<i32>,
    ) -> Option<i64> {
        let awaited = self.expects_fetch_response(for_leader_epoch);
        let new_log_end = new_log_end.max(0);
        // The log changed whatever we expected: keep track of it.
        self.log_end = new_log_end;
        self.latest_local_epoch = latest_local_epoch;
        self.high_watermark = self.high_watermark.min(new_log_end);
        if !awaited {
            return None;
        }
        // Kafka's follower takes the leader's high watermark as it comes (a new leader's may
        // be lower than the old one's for a while); -1 means the leader sent none.
        if leader_high_watermark >= 0 {
            self.high_watermark = leader_high_watermark.min(new_log_end);
        }
        self.phase = FollowerPhase::Fetching {
            offset: new_log_end,
        };
        Some(self.high_watermark)
    }

    /// The leader answered the request in flight with an error code (partition level).
    pub fn on_error(&mut self, for_leader_epoch: i32, code: i16, now_ms: i64) {
        if for_leader_epoch != self.leader_epoch {
            return;
        }
        let Some(resume) = self.in_flight() else {
            return;
        };
        match (LeaderError::from_code(code), resume) {
            (LeaderError::OutOfRange, Resume::Fetching { .. }) => {
                self.phase = FollowerPhase::ResolvingOutOfRange;
            }
            (LeaderError::Fenced, _) => self.phase = FollowerPhase::Idle,
            (LeaderError::LeaderBehind, _) if self.leader_behind_retries > 0 => {
                self.leader_behind_retries -= 1;
                self.phase = FollowerPhase::Delayed {
                    until_ms: now_ms.saturating_add(LEADER_BEHIND_RETRY_MS.min(self.backoff_ms)),
                    then: resume,
                };
            }
            _ => self.back_off(resume, now_ms),
        }
    }

    /// The request in flight got no answer (connection lost, timed out): retry after the
    /// backoff.
    pub fn on_request_failed(&mut self, for_leader_epoch: i32, now_ms: i64) {
        if for_leader_epoch != self.leader_epoch {
            return;
        }
        if let Some(resume) = self.in_flight() {
            self.back_off(resume, now_ms);
        }
    }

    /// The request in flight was given up unanswered so that the link could ask for more
    /// (a partition joined it): ask again at once, without backing off.
    pub fn on_request_abandoned(&mut self, for_leader_epoch: i32) {
        if for_leader_epoch != self.leader_epoch {
            return;
        }
        if let Some(resume) = self.in_flight() {
            self.phase = resume.into();
        }
    }

    /// The leader's log start and end, after OFFSET_OUT_OF_RANGE (Kafka's
    /// `fetchOffsetAndTruncate`).
    pub fn on_leader_offsets(
        &mut self,
        for_leader_epoch: i32,
        leader_log_start: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) {
        if for_leader_epoch != self.leader_epoch
            || self.phase != FollowerPhase::AwaitingLeaderOffsets
        {
            return;
        }
        if leader_log_start < 0 || leader_log_end < leader_log_start {
            self.back_off(Resume::ResolvingOutOfRange, now_ms);
            return;
        }
        if leader_log_end < self.log_end {
            // Our log is longer than the leader's: what the leader lacks goes (an unclean
            // election, or a truncation the epochs could not tell us about).
            self.plan_truncation(Truncation::To {
                to: leader_log_end,
                then: AfterTruncation::Fetch,
            });
        } else if leader_log_start > self.log_end {
            // The leader deleted everything we have yet to fetch: start over at its start.
            self.plan_truncation(Truncation::Fully {
                offset: leader_log_start,
            });
        } else {
            // In range after all (the leader's log moved between the fetch and the question).
            self.phase = FollowerPhase::Fetching {
                offset: self.log_end,
            };
        }
    }

    /// The wiring truncated the log: it now ends at `new_log_end`, with `latest_local_epoch`
    /// its last epoch.
    pub fn on_truncated(&mut self, new_log_end: i64, latest_local_epoch: Option<i32>) {
        let new_log_end = new_log_end.max(0);
        self.log_end = new_log_end;
        self.latest_local_epoch = latest_local_epoch;
        let FollowerPhase::AwaitingTruncation(t) = self.phase else {
            // A new leader came meanwhile: its phase stands, with the log as it now is.
            self.high_watermark = self.high_watermark.min(new_log_end);
            return;
        };
        self.phase = match t {
            Truncation::Fully { .. } => {
                // An emptied log's high watermark is its new start.
                self.high_watermark = new_log_end;
                FollowerPhase::Fetching {
                    offset: new_log_end,
                }
            }
            Truncation::To { then, .. } => {
                self.high_watermark = self.high_watermark.min(new_log_end);
                match (then, latest_local_epoch) {
                    // Each question must be about an older epoch than the last, so the
                    // exchange ends; if the log's epochs say otherwise, fetch and let the
                    // leader's divergence check (KIP-320) catch what is left.
                    (AfterTruncation::AskAgain { asked }, Some(e)) if e < asked => {
                        FollowerPhase::Truncating
                    }
                    (AfterTruncation::AskAgain { .. }, None) => FollowerPhase::Truncating,
                    _ => FollowerPhase::Fetching {
                        offset: new_log_end,
                    },
                }
            }
        };
    }

    /// The metadata names the partition's leader: a newer epoch (or another leader at the
    /// same epoch) restarts from truncation. Returns whether it was taken.
    pub fn on_new_leader(&mut self, leader: BrokerId, leader_epoch: i32) -> bool {
        let newer = leader_epoch > self.leader_epoch
            || (leader_epoch == self.leader_epoch && leader != self.leader);
        if !newer {
            return false;
        }
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        self.leader_behind_retries = LEADER_BEHIND_RETRIES;
        self.phase = FollowerPhase::Truncating;
        true
    }

    pub fn phase(&self) -> FollowerPhase {
        self.phase
    }

    pub fn leader(&self) -> BrokerId {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn log_end(&self) -> i64 {
        self.log_end
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The request out now, as the phase to go back to if it fails.
    /// The wiring could not carry out the truncation it was handed (a storage error): the
    /// partition backs off, then finds where its log diverges again.
    pub fn on_truncation_failed(&mut self, now_ms: i64) {
        if matches!(self.phase, FollowerPhase::AwaitingTruncation(_)) {
            self.back_off(Resume::Truncating, now_ms);
        }
    }

    fn in_flight(&self) -> Option<Resume> {
        match self.phase {
            FollowerPhase::AwaitingEpochEnd { .. } => Some(Resume::Truncating),
            FollowerPhase::AwaitingFetch { offset } => Some(Resume::Fetching { offset }),
            FollowerPhase::AwaitingLeaderOffsets => Some(Resume::ResolvingOutOfRange),
            _ => None,
        }
    }

    fn back_off(&mut self, then: Resume, now_ms: i64) {
        self.phase = FollowerPhase::Delayed {
            until_ms: now_ms.saturating_add(self.backoff_ms),
            then,
        };
    }

    fn apply_plan(
        &mut self,
        asked: i32,
        leader_epoch: i32,
        end_offset: i64,
        local: &impl LocalEpochs,
        now_ms: i64,
        on_nonsense: Resume,
    ) {
        let planned = truncation::plan(
            asked,
            leader_epoch,
            end_offset,
            self.log_end,
            self.high_watermark,
            local,
        );
        match planned {
            Ok(TruncationPlan::Complete { to }) => self.plan_truncation(Truncation::To {
                to,
                then: AfterTruncation::Fetch,
            }),
            Ok(TruncationPlan::AskAgain { to }) => self.plan_truncation(Truncation::To {
                to,
                then: AfterTruncation::AskAgain { asked },
            }),
            Err(truncation::Nonsense) => self.back_off(on_nonsense, now_ms),
        }
    }

    /// Hands a truncation to the wiring, or skips it when it would cut nothing.
    fn plan_truncation(&mut self, t: Truncation) {
        self.phase = match t {
            Truncation::To { to, .. } if to >= self.log_end => {
                // Nothing to cut. Asking again would ask the same question (our epochs are
                // unchanged), so fetch either way.
                FollowerPhase::Fetching {
                    offset: self.log_end,
                }
            }
            _ => FollowerPhase::MustTruncate(t),
        };
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
