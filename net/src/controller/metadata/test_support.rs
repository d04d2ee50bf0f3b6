//! Deterministic randomness and record generators shared by the tests.

use std::time::{Duration, Instant};

use super::records::*;
use super::{
    ApplyError, Assignment, ControllerSettings, Entropy, Heartbeat, HeartbeatReply,
    MetadataController, MetadataImage, NewTopic, Outcome, PartitionState, Registration,
};

/// xorshift64*: small, deterministic, good enough to shake out encodings and state machines.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A topic id drawn from a small set, so random records often refer to the same topics.
pub fn small_topic_id(rng: &mut Rng) -> TopicId {
    let mut id = [0u8; 16];
    id[15] = 1 + rng.below(3) as u8;
    id
}

/// Mostly none; sometimes replica sets that may or may not fit the partition (the image must
/// refuse the ones that don't).
fn arbitrary_reassigning(rng: &mut Rng) -> Reassigning {
    if rng.below(3) != 0 {
        return Reassigning::default();
    }
    Reassigning {
        adding: small_ids(rng, 2),
        removing: if rng.bool() {
            small_ids(rng, 2)
        } else {
            Vec::new()
        },
    }
}

fn small_ids(rng: &mut Rng, max_len: u64) -> Vec<BrokerId> {
    let len = 1 + rng.below(max_len);
    let mut ids: Vec<BrokerId> = Vec::new();
    for _ in 0..len {
        let id = rng.below(5) as BrokerId;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// A record over a small universe (5 brokers, 3 topic ids, 4 partitions) so that a random
/// sequence often applies; field values otherwise range widely to exercise the encoding.
pub fn arbitrary_record(rng: &mut Rng) -> MetadataRecord {
    let broker_id = rng.below(5) as BrokerId;
    let epoch = if rng.below(4) == 0 {
        EPOCH_FROM_OFFSET
    } else {
        rng.below(40) as i64
    };
    // Partitions and their changes twice as often: they need the most set-up to apply.
    match rng.below(15) {
        0 => MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id,
            incarnation_id: {
                let mut id = [0u8; 16];
                id[0] = rng.below(4) as u8;
                id
            },
            epoch,
            listeners: (0..rng.below(3))
                .map(|i| Listener {
                    name: format!("L{i}"),
                    host: "127.0.0.1".into(),
                    port: rng.next() as u16,
                })
                .collect(),
            rack: rng.bool().then(|| format!("rack-{}", rng.below(3))),
            fenced: rng.bool(),
        }),
        1 => MetadataRecord::UnregisterBroker { broker_id, epoch },
        2 => MetadataRecord::FenceBroker { broker_id, epoch },
        3 => MetadataRecord::UnfenceBroker { broker_id, epoch },
        4 => MetadataRecord::BrokerShutdown { broker_id, epoch },
        5 => MetadataRecord::Topic {
            name: format!("t{}", rng.below(4)),
            id: small_topic_id(rng),
        },
        6 | 11 | 12 => {
            let replicas = small_ids(rng, 3);
            let isr: Vec<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|_| rng.below(3) != 0)
                .collect();
            let isr = if isr.is_empty() {
                vec![replicas[0]]
            } else {
                isr
            };
            let leader = if rng.below(5) == 0 { NO_LEADER } else { isr[0] };
            MetadataRecord::Partition(PartitionRecord {
                topic_id: small_topic_id(rng),
                // Mostly the first partitions: they must be added in order.
                partition: {
                    let bound = 2 + rng.below(3);
                    rng.below(bound) as i32
                },
                replicas,
                isr,
                leader,
                leader_epoch: rng.below(3) as i32,
                partition_epoch: rng.below(3) as i32,
                reassigning: if rng.below(8) == 0 {
                    arbitrary_reassigning(rng)
                } else {
                    Reassigning::default()
                },
            })
        }
        7 | 13 => MetadataRecord::PartitionChange(PartitionChange {
            topic_id: small_topic_id(rng),
            partition: rng.below(4) as i32,
            base_partition_epoch: rng.below(4) as i32,
            leader: rng.bool().then(|| rng.below(6) as i32 - 1),
            isr: rng.bool().then(|| small_ids(rng, 3)),
            replicas: (rng.below(4) == 0).then(|| small_ids(rng, 4)),
            reassigning: (rng.below(4) == 0).then(|| arbitrary_reassigning(rng)),
        }),
        8 => MetadataRecord::RemoveTopic {
            id: small_topic_id(rng),
        },
        9 => MetadataRecord::Config {
            resource: match rng.below(3) {
                0 => ConfigResource::Cluster,
                1 => ConfigResource::Broker(broker_id),
                _ => ConfigResource::Topic(format!("t{}", rng.below(4))),
            },
            name: format!("c{}", rng.below(3)),
            value: rng.bool().then(|| format!("v{}", rng.next())),
        },
        14 => MetadataRecord::ClusterId {
            id: [rng.below(2) as u8; 16],
        },
        _ => MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch: epoch,
            next_block_start: 1000 * rng.below(10) as i64,
        },
    }
}

/// A controller and the raft log it proposes to, reduced to a counter: `commit` applies a
/// decision's records as the next entry, as the driver does once raft commits them.
#[derive(Debug)]
pub struct Harness {
    pub controller: MetadataController,
    pub offset: u64,
    pub t0: Instant,
}

pub const SESSION_MS: u64 = 9000;

impl Harness {
    pub fn new() -> Self {
        Self::with(ControllerSettings::default())
    }

    pub fn with(settings: ControllerSettings) -> Self {
        Harness {
            controller: MetadataController::new(MetadataImage::new(), settings),
            offset: 0,
            t0: Instant::now(),
        }
    }

    /// `ms` milliseconds after the start.
    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub fn image(&self) -> &MetadataImage {
        self.controller.image()
    }

    pub fn commit(&mut self, records: &[MetadataRecord]) -> Result<(), ApplyError> {
        self.offset += 1;
        self.controller.apply_batch(self.offset, records)
    }

    /// Commits a decision that must apply, and returns its answer.
    pub fn commit_ok<T>(&mut self, outcome: Outcome<T>) -> T {
        let decision = outcome.expect("the controller refused");
        self.commit(&decision.records)
            .expect("the records did not apply");
        decision.reply
    }

    pub fn registration(id: BrokerId, incarnation: u8) -> Registration {
        Registration {
            broker_id: id,
            incarnation_id: [incarnation; 16],
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
            }],
            rack: None,
        }
    }

    /// Registers incarnation `incarnation` of broker `id` at `ms`; returns its epoch.
    pub fn register(&mut self, ms: u64, id: BrokerId, incarnation: u8) -> i64 {
        let now = self.at(ms);
        let request = Self::registration(id, incarnation);
        let outcome = self.controller.register_broker(now, &request);
        self.commit_ok(outcome);
        self.controller
            .registered_epoch(id, [incarnation; 16])
            .expect("registered")
    }

    pub fn epoch(&self, id: BrokerId) -> i64 {
        self.image().broker(id).expect("registered").epoch
    }

    pub fn beat(&self, id: BrokerId) -> Heartbeat {
        Heartbeat {
            broker_id: id,
            broker_epoch: self.epoch(id),
            want_fence: false,
            want_shutdown: false,
            current_metadata_offset: self.offset as i64,
        }
    }

    /// A caught-up heartbeat from `id` at `ms`, committed; returns the answer.
    pub fn heartbeat(&mut self, ms: u64, id: BrokerId) -> HeartbeatReply {
        let now = self.at(ms);
        let hb = self.beat(id);
        let outcome = self.controller.heartbeat(now, &hb);
        self.commit_ok(outcome)
    }

    /// Brokers `1..=n` registered and unfenced at time 0.
    pub fn cluster(n: i32) -> Self {
        Self::cluster_with(n, ControllerSettings::default())
    }

    pub fn cluster_with(n: i32, settings: ControllerSettings) -> Self {
        let mut h = Self::with(settings);
        for id in 1..=n {
            h.register(0, id, 1);
            assert!(!h.heartbeat(0, id).is_fenced);
        }
        h
    }

    /// Heartbeats from every unfenced broker but `silent` at `ms`.
    pub fn heartbeats_except(&mut self, ms: u64, silent: &[BrokerId]) {
        let ids: Vec<BrokerId> = self
            .image()
            .brokers()
            .filter(|b| !b.fenced && !silent.contains(&b.id))
            .map(|b| b.id)
            .collect();
        for id in ids {
            self.heartbeat(ms, id);
        }
    }

    /// Ticks at `ms` and commits what it proposes; returns how many records that was.
    pub fn tick(&mut self, ms: u64) -> usize {
        let records = self.controller.tick(self.at(ms));
        if !records.is_empty() {
            self.commit(&records).expect("tick records apply");
        }
        records.len()
    }

    pub fn create(&mut self, name: &str, partitions: i32, rf: i16, seed: u64) -> TopicId {
        let topic = NewTopic {
            name: name.into(),
            assignment: Assignment::Auto {
                partitions,
                replication_factor: rf,
            },
            configs: Vec::new(),
        };
        let entropy = Entropy {
            topic_id: topic_id(name),
            placement_seed: seed,
        };
        self.commit_ok(self.controller.create_topic(&topic, entropy))
    }

    pub fn create_manual(&mut self, name: &str, assignment: &[&[BrokerId]]) -> TopicId {
        let topic = NewTopic {
            name: name.into(),
            assignment: Assignment::Manual(assignment.iter().map(|r| r.to_vec()).collect()),
            configs: Vec::new(),
        };
        let entropy = Entropy {
            topic_id: topic_id(name),
            placement_seed: 0,
        };
        self.commit_ok(self.controller.create_topic(&topic, entropy))
    }

    pub fn partition(&self, name: &str, partition: i32) -> PartitionState {
        let id = self.image().topic(name).expect("topic").id;
        self.image()
            .partition(&id, partition)
            .expect("partition")
            .clone()
    }
}

/// A topic id derived from the name (distinct for distinct short names).
pub fn topic_id(name: &str) -> TopicId {
    let mut id = [0x5a; 16];
    for (slot, b) in id.iter_mut().zip(name.bytes()) {
        *slot = b;
    }
    id
}
