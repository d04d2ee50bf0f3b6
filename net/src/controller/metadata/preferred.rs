//! ElectLeaders: elections a client asks for (Kafka's `ReplicationControlManager
//! .electLeaders`), decided per partition on the image.
//!
//! - PREFERRED moves leadership back to the first replica (the one placement chose to spread
//!   leaders evenly), but only to a live ISR member: it never costs acknowledged data.
//! - UNCLEAN repairs a leaderless partition: an ISR member that is live if there is one (what
//!   the periodic tick would do anyway), else the first live replica even though it is out of
//!   sync, whose log becomes the truth (its ISR is just itself). Asking for it is the explicit
//!   consent Kafka otherwise takes from `unclean.leader.election.enable`.
//!
//! The tick makes the same unclean election on its own for topics with
//! `unclean.leader.election.enable=true`.
//!
//! Every partition is touched at most once per decision: two changes on the same partition
//! epoch would make the whole entry refused on apply.

use std::collections::BTreeSet;

use super::codes;
use super::controller::{Decision, MetadataController, Outcome};
use super::election;
use super::image::PartitionState;
use super::records::*;
use crate::kafka::error_code as ec;

/// The election types of ElectLeaders (Kafka's `ElectionType`).
pub const PREFERRED: i8 = 0;
pub const UNCLEAN: i8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            PREFERRED => Some(ElectionType::Preferred),
            UNCLEAN => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// An ElectLeaders request.
#[derive(Debug, Clone)]
pub struct ElectLeaders {
    /// As on the wire: an unknown type is refused with INVALID_REQUEST.
    pub election_type: i8,
    /// (topic, partitions) to elect; `None` means every partition of every topic.
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
}

/// Per topic, in the order the request names them, each partition's error code (`NONE`: its
/// new leader is committed). For a request naming no partitions, only the partitions where an
/// election was needed are listed (as Kafka does).
pub type ElectLeadersReply = Vec<(String, Vec<(i32, i16)>)>;

impl MetadataController {
    pub fn elect_leaders(&self, request: &ElectLeaders) -> Outcome<ElectLeadersReply> {
        let election = ElectionType::from_code(request.election_type).ok_or(ec::INVALID_REQUEST)?;
        let mut records = Vec::new();
        let mut reply: ElectLeadersReply = Vec::new();
        match &request.partitions {
            None => {
                for topic in self.image.topics() {
                    let mut results = Vec::new();
                    for (index, p) in (0i32..).zip(&topic.partitions) {
                        match self.elect_leader(&topic.id, index, p, election) {
                            Ok(change) => {
                                records.push(change);
                                results.push((index, ec::NONE));
                            }
                            Err(codes::ELECTION_NOT_NEEDED) => {}
                            Err(code) => results.push((index, code)),
                        }
                    }
                    if !results.is_empty() {
                        reply.push((topic.name.clone(), results));
                    }
                }
            }
            Some(wanted) => {
                let mut seen = BTreeSet::new();
                for (name, partitions) in wanted {
                    let at = match reply.iter().position(|(n, _)| n == name) {
                        Some(at) => at,
                        None => {
                            reply.push((name.clone(), Vec::new()));
                            reply.len() - 1
                        }
                    };
                    let topic = self.image.topic(name);
                    for &index in partitions {
                        // A partition named twice is answered once.
                        if !seen.insert((name.as_str(), index)) {
                            continue;
                        }
                        let state =
                            topic.and_then(|t| Some((t, self.image.partition(&t.id, index)?)));
                        let code = match state {
                            None => ec::UNKNOWN_TOPIC_OR_PARTITION,
                            Some((t, p)) => match self.elect_leader(&t.id, index, p, election) {
                                Ok(change) => {
                                    records.push(change);
                                    ec::NONE
                                }
                                Err(code) => code,
                            },
                        };
                        reply[at].1.push((index, code));
                    }
                }
            }
        }
        Ok(Decision { records, reply })
    }

    /// The change electing a leader of one partition, or why there is none to make.
    fn elect_leader(
        &self,
        topic_id: &TopicId,
        partition: i32,
        p: &PartitionState,
        election: ElectionType,
    ) -> Result<MetadataRecord, i16> {
        let live = |b: BrokerId| self.image.is_live(b);
        let (leader, isr) = match election {
            ElectionType::Preferred => {
                let preferred = preferred_leader(p)?;
                if !live(preferred) || !p.isr.contains(&preferred) {
                    return Err(codes::PREFERRED_LEADER_NOT_AVAILABLE);
                }
                (preferred, p.isr.clone())
            }
            ElectionType::Unclean => {
                if p.leader != NO_LEADER && live(p.leader) {
                    return Err(codes::ELECTION_NOT_NEEDED);
                }
                match election::target(p, &live) {
                    (NO_LEADER, _) => {
                        // A replica a reassignment is still adding has copied the least:
                        // the others first.
                        let adding = &p.reassigning.adding;
                        let first_live = p
                            .replicas
                            .iter()
                            .copied()
                            .filter(|r| !adding.contains(r))
                            .chain(adding.iter().copied())
                            .find(|&r| live(r))
                            .ok_or(codes::ELIGIBLE_LEADERS_NOT_AVAILABLE)?;
                        (first_live, vec![first_live])
                    }
                    clean => clean,
                }
            }
        };
        Ok(MetadataRecord::PartitionChange(PartitionChange {
            topic_id: *topic_id,
            partition,
            base_partition_epoch: p.partition_epoch,
            leader: (leader != p.leader).then_some(leader),
            isr: (isr != p.isr).then_some(isr),
            replicas: None,
            reassigning: None,
        }))
    }
}

/// The topic config that consents to unclean elections, as Kafka names it.
const UNCLEAN_ENABLE: &str = "unclean.leader.election.enable";

impl MetadataController {
    /// Unclean elections of the leaderless partitions whose topic allows them
    /// (`unclean.leader.election.enable`: the topic's config, else the cluster-wide one in the
    /// metadata, else the controller's setting): the first live replica leads with its log as
    /// the truth, as Kafka's controller does for them on its own. Run by the tick.
    pub(super) fn unclean_elections(&self) -> Vec<MetadataRecord> {
        let cluster_default = self
            .image
            .configs(&ConfigResource::Cluster)
            .and_then(|c| c.get(UNCLEAN_ENABLE))
            .map_or(self.settings.unclean_leader_election, |v| {
                v.eq_ignore_ascii_case("true")
            });
        let mut records = Vec::new();
        for topic in self.image.topics() {
            let allowed = self
                .image
                .configs(&ConfigResource::Topic(topic.name.clone()))
                .and_then(|c| c.get(UNCLEAN_ENABLE))
                .map_or(cluster_default, |v| v.eq_ignore_ascii_case("true"));
            if !allowed {
                continue;
            }
            for (partition, p) in (0i32..).zip(&topic.partitions) {
                if p.leader != NO_LEADER {
                    continue;
                }
                if let Ok(record) =
                    self.elect_leader(&topic.id, partition, p, ElectionType::Unclean)
                {
                    records.push(record);
                }
            }
        }
        records
    }
}

/// The partition's preferred replica (its first), or ELECTION_NOT_NEEDED when it already
/// leads.
fn preferred_leader(p: &PartitionState) -> Result<BrokerId, i16> {
    let preferred = *p
        .replicas
        .first()
        .ok_or(codes::PREFERRED_LEADER_NOT_AVAILABLE)?;
    if p.leader == preferred {
        return Err(codes::ELECTION_NOT_NEEDED);
    }
    Ok(preferred)
}

#[cfg(test)]
#[path = "preferred_tests.rs"]
mod tests;
