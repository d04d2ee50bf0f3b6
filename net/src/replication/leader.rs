//! A partition's leader-side replica tracking: followers' progress, the ISR, the high
//! watermark (Kafka's `Partition` and `Replica` on the leader).
//!
//! Follower fetches tell the leader how far each follower's log reaches (a follower fetches
//! from its log end, so the fetch offset *is* its log end). From that:
//!
//! - **Caught up.** A follower is caught up at a fetch whose offset reaches the leader's log
//!   end at that moment. Under steady produce it never quite does, so Kafka also counts a
//!   fetch reaching the leader's log end *as of the follower's previous fetch*: then it was
//!   caught up at that previous fetch's time. A follower that fetches in a loop therefore
//!   stays caught up however fast the leader appends, and one that stops, or falls behind by
//!   more than a fetch, doesn't.
//! - **Shrink.** An ISR member not caught up for `replica.lag.time.max.ms` leaves the ISR.
//! - **Expand.** A follower outside the ISR joins once its log end reaches the high watermark
//!   and the start of the current leader epoch (so it holds every record this leader wrote
//!   that the ISR may already have acknowledged).
//! - **High watermark.** The least log end over the ISR, the leader's own included; it never
//!   moves backward. While a change is in flight it is computed over the *maximal* ISR, the
//!   committed ISR plus the members being added (KIP-497), because the controller may commit
//!   the change before we hear of it:
//!   - a member being added counts at once: once committed, it can be elected leader, so the
//!     high watermark must not pass records it lacks (it was caught up to the high watermark
//!     to be proposed, so counting it holds nothing back for long);
//!   - a member being removed keeps counting until the removal commits: until then it is in
//!     the controller's ISR and may be elected.
//!
//!   The ISR size that min.insync.replicas is checked against is the committed one only,
//!   the cautious side of the same uncertainty.
//!   Like Kafka, a follower outside the ISR that is caught up (by the rule above) also holds
//!   the high watermark: otherwise, with the leader alone in the ISR and produce never
//!   pausing, the high watermark would run ahead of every follower fetch and none could
//!   reach it to rejoin.
//! - **One change at a time** (Kafka's PendingExpandIsr / PendingShrinkIsr): while a
//!   proposal awaits its answer, no other is made.

use super::errors;
use super::BrokerId;

/// What a leader starts from (Kafka's `Partition.makeLeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInit {
    /// This broker.
    pub local: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// The log's end offset.
    pub leader_log_end: i64,
    /// The log's high watermark (from its checkpoint, or as the previous role left it).
    pub high_watermark: i64,
    /// Where this leader epoch starts in the log (the log end when the epoch began).
    pub epoch_start_offset: i64,
    pub now_ms: i64,
    /// `replica.lag.time.max.ms`.
    pub lag_time_max_ms: i64,
    /// How long to wait before re-sending a proposal whose answer was lost or said "retry".
    pub isr_retry_backoff_ms: i64,
}

/// A proposed ISR: what an AlterPartition request carries for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub new_isr: Vec<BrokerId>,
    /// The leader epoch and partition epoch the proposal is based on: the controller refuses
    /// one based on stale state.
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// The controller's answer to an [`IsrChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrChangeResult {
    /// The partition as it now is (the AlterPartition response's partition).
    Committed {
        leader_epoch: i32,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
    },
    /// The controller says it did not apply the change (OPERATION_NOT_ATTEMPTED,
    /// INELIGIBLE_REPLICA, INVALID_REQUEST): back to the committed ISR; propose again later.
    NotApplied,
    /// The outcome is unknown (timeout, NOT_CONTROLLER, a lost connection): it may have been
    /// applied, so the proposal stays in force (and counts for the high watermark) and is sent
    /// again after a backoff.
    Retriable,
    /// This leader's view is stale (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, an unknown
    /// partition): no proposals until new metadata arrives. The proposal still counts for the
    /// high watermark, since we can't know what the controller holds.
    Fenced,
}

impl IsrChangeResult {
    /// The result an AlterPartition error code means (partition-level or request-level).
    pub fn from_error_code(code: i16) -> IsrChangeResult {
        match code {
            errors::OPERATION_NOT_ATTEMPTED
            | errors::INELIGIBLE_REPLICA
            | errors::INVALID_REQUEST => IsrChangeResult::NotApplied,
            errors::FENCED_LEADER_EPOCH
            | errors::INVALID_UPDATE_VERSION
            | errors::UNKNOWN_TOPIC_OR_PARTITION
            | errors::UNKNOWN_TOPIC_ID => IsrChangeResult::Fenced,
            _ => IsrChangeResult::Retriable,
        }
    }
}

/// Why a follower's fetch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRejected {
    /// The fetching broker is not a follower of this partition.
    NotLeaderOrFollower,
    /// The fetch offset is past the leader's log end (or negative).
    OffsetOutOfRange,
    /// The fetch carries an older leader epoch than ours.
    FencedLeaderEpoch,
    /// The fetch carries a newer leader epoch than ours (we haven't seen that metadata yet).
    UnknownLeaderEpoch,
}

impl FetchRejected {
    pub fn code(self) -> i16 {
        match self {
            FetchRejected::NotLeaderOrFollower => errors::NOT_LEADER_OR_FOLLOWER,
            FetchRejected::OffsetOutOfRange => errors::OFFSET_OUT_OF_RANGE,
            FetchRejected::FencedLeaderEpoch => errors::FENCED_LEADER_EPOCH,
            FetchRejected::UnknownLeaderEpoch => errors::UNKNOWN_LEADER_EPOCH,
        }
    }
}

/// What a follower's fetch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct FetchOutcome {
    /// The high watermark moved: write it to the log and complete waiters up to it.
    pub hw_advanced: bool,
    /// An ISR change to send to the controller.
    pub propose: Option<IsrChange>,
}

/// Where an acks=all produce stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceCheck {
    /// Replicated to the ISR.
    Ready,
    /// Replicated to the ISR, but the ISR shrank below min.insync.replicas meanwhile.
    NotEnoughReplicasAfterAppend,
    Wait,
}

/// A led partition's replication at a glance, for `/metrics` (see [`LeaderState::summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSummary {
    /// Members of the committed ISR, this broker included.
    pub isr_len: usize,
    pub replicas_len: usize,
    /// The topic's `min.insync.replicas`.
    pub min_insync: i32,
    /// The most messages any follower is behind the leader's log end (`None`: no follower
    /// has fetched since this broker became leader, or there are none).
    pub max_follower_lag_messages: Option<i64>,
}

impl LeaderSummary {
    /// Fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions).
    pub fn under_replicated(&self) -> bool {
        self.isr_len < self.replicas_len
    }

    /// Fewer in-sync replicas than `min.insync.replicas`: acks=all produces are refused
    /// (Kafka's UnderMinIsrPartitionCount).
    pub fn under_min_isr(&self) -> bool {
        i64::try_from(self.isr_len).unwrap_or(i64::MAX) < i64::from(self.min_insync)
    }
}

/// A follower's progress as the leader sees it (for metrics and describe APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerView {
    pub broker: BrokerId,
    /// -1 until its first fetch to this leader.
    pub log_end: i64,
    /// When it was last caught up; `None` if never under this leader.
    pub last_caught_up_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Follower {
    id: BrokerId,
    log_end: i64,
    /// The leader's log end at this follower's previous fetch (Kafka's
    /// `lastFetchLeaderLogEndOffset`), and that fetch's time.
    last_fetch_leader_log_end: i64,
    last_fetch_ms: Option<i64>,
    last_caught_up_ms: Option<i64>,
}

impl Follower {
    fn new(id: BrokerId, in_isr: bool, now_ms: i64) -> Follower {
        Follower {
            id,
            log_end: -1,
            last_fetch_leader_log_end: -1,
            last_fetch_ms: None,
            // Kafka's `resetReplicaState`: ISR members get the benefit of the doubt (a full lag
            // time to show up); others have never been caught up with this leader.
            last_caught_up_ms: in_isr.then_some(now_ms),
        }
    }

    fn view(&self) -> FollowerView {
        FollowerView {
            broker: self.id,
            log_end: self.log_end,
            last_caught_up_ms: self.last_caught_up_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProposalState {
    /// Sent; awaiting the answer.
    Sent,
    /// The answer was "unknown": send again at this time.
    RetryAt(i64),
    /// The controller fenced us: wait for metadata.
    Fenced,
}

#[derive(Debug, Clone)]
struct Proposal {
    change: IsrChange,
    state: ProposalState,
}

/// One partition's leader-side state. See the module doc for the rules.
#[derive(Debug, Clone)]
pub struct LeaderState {
    local: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    /// The committed ISR.
    isr: Vec<BrokerId>,
    followers: Vec<Follower>,
    leader_log_end: i64,
    high_watermark: i64,
    epoch_start_offset: i64,
    lag_time_max_ms: i64,
    retry_backoff_ms: i64,
    proposal: Option<Proposal>,
    /// After a change the controller refused, no new proposal before this time (otherwise
    /// the next fetch would propose the same refused change at once).
    quiet_until_ms: Option<i64>,
}

impl LeaderState {
    pub fn new(init: LeaderInit) -> LeaderState {
        let replicas = distinct(&init.replicas);
        let isr = distinct(&init.isr);
        let followers = replicas
            .iter()
            .filter(|&&r| r != init.local)
            .map(|&r| Follower::new(r, isr.contains(&r), init.now_ms))
            .collect();
        let mut state = LeaderState {
            local: init.local,
            leader_epoch: init.leader_epoch,
            partition_epoch: init.partition_epoch,
            replicas,
            isr,
            followers,
            leader_log_end: init.leader_log_end,
            // Never above the log end: a high watermark past the data would expose nothing
            // real and hold nothing back.
            high_watermark: init.high_watermark.min(init.leader_log_end),
            epoch_start_offset: init.epoch_start_offset,
            lag_time_max_ms: init.lag_time_max_ms.max(0),
            retry_backoff_ms: init.isr_retry_backoff_ms.max(0),
            proposal: None,
            quiet_until_ms: None,
        };
        // With the leader alone in the ISR, everything in its log is committed already.
        state.recompute_high_watermark(init.now_ms);
        state
    }

    /// Checks the leader epoch a follower's (or consumer's) Fetch carries. -1 means the
    /// client sent none (old versions): no check.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), FetchRejected> {
        if current_leader_epoch == super::UNDEFINED_EPOCH {
            Ok(())
        } else if current_leader_epoch < self.leader_epoch {
            Err(FetchRejected::FencedLeaderEpoch)
        } else if current_leader_epoch > self.leader_epoch {
            Err(FetchRejected::UnknownLeaderEpoch)
        } else {
            Ok(())
        }
    }

    /// A follower fetched from `fetch_offset` (its log end) when the leader's log ended at
    /// `leader_log_end` (Kafka's `Replica.updateFetchState`, then `maybeExpandIsr` and
    /// `maybeIncrementLeaderHW`). Call it after the read succeeded.
    pub fn on_follower_fetch(
        &mut self,
        follower: BrokerId,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) -> Result<FetchOutcome, FetchRejected> {
        // A leader's log never shrinks; an older value is a stale read of it.
        self.leader_log_end = self.leader_log_end.max(leader_log_end);
        let leader_log_end = self.leader_log_end;
        let Some(f) = self.followers.iter_mut().find(|f| f.id == follower) else {
            return Err(FetchRejected::NotLeaderOrFollower);
        };
        // An offset past our log end is a diverged follower: it must truncate, and its
        // claimed progress must not count toward the high watermark.
        if fetch_offset < 0 || fetch_offset > leader_log_end {
            return Err(FetchRejected::OffsetOutOfRange);
        }
        let caught_up_at = if fetch_offset >= leader_log_end {
            Some(now_ms)
        } else if fetch_offset >= f.last_fetch_leader_log_end {
            f.last_fetch_ms
        } else {
            None
        };
        if let Some(at) = caught_up_at {
            f.last_caught_up_ms = Some(f.last_caught_up_ms.map_or(at, |prev| prev.max(at)));
        }
        f.log_end = fetch_offset;
        f.last_fetch_leader_log_end = f.last_fetch_leader_log_end.max(leader_log_end);
        f.last_fetch_ms = Some(now_ms);

        let propose = self.maybe_expand(follower, now_ms);
        let hw_advanced = self.recompute_high_watermark(now_ms);
        Ok(FetchOutcome {
            hw_advanced,
            propose,
        })
    }

    /// The leader appended to its log; returns whether the high watermark advanced (it does
    /// when the leader is alone in the ISR).
    pub fn on_leader_append(&mut self, leader_log_end: i64, now_ms: i64) -> bool {
        self.leader_log_end = self.leader_log_end.max(leader_log_end);
        self.recompute_high_watermark(now_ms)
    }

    /// The ISR members that have not been caught up for the lag time leave (Kafka's
    /// `getOutOfSyncReplicas`), or a proposal due for a retry is sent again. Call it from a
    /// ticker, with [`LeaderState::refresh_high_watermark`].
    pub fn maybe_shrink(&mut self, now_ms: i64) -> Option<IsrChange> {
        if let Some(change) = self.retry_due(now_ms) {
            return Some(change);
        }
        if !self.may_propose(now_ms) {
            return None;
        }
        let new_isr: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|&id| id == self.local || self.follower_caught_up(id, now_ms))
            .collect();
        // An ISR is never empty (the leader is in it; a malformed one without it stays as is).
        if new_isr.len() == self.isr.len() || new_isr.is_empty() {
            return None;
        }
        Some(self.propose(new_isr))
    }

    /// Recomputes the high watermark as time passes: a caught-up follower outside the ISR
    /// stops holding it back once it has not been caught up for the lag time.
    pub fn refresh_high_watermark(&mut self, now_ms: i64) -> bool {
        self.recompute_high_watermark(now_ms)
    }

    /// The controller's answer to the proposal in flight. Returns whether the high watermark
    /// advanced.
    pub fn on_isr_change_result(&mut self, result: IsrChangeResult, now_ms: i64) -> bool {
        let Some(proposal) = self.proposal.as_mut() else {
            // Nothing asked (metadata already settled it): a late answer.
            return false;
        };
        match result {
            IsrChangeResult::Committed {
                leader_epoch,
                isr,
                partition_epoch,
            } => {
                // An answer about another epoch, or older than what we know, is stale; the
                // metadata will bring the truth.
                if leader_epoch != self.leader_epoch || partition_epoch < self.partition_epoch {
                    return false;
                }
                self.isr = distinct(&isr);
                self.partition_epoch = partition_epoch;
                self.proposal = None;
            }
            IsrChangeResult::NotApplied => {
                self.proposal = None;
                self.quiet_until_ms = Some(now_ms.saturating_add(self.retry_backoff_ms));
            }
            IsrChangeResult::Retriable => {
                proposal.state =
                    ProposalState::RetryAt(now_ms.saturating_add(self.retry_backoff_ms));
            }
            IsrChangeResult::Fenced => proposal.state = ProposalState::Fenced,
        }
        // A committed shrink, or an expansion that didn't happen, may free the high watermark.
        self.recompute_high_watermark(now_ms)
    }

    /// The partition as the metadata (the controller's image) now has it, while this broker
    /// still leads it. Older or same-epoch metadata is ignored. A newer one replaces the ISR
    /// and replicas and ends any proposal (the metadata is the truth, whatever the answer
    /// would have been). Returns whether the high watermark advanced.
    pub fn on_metadata(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
        replicas: Vec<BrokerId>,
        now_ms: i64,
    ) -> bool {
        let newer = leader_epoch > self.leader_epoch
            || (leader_epoch == self.leader_epoch && partition_epoch > self.partition_epoch);
        if !newer {
            return false;
        }
        let new_leader_epoch = leader_epoch > self.leader_epoch;
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
        self.isr = distinct(&isr);
        self.replicas = distinct(&replicas);
        if new_leader_epoch {
            // A new epoch of ours starts at our log end now.
            self.epoch_start_offset = self.leader_log_end;
        }
        let mut followers = Vec::with_capacity(self.replicas.len());
        for &id in self.replicas.iter().filter(|&&r| r != self.local) {
            let in_isr = self.isr.contains(&id);
            let f = match self.followers.iter().find(|f| f.id == id) {
                Some(old) if new_leader_epoch => Follower {
                    // Kafka's `resetReplicaState` for a leader that stays leader.
                    last_fetch_leader_log_end: self.leader_log_end,
                    last_fetch_ms: Some(now_ms),
                    last_caught_up_ms: in_isr.then_some(now_ms),
                    ..old.clone()
                },
                Some(old) => old.clone(),
                None => Follower::new(id, in_isr, now_ms),
            };
            followers.push(f);
        }
        self.followers = followers;
        self.proposal = None;
        self.quiet_until_ms = None;
        self.recompute_high_watermark(now_ms)
    }

    /// Whether an acks=all produce that appended up to `required_offset` (the offset after
    /// its last record) is done (Kafka's `checkEnoughReplicasReachOffset`).
    pub fn produce_ready(&self, required_offset: i64, min_insync: i32) -> ProduceCheck {
        if self.high_watermark < required_offset {
            ProduceCheck::Wait
        } else if self.isr_size() < i64::from(min_insync) {
            ProduceCheck::NotEnoughReplicasAfterAppend
        } else {
            ProduceCheck::Ready
        }
    }

    /// Whether an acks=all produce may append: the committed ISR has at least
    /// `min_insync` members (otherwise it gets NOT_ENOUGH_REPLICAS without appending).
    pub fn can_append(&self, min_insync: i32) -> bool {
        self.isr_size() >= i64::from(min_insync)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn leader_log_end(&self) -> i64 {
        self.leader_log_end
    }

    /// The ISR change awaiting the controller, if any.
    pub fn pending_change(&self) -> Option<&IsrChange> {
        self.proposal.as_ref().map(|p| &p.change)
    }

    /// The ISR the high watermark is computed over: the committed one plus any member a
    /// pending change adds.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.proposal {
            for &id in &p.change.new_isr {
                if !isr.contains(&id) {
                    isr.push(id);
                }
            }
        }
        isr
    }

    /// Fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions).
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    pub fn followers(&self) -> impl Iterator<Item = FollowerView> + '_ {
        self.followers.iter().map(Follower::view)
    }

    /// The committed ISR's and the replicas' sizes, and how far the furthest follower is
    /// behind (leader log end minus its log end; followers that have not fetched from this
    /// leader yet are left out: their log end is unknown).
    pub fn summary(&self, min_insync: i32) -> LeaderSummary {
        LeaderSummary {
            isr_len: self.isr.len(),
            replicas_len: self.replicas.len(),
            min_insync,
            max_follower_lag_messages: self
                .followers
                .iter()
                .filter(|f| f.log_end >= 0)
                .map(|f| self.leader_log_end.saturating_sub(f.log_end).max(0))
                .max(),
        }
    }

    fn isr_size(&self) -> i64 {
        i64::try_from(self.isr.len()).unwrap_or(i64::MAX)
    }

    fn may_propose(&self, now_ms: i64) -> bool {
        self.proposal.is_none() && self.quiet_until_ms.is_none_or(|until| now_ms >= until)
    }

    /// The pending proposal again, if its retry time has come.
    /// When the proposal in flight, its outcome unknown, is due to be sent again: the
    /// wiring wakes then and calls [`LeaderState::maybe_shrink`].
    pub fn next_retry_at(&self) -> Option<i64> {
        match self.proposal.as_ref()?.state {
            ProposalState::RetryAt(at) => Some(at),
            _ => None,
        }
    }

    fn retry_due(&mut self, now_ms: i64) -> Option<IsrChange> {
        let proposal = self.proposal.as_mut()?;
        match proposal.state {
            ProposalState::RetryAt(at) if now_ms >= at => {
                proposal.state = ProposalState::Sent;
                Some(proposal.change.clone())
            }
            _ => None,
        }
    }

    /// Kafka's `maybeExpandIsr`, for the follower that just fetched.
    fn maybe_expand(&mut self, follower: BrokerId, now_ms: i64) -> Option<IsrChange> {
        if let Some(change) = self.retry_due(now_ms) {
            return Some(change);
        }
        if !self.may_propose(now_ms) || self.isr.contains(&follower) {
            return None;
        }
        let log_end = self.followers.iter().find(|f| f.id == follower)?.log_end;
        if log_end < self.high_watermark || log_end < self.epoch_start_offset {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(follower);
        Some(self.propose(new_isr))
    }

    fn propose(&mut self, new_isr: Vec<BrokerId>) -> IsrChange {
        let change = IsrChange {
            new_isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        };
        self.proposal = Some(Proposal {
            change: change.clone(),
            state: ProposalState::Sent,
        });
        change
    }

    /// Kafka's `Replica.isCaughtUp`: at the leader's log end, or caught up within the lag
    /// time. A broker with no follower state (a malformed ISR) never is.
    fn follower_caught_up(&self, id: BrokerId, now_ms: i64) -> bool {
        self.followers
            .iter()
            .find(|f| f.id == id)
            .is_some_and(|f| self.caught_up(f, now_ms))
    }

    fn caught_up(&self, f: &Follower, now_ms: i64) -> bool {
        f.log_end == self.leader_log_end
            || f.last_caught_up_ms
                .is_some_and(|at| now_ms.saturating_sub(at) <= self.lag_time_max_ms)
    }

    /// Kafka's `maybeIncrementLeaderHW`; see the module doc for which followers count.
    fn recompute_high_watermark(&mut self, now_ms: i64) -> bool {
        let maximal = self.maximal_isr();
        let mut candidate = self.leader_log_end;
        for f in &self.followers {
            let counts = maximal.contains(&f.id) || self.caught_up(f, now_ms);
            if counts && f.log_end < candidate {
                candidate = f.log_end;
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }
}

/// The ids in their first-seen order, without repeats (network data may repeat them).
fn distinct(ids: &[BrokerId]) -> Vec<BrokerId> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
