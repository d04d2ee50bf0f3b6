//! Keeps this broker's topic registry (and so its partition logs and request routing) in step
//! with the topics of the metadata image this node applies.
//!
//! [`derive`] is the decision, sans I/O: from the registry and an image, the registry the
//! image calls for. [`follow`] runs it on shard 0 whenever the node applies something (and
//! now and then besides) and installs the result through the same save-and-broadcast path as
//! every other topic change.
//!
//! Data is only ever removed on the word of an image that is caught up: one at least as new as
//! the image the registry was last derived from ([`Topics::metadata_offset`]) and as the
//! commit index found on disk at start. A restarted node replays its metadata log from a
//! snapshot; the images along the way lack topics made since, and can name a topic's deleted
//! predecessor, so following them would delete live data. Until the image catches up the
//! registry stays as it was saved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_engine::rt;

use super::source::MetadataSource;
use crate::controller::metadata::{
    BrokerId, ConfigResource, MetadataImage, PartitionState, TopicImage, NO_LEADER,
};
use crate::partitions::shard;
use crate::partitions::topics::{
    invalid_topic_name, ControllerTopic, Here, PartitionPlacement, TopicMeta, Topics,
};

/// How often the registry is compared with the image even when the metadata reports nothing
/// (a failed install is retried then).
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// A partition waiting for its shard while the registry is derived; `Topics::place` skips
/// shards that don't exist, so these never count as placed.
const UNPLACED: usize = usize::MAX;

/// Where an image stands and who is looking at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageAt {
    /// The applied index: the image holds every entry up to it.
    pub applied: u64,
    /// The commit index recovered at start (see [`MetadataSource::recovered_commit`]).
    pub recovered_commit: u64,
    /// This broker's node id.
    pub node_id: BrokerId,
    /// This broker's shards, to place the partitions it hosts on.
    pub shards: usize,
    /// This broker is registered and unfenced in its current incarnation, so caught up with
    /// the metadata: only then does it take the leaderships an image gives it. A restarted
    /// broker replays images from before its restart, which may name it leader of partitions
    /// the cluster has moved on from; leading them would serve stale data and accept writes
    /// the real leader never sees. The controller never elects a fenced broker, so nothing
    /// waits on it meanwhile.
    pub may_lead: bool,
}

/// What the registry should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// The image is older than what the registry already reflects (a replay after a restart
    /// is under way): nothing changes until `applied` reaches `needed`.
    Behind { applied: u64, needed: u64 },
    /// The registry already says what the image says.
    Unchanged,
    /// Install this registry (its `version` still the current one's; the installer bumps it).
    Install(Topics),
}

/// The registry `image` calls for, given the current one (`local`):
/// - every topic of the image, with its id as 32 hex digits, its configs, and each
///   partition's replicas, ISR, leader and leader epoch, and this broker's part in it;
/// - partitions this broker already hosted keep their shard; newly hosted ones are placed
///   where the fewest hosted partitions are; partitions it doesn't host get none (shard 0);
/// - topics the controller gave and the image no longer holds (by id) are dropped, and a
///   topic whose name the image gives another id is replaced (it was deleted and made again);
/// - topics made here before this node joined a cluster (never from the controller) stay as
///   they are, unless the image holds the same topic (same id), which it then places.
pub fn derive(local: &Topics, image: &MetadataImage, at: ImageAt) -> Follow {
    let needed = local.metadata_offset.max(at.recovered_commit);
    if at.applied < needed {
        return Follow::Behind {
            applied: at.applied,
            needed,
        };
    }
    let mut next = Topics {
        by_name: BTreeMap::new(),
        version: local.version,
        metadata_offset: local.metadata_offset,
    };
    let mut unplaced: Vec<(Arc<str>, usize)> = Vec::new();
    for topic in image.topics() {
        if let Some(reason) = invalid_topic_name(&topic.name) {
            // Its name becomes a directory name: never trust it that far.
            tracing::error!(topic = %topic.name, %reason, "metadata names an invalid topic; ignored");
            continue;
        }
        let id = topic_id_hex(topic);
        let old = local.get(topic.name.as_str());
        if old.is_some_and(|old| !old.from_controller() && old.id != id) {
            tracing::warn!(
                topic = %topic.name,
                "a topic of this name predates this node's cluster membership and is kept; the cluster's topic of the same name is not served here"
            );
            continue;
        }
        let old = old.filter(|old| old.id == id);
        let meta = topic_meta(topic, &id, old.map(|o| o.as_ref()), image, at);
        for (index, &shard) in meta.shards.iter().enumerate() {
            if shard == UNPLACED {
                unplaced.push((meta.name.clone(), index));
            }
        }
        next.by_name.insert(meta.name.clone(), Arc::new(meta));
    }
    for (name, meta) in &local.by_name {
        if !meta.from_controller() && !next.by_name.contains_key(name) {
            next.by_name.insert(name.clone(), meta.clone());
        }
    }
    place(&mut next, &unplaced, at.shards);
    if next.by_name == local.by_name {
        return Follow::Unchanged;
    }
    next.metadata_offset = at.applied;
    Follow::Install(next)
}

/// `topic` as the registry holds it, keeping `old`'s shards for partitions still hosted here;
/// newly hosted partitions get [`UNPLACED`].
fn topic_meta(
    topic: &TopicImage,
    id: &str,
    old: Option<&TopicMeta>,
    image: &MetadataImage,
    at: ImageAt,
) -> TopicMeta {
    let partitions: Vec<PartitionPlacement> = topic
        .partitions
        .iter()
        .map(|p| placement(p, at.node_id, at.may_lead))
        .collect();
    let shards = partitions
        .iter()
        .enumerate()
        .map(|(index, p)| match (p.here, old) {
            (Here::Absent, _) => 0,
            (_, Some(old)) if old.hosts(index) => old.shards[index],
            _ => UNPLACED,
        })
        .collect();
    TopicMeta {
        name: topic.name.as_str().into(),
        id: id.to_owned(),
        shards,
        configs: image
            .configs(&ConfigResource::Topic(topic.name.clone()))
            .cloned()
            .unwrap_or_default(),
        controller: Some(ControllerTopic { partitions }),
    }
}

/// A partition's placement as broker `me` sees it; one it would lead but `may_lead` forbids
/// is held as a replica with no leader to follow.
fn placement(p: &PartitionState, me: BrokerId, may_lead: bool) -> PartitionPlacement {
    let (here, leader) = if p.leader == me && may_lead {
        (Here::Leader, p.leader)
    } else if p.leader == me {
        (Here::Follower, NO_LEADER)
    } else if p.replicas.contains(&me) {
        (Here::Follower, p.leader)
    } else {
        (Here::Absent, p.leader)
    };
    PartitionPlacement {
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        here,
    }
}

/// Gives each of `unplaced` a shard, balancing with the partitions already placed.
fn place(topics: &mut Topics, unplaced: &[(Arc<str>, usize)], shards: usize) {
    let shards_for = topics.place(unplaced.len(), shards.max(1));
    for ((name, index), shard) in unplaced.iter().zip(shards_for) {
        if let Some(meta) = topics.by_name.get_mut(name) {
            let meta = Arc::make_mut(meta);
            if let Some(slot) = meta.shards.get_mut(*index) {
                *slot = shard;
            }
        }
    }
}

/// A topic id as the registry writes it (as `topics::new_topic_id` makes them).
fn topic_id_hex(topic: &TopicImage) -> String {
    uuid::Uuid::from_bytes(topic.id).simple().to_string()
}

/// Follows the metadata image for as long as the node runs (on shard 0).
pub async fn follow(metadata: MetadataSource, node_id: BrokerId) {
    // The (applied index, registry version) last looked at: nothing to do until one moves.
    let mut looked: Option<(u64, u64)> = None;
    let mut waiting_logged = false;
    loop {
        let registry_version = shard::current().topics().version;
        if looked != Some((metadata.applied(), registry_version)) {
            // Copied only when there is something new to look at: the image holds every
            // partition, and the loop wakes at every change of the metadata.
            let (image, applied) = metadata.image();
            // This process's registration, unfenced: the controller found it caught up.
            let may_lead = super::broker::incarnation().is_some_and(|incarnation| {
                image
                    .broker(node_id)
                    .is_some_and(|b| b.incarnation_id == incarnation && !b.fenced)
            });
            let at = ImageAt {
                applied,
                recovered_commit: metadata.recovered_commit(),
                node_id,
                shards: rt::shard_count(),
                may_lead,
            };
            let mut behind = None;
            let installed = shard::install_from_metadata(|local| match derive(local, &image, at) {
                Follow::Install(next) => Some(next),
                Follow::Unchanged => None,
                Follow::Behind { needed, .. } => {
                    behind = Some(needed);
                    None
                }
            })
            .await;
            match (installed, behind) {
                (Ok(_), Some(needed)) => {
                    if !waiting_logged {
                        tracing::info!(
                            applied,
                            needed,
                            "topics wait for the metadata log to catch up"
                        );
                        waiting_logged = true;
                    }
                    looked = Some((applied, registry_version));
                }
                (Ok(installed), None) => {
                    if let Some(gone) = installed {
                        tracing::debug!(applied, removed = ?gone, "topics follow the metadata");
                        forget_committed_offsets(&gone).await;
                    }
                    waiting_logged = false;
                    // The install moved the version: the next look confirms it unchanged.
                    looked = Some((applied, shard::current().topics().version));
                }
                (Err(e), _) => {
                    // Retried at the next look.
                    tracing::warn!(applied, error = %e, "cannot install the topics of the metadata");
                    looked = None;
                }
            }
        }
        let _ = rt::select(metadata.progressed(), rt::sleep(LOOK_EVERY)).await;
    }
}

/// Drops the committed offsets of topics that are gone, on every shard's group coordinator,
/// as DeleteTopics does on the broker that takes it.
async fn forget_committed_offsets(gone: &[Arc<str>]) {
    for topic in gone {
        for shard in 0..rt::shard_count() {
            let topic = topic.to_string();
            let forgotten = rt::run_on(shard, move || async move {
                match crate::groups::coordinator::try_current() {
                    Some(coordinator) => coordinator.forget_topic(topic).await,
                    None => 0,
                }
            })
            .await;
            if forgotten.is_err() {
                tracing::debug!(shard, "shard stopped before forgetting offsets");
            }
        }
    }
}

#[cfg(test)]
#[path = "topics_follower_tests.rs"]
mod tests;
