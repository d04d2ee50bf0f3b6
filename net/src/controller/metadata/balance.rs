//! Automatic leader balancing (Kafka's `auto.leader.rebalance.enable` with
//! `leader.imbalance.per.broker.percentage`): after failovers the surviving brokers lead more
//! than placement gave them, and a broker that came back leads nothing. Every check interval
//! the controller counts, for each live broker, the partitions it is the preferred replica of
//! but does not lead; above the percentage, it elects it for those where it is a live ISR
//! member (the same election as a PREFERRED ElectLeaders, so never at the cost of data).

use std::time::Instant;

use super::controller::MetadataController;
use super::records::*;

impl MetadataController {
    /// Whether a balance check is due at `now`; the first one comes an interval after this
    /// controller took over, as Kafka schedules it. Marks the check done.
    pub(super) fn balance_due(&mut self, now: Instant) -> bool {
        if !self.settings.auto_leader_rebalance {
            return false;
        }
        let interval = self.settings.leader_imbalance_check_interval;
        match self.next_balance_check {
            Some(due) if now < due => false,
            Some(_) => {
                self.next_balance_check = Some(now + interval);
                true
            }
            None => {
                self.next_balance_check = Some(now + interval);
                false
            }
        }
    }

    /// The preferred elections the imbalance of each live broker calls for.
    pub(super) fn balance_leaders(&self) -> Vec<MetadataRecord> {
        let percentage = u64::from(self.settings.leader_imbalance_per_broker_percentage);
        let mut records = Vec::new();
        for broker in self.image.live_brokers() {
            let mut preferred = 0u64;
            let mut not_led = Vec::new();
            for topic in self.image.topics() {
                for (index, p) in (0i32..).zip(&topic.partitions) {
                    if p.replicas.first() != Some(&broker) {
                        continue;
                    }
                    preferred += 1;
                    if p.leader != broker {
                        not_led.push((topic.id, index, p));
                    }
                }
            }
            // Kafka's `imbalanceRatio > percentage / 100`, in integers.
            if (not_led.len() as u64) * 100 <= percentage * preferred {
                continue;
            }
            // Each partition has one preferred replica, so no partition is changed twice.
            records.extend(
                not_led
                    .into_iter()
                    .filter(|(_, _, p)| p.isr.contains(&broker))
                    .map(|(topic_id, partition, p)| {
                        MetadataRecord::PartitionChange(PartitionChange {
                            topic_id,
                            partition,
                            base_partition_epoch: p.partition_epoch,
                            leader: Some(broker),
                            isr: None,
                            replicas: None,
                            reassigning: None,
                        })
                    }),
            );
        }
        records
    }
}
