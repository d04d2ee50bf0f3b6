//! The active controller's decisions (Kafka's `QuorumController` with its cluster, replication,
//! producer-id and configuration managers), sans-IO: each operation reads the image and returns
//! a Kafka error code or the records to propose, with the answer to give once they commit.
//!
//! The driver proposes a [`Decision`]'s records as one raft entry, applies committed entries
//! through [`MetadataController::apply_batch`], and answers the request only when its entry
//! applied. An entry that was lost, or refused on apply because the image moved on since it was
//! derived, is answered with a retriable error: the broker asks again and the decision is
//! re-derived from the image. Nothing here trusts a proposal that has not committed.
//!
//! The only state beside the image is each broker's last heartbeat. It is not replicated: a new
//! controller starts every broker's session afresh, on first sight (Kafka does the same).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::codes;
use super::election;
use super::image::{ApplyError, BrokerRegistration, MetadataImage};
use super::records::*;
use crate::kafka::error_code as ec;

/// Ids per block handed to a broker by AllocateProducerIds (Kafka's 1000).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Kafka's `broker.session.timeout.ms`: an unfenced broker silent for longer is fenced.
    pub session_timeout: Duration,
    /// Kafka's `default.replication.factor`, used when a topic is created with -1.
    pub default_replication_factor: i16,
    /// Kafka's `num.partitions`, used when a topic is created with -1 partitions.
    pub default_partitions: i32,
    /// Kafka's `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// Kafka's `leader.imbalance.per.broker.percentage`: a broker not leading more than this
    /// share of the partitions it is the preferred replica of gets them back.
    pub leader_imbalance_per_broker_percentage: u32,
    /// Kafka's `unclean.leader.election.enable`, for topics that do not set it.
    pub unclean_leader_election: bool,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            session_timeout: Duration::from_millis(9000),
            default_replication_factor: 1,
            default_partitions: 1,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval: Duration::from_secs(300),
            leader_imbalance_per_broker_percentage: 10,
            unclean_leader_election: false,
        }
    }
}

/// Records to propose as one raft entry, and the answer to give once they have committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<T> {
    pub records: Vec<MetadataRecord>,
    pub reply: T,
}

/// A decision, or the Kafka error code to answer at once.
pub type Outcome<T> = Result<Decision<T>, i16>;

fn decide<T>(records: Vec<MetadataRecord>, reply: T) -> Outcome<T> {
    Ok(Decision { records, reply })
}

/// A BrokerRegistration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub broker_id: BrokerId,
    /// New for every start of the broker process.
    pub incarnation_id: [u8; 16],
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    /// The broker wants to stay (or become) fenced, e.g. while it catches up.
    pub want_fence: bool,
    pub want_shutdown: bool,
    /// The last metadata offset the broker has applied.
    pub current_metadata_offset: i64,
}

/// A BrokerHeartbeat answer: the broker's state once the decision's records have committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_fenced: bool,
    /// The broker has applied the metadata up to its own registration.
    pub is_caught_up: bool,
    pub should_shutdown: bool,
}

/// Producer ids `first..first + count`, for the broker that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub count: i64,
}

#[derive(Debug)]
pub struct MetadataController {
    pub(super) image: MetadataImage,
    pub(super) settings: ControllerSettings,
    /// Last heartbeat (or registration) per broker; absent means "not seen since this
    /// controller took over", which counts as a fresh session starting when first looked at.
    last_contact: BTreeMap<BrokerId, Instant>,
    /// When the next leader balance check is due (see `balance.rs`); `None` until the first
    /// tick. Not replicated either: a new controller waits a full interval.
    pub(super) next_balance_check: Option<Instant>,
}

impl MetadataController {
    /// Takes over with `image` (everything committed so far), as after an election.
    pub fn new(image: MetadataImage, settings: ControllerSettings) -> Self {
        MetadataController {
            image,
            settings,
            last_contact: BTreeMap::new(),
            next_balance_check: None,
        }
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn into_image(self) -> MetadataImage {
        self.image
    }

    /// Applies a committed raft entry (see [`MetadataImage::apply_batch`]).
    pub fn apply_batch(
        &mut self,
        offset: u64,
        records: &[MetadataRecord],
    ) -> Result<(), ApplyError> {
        self.image.apply_batch(offset, records)
    }

    /// The epoch to answer a registration with, once its records committed: `None` if the
    /// image does not hold this incarnation (the registration was lost or superseded).
    pub fn registered_epoch(&self, broker_id: BrokerId, incarnation_id: [u8; 16]) -> Option<i64> {
        self.image
            .broker(broker_id)
            .filter(|b| b.incarnation_id == incarnation_id)
            .map(|b| b.epoch)
    }

    fn session_expired(&mut self, broker: BrokerId, now: Instant) -> bool {
        let last = *self.last_contact.entry(broker).or_insert(now);
        now.saturating_duration_since(last) > self.settings.session_timeout
    }

    /// The controller's own link to `broker` (a voter) was refused at `at`: nothing listened
    /// at its controller listener, so its process is gone (a network partition times out
    /// rather than refuses). Its session ends now rather than after the session timeout,
    /// unless it has been heard from after that refusal (a heartbeat it sent before dying can
    /// be handled after the first refusal; a restarted broker is heard from): the next
    /// [`tick`](Self::tick) fences it and moves its leaderships, which is what makes failover
    /// take well under a second when a broker dies.
    pub fn peer_refused(&mut self, broker: BrokerId, at: Instant) {
        let Some(expired) =
            at.checked_sub(self.settings.session_timeout + Duration::from_millis(1))
        else {
            return;
        };
        match self.last_contact.get(&broker) {
            Some(&last) if last > at => {}
            _ => {
                self.last_contact.insert(broker, expired);
            }
        }
    }

    /// The registration a broker's request names, or the error to answer.
    fn registration(&self, id: BrokerId, epoch: i64) -> Result<&BrokerRegistration, i16> {
        let reg = self
            .image
            .broker(id)
            .ok_or(codes::BROKER_ID_NOT_REGISTERED)?;
        if reg.epoch != epoch {
            return Err(codes::STALE_BROKER_EPOCH);
        }
        Ok(reg)
    }

    /// Moves leadership and ISR membership off `broker`, then fences it.
    fn fence(&self, broker: &BrokerRegistration) -> Vec<MetadataRecord> {
        let mut records = election::moves_off(&self.image, broker.id);
        records.push(MetadataRecord::FenceBroker {
            broker_id: broker.id,
            epoch: broker.epoch,
        });
        records
    }

    /// BrokerRegistration. A broker starts fenced and is unfenced by a heartbeat once caught
    /// up. A new incarnation replaces the old one with a new epoch, unless the old one is
    /// unfenced and still heartbeating (two processes with one id: Kafka's
    /// DUPLICATE_BROKER_REGISTRATION); the same incarnation again is a retry and changes nothing.
    pub fn register_broker(&mut self, now: Instant, request: &Registration) -> Outcome<()> {
        if request.broker_id < 0 || request.listeners.is_empty() {
            return Err(ec::INVALID_REQUEST);
        }
        let mut records = Vec::new();
        if let Some(old) = self.image.broker(request.broker_id) {
            if old.incarnation_id == request.incarnation_id {
                self.last_contact.insert(request.broker_id, now);
                return decide(Vec::new(), ());
            }
            let old = old.clone();
            if !old.fenced && !self.session_expired(old.id, now) {
                return Err(codes::DUPLICATE_BROKER_REGISTRATION);
            }
            // The old process is gone and may have lost unflushed data: it leaves the ISRs as
            // if fenced, in the same entry.
            records = election::moves_off(&self.image, old.id);
        }
        records.push(MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: request.broker_id,
            incarnation_id: request.incarnation_id,
            epoch: EPOCH_FROM_OFFSET,
            listeners: request.listeners.clone(),
            rack: request.rack.clone(),
            fenced: true,
        }));
        self.last_contact.insert(request.broker_id, now);
        decide(records, ())
    }

    /// BrokerHeartbeat: keeps the session alive and moves the broker through Kafka's states
    /// (fenced -> unfenced once caught up; unfenced -> controlled shutdown when asked; shutdown
    /// -> fenced with `should_shutdown` once it leads nothing).
    pub fn heartbeat(&mut self, now: Instant, hb: &Heartbeat) -> Outcome<HeartbeatReply> {
        let reg = self.registration(hb.broker_id, hb.broker_epoch)?.clone();
        self.last_contact.insert(hb.broker_id, now);
        let is_caught_up = hb.current_metadata_offset >= reg.epoch;
        let reply = |is_fenced, should_shutdown| HeartbeatReply {
            is_fenced,
            is_caught_up,
            should_shutdown,
        };
        if reg.fenced {
            if hb.want_shutdown || reg.in_controlled_shutdown {
                return decide(Vec::new(), reply(true, true));
            }
            if hb.want_fence || !is_caught_up {
                return decide(Vec::new(), reply(true, false));
            }
            let mut records = election::elections_with(&self.image, reg.id);
            records.push(MetadataRecord::UnfenceBroker {
                broker_id: reg.id,
                epoch: reg.epoch,
            });
            return decide(records, reply(false, false));
        }
        if reg.in_controlled_shutdown {
            // Leadership moves re-derived on every heartbeat until the image shows them done.
            let moves = election::moves_off(&self.image, reg.id);
            if !moves.is_empty() {
                return decide(moves, reply(false, false));
            }
            return decide(self.fence(&reg), reply(true, true));
        }
        if hb.want_shutdown {
            let mut records = election::moves_off(&self.image, reg.id);
            records.push(MetadataRecord::BrokerShutdown {
                broker_id: reg.id,
                epoch: reg.epoch,
            });
            return decide(records, reply(false, false));
        }
        if hb.want_fence {
            return decide(self.fence(&reg), reply(true, false));
        }
        decide(Vec::new(), reply(false, false))
    }

    /// Periodic work, as one entry to propose (empty: nothing to do): fence every broker whose
    /// session expired, and make every leader and ISR agree with who is live, which also
    /// repairs what a lost proposal left behind. Brokers expiring together are fenced in one
    /// entry so that their moves are derived together: of an ISR that loses all its members
    /// at once, all stay (each holds everything committed), and whichever returns first leads.
    /// When there is none of that to do and a balance check is due, the preferred elections
    /// it calls for (never in the same entry as liveness changes: both could change one
    /// partition, and the entry would be refused; a due check waits for a quiet tick).
    pub fn tick(&mut self, now: Instant) -> Vec<MetadataRecord> {
        let image = &self.image;
        self.last_contact
            .retain(|id, _| image.broker(*id).is_some());
        let unfenced: Vec<BrokerRegistration> = self
            .image
            .brokers()
            .filter(|b| !b.fenced)
            .cloned()
            .collect();
        let expired: Vec<BrokerRegistration> = unfenced
            .into_iter()
            .filter(|b| self.session_expired(b.id, now))
            .collect();
        let image = &self.image;
        let mut records = election::rebalance(
            image,
            |b| image.is_live(b) && !expired.iter().any(|e| e.id == b),
            |_| true,
        );
        records.extend(expired.iter().map(|b| MetadataRecord::FenceBroker {
            broker_id: b.id,
            epoch: b.epoch,
        }));
        // One kind of change a tick: two changes of one partition in one entry would have the
        // second refused (it names the partition epoch the first one replaces).
        if records.is_empty() {
            records = self.unclean_elections();
        }
        if records.is_empty() {
            records = self.completed_reassignments();
        }
        if records.is_empty() && self.balance_due(now) {
            records = self.balance_leaders();
        }
        records
    }

    /// AllocateProducerIds: the next block. Valid once committed; if the entry is refused
    /// (another block committed first), the broker asks again.
    pub fn allocate_producer_ids(
        &self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Outcome<ProducerIdBlock> {
        self.registration(broker_id, broker_epoch)?;
        let first = self.image.next_producer_id();
        let next = first
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or(ec::UNKNOWN_SERVER_ERROR)?;
        let record = MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_block_start: next,
        };
        let block = ProducerIdBlock {
            first,
            count: PRODUCER_ID_BLOCK_SIZE,
        };
        decide(vec![record], block)
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
