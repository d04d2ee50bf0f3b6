//! Deterministic randomness and record generators shared by the tests.

use super::records::*;

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
    match rng.below(14) {
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
            })
        }
        7 | 13 => MetadataRecord::PartitionChange(PartitionChange {
            topic_id: small_topic_id(rng),
            partition: rng.below(4) as i32,
            base_partition_epoch: rng.below(4) as i32,
            leader: rng.bool().then(|| rng.below(6) as i32 - 1),
            isr: rng.bool().then(|| small_ids(rng, 3)),
            replicas: (rng.below(4) == 0).then(|| small_ids(rng, 4)),
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
        _ => MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch: epoch,
            next_block_start: 1000 * rng.below(10) as i64,
        },
    }
}
