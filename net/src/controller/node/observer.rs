//! A broker-only node's copy of the metadata: it is no voter, so it fetches what the quorum
//! committed from the quorum's leader (Kafka's KRaft observer; the exchange is in
//! [`super::metadata_fetch`]) and applies it to its own image, which its followers read as
//! they read a voter's.
//!
//! [`Following`] is the decision, sans I/O: what to ask next and what an answer changes.
//! [`Observer`] runs it on shard 0. Nothing is kept on disk: a restarted observer starts from
//! the leader's image. Until it has one, its image is empty at index 0, which the topics
//! follower never takes for a reason to delete data (it is older than any registry saved).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_snapshot_request::{
    PartitionSnapshot, SnapshotId, TopicSnapshot,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt::{self, LocalEvent};

use super::metadata_fetch::{
    decode_entries, FETCH_SNAPSHOT_VERSION, FETCH_VERSION, MAX_BYTES, MAX_WAIT, METADATA_TOPIC,
};
use crate::controller::metadata::{decode_batch, MetadataImage};
use crate::controller::settings::QuorumSettings;
use crate::controller::transport::{RpcClient, MAX_FRAME_BYTES};
use crate::controller::view::Unreachable;
use crate::kafka::error_code;

/// Pause after an answer that was no answer (no leader, an unreachable voter).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What an answer calls for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Fetch again (from where the image stands now).
    Fetch,
    /// The entries after the image are compacted away on the leader: fetch its image.
    Snapshot { index: u64, epoch: i32 },
    /// Whoever answered is not the leader (or no longer): ask `leader`, or the next voter,
    /// after a pause.
    Elsewhere { leader: Option<i32> },
}

/// An answer that cannot be followed without leaving this image different from the
/// quorum's: the node must stop following.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfollowable {
    #[error("the leader's answer is unreadable: {0}")]
    BadAnswer(String),
    #[error("committed metadata entry {index} is unreadable: {reason}")]
    UnreadableEntry { index: u64, reason: String },
    #[error("the leader's metadata image at {index} is unreadable: {reason}")]
    UnreadableImage { index: u64, reason: String },
}

/// The image and where it stands.
#[derive(Debug, Default)]
pub struct Following {
    pub image: MetadataImage,
    /// Every committed entry up to this index is in `image`.
    pub applied: u64,
    /// The quorum's leader, as the last answer named it.
    pub leader: Option<i32>,
    /// How far the image must get before it is as new as the quorum's was when this node
    /// started following: the leader's applied index in the first answer (the answer's own
    /// end, from a leader that does not say). Until then the image is an older cluster's,
    /// whose broker configs must not be taken (see [`Following::caught_up_at`]).
    pub catch_up_to: Option<u64>,
}

impl Following {
    /// The Fetch that asks for the entries after the image.
    pub fn fetch_request(&self, node_id: i32) -> FetchRequest {
        let mut partition = FetchPartition::default();
        partition.partition = 0;
        partition.fetch_offset = i64::try_from(self.applied + 1).unwrap_or(i64::MAX);
        partition.partition_max_bytes = MAX_BYTES as i32;
        let mut topic = FetchTopic::default();
        topic.topic = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(node_id);
        request.max_wait_ms = MAX_WAIT.as_millis() as i32;
        request.min_bytes = 1;
        request.max_bytes = MAX_BYTES as i32;
        request.topics = vec![topic];
        request
    }

    /// Applies a Fetch answer.
    pub fn on_fetch(&mut self, response: FetchResponse) -> Result<Next, Unfollowable> {
        let bad = |why: &str| Unfollowable::BadAnswer(why.to_owned());
        let [topic] = <[_; 1]>::try_from(response.responses)
            .map_err(|_| bad("not one topic in the answer"))?;
        let [partition] = <[_; 1]>::try_from(topic.partitions)
            .map_err(|_| bad("not one partition in the answer"))?;
        let named = partition.current_leader.leader_id.0;
        let leader = (named >= 0).then_some(named);
        self.leader = leader;
        if partition.error_code != error_code::NONE || response.error_code != error_code::NONE {
            return Ok(Next::Elsewhere { leader });
        }
        if partition.snapshot_id.end_offset >= 0 {
            let index = u64::try_from(partition.snapshot_id.end_offset).unwrap_or(0);
            return Ok(Next::Snapshot {
                index,
                epoch: partition.snapshot_id.epoch,
            });
        }
        let through =
            u64::try_from(partition.high_watermark).map_err(|_| bad("negative high watermark"))?;
        let leader_applied = super::metadata_fetch::leader_applied(&partition);
        let entries = decode_entries(partition.records.unwrap_or_default())
            .map_err(|e| Unfollowable::BadAnswer(e.to_string()))?;
        if entries.last().is_some_and(|last| last.index > through) {
            return Err(bad("an entry past the answer's high watermark"));
        }
        for entry in entries.into_iter().filter(|e| e.index > self.applied) {
            let records =
                decode_batch(&entry.records).map_err(|e| Unfollowable::UnreadableEntry {
                    index: entry.index,
                    reason: e.to_string(),
                })?;
            if let Err(e) = self.image.apply_batch(entry.index, &records) {
                // Refused the same way on every voter (see the voter's apply).
                tracing::debug!(index = entry.index, "metadata entry refused: {e}");
            }
        }
        self.applied = self.applied.max(through);
        self.catch_up_to
            .get_or_insert(leader_applied.unwrap_or(through).max(through));
        Ok(Next::Fetch)
    }

    /// The index the image must reach to be as new as the quorum's was when this node
    /// started following; 0 before any answer (when there is no image at all).
    pub fn caught_up_at(&self) -> u64 {
        self.catch_up_to.unwrap_or(0)
    }

    /// The FetchSnapshot for the image `index` names.
    pub fn snapshot_request(&self, node_id: i32, index: u64, epoch: i32) -> FetchSnapshotRequest {
        let mut id = SnapshotId::default();
        id.end_offset = i64::try_from(index).unwrap_or(i64::MAX);
        id.epoch = epoch;
        let mut partition = PartitionSnapshot::default();
        partition.partition = 0;
        partition.snapshot_id = id;
        partition.position = 0;
        let mut topic = TopicSnapshot::default();
        topic.name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = vec![partition];
        let mut request = FetchSnapshotRequest::default();
        request.replica_id = BrokerId(node_id);
        request.max_bytes = MAX_FRAME_BYTES as i32;
        request.topics = vec![topic];
        request
    }

    /// Takes the leader's image from a FetchSnapshot answer.
    pub fn on_snapshot(&mut self, response: FetchSnapshotResponse) -> Result<Next, Unfollowable> {
        let bad = |why: &str| Unfollowable::BadAnswer(why.to_owned());
        let [topic] = <[_; 1]>::try_from(response.topics)
            .map_err(|_| bad("not one topic in the snapshot answer"))?;
        let [partition] = <[_; 1]>::try_from(topic.partitions)
            .map_err(|_| bad("not one partition in the snapshot answer"))?;
        let named = partition.current_leader.leader_id.0;
        let leader = (named >= 0).then_some(named);
        self.leader = leader;
        if partition.error_code != error_code::NONE || response.error_code != error_code::NONE {
            return Ok(Next::Elsewhere { leader });
        }
        let index = u64::try_from(partition.snapshot_id.end_offset)
            .map_err(|_| bad("negative snapshot index"))?;
        if partition.position != 0 || partition.size != partition.unaligned_records.len() as i64 {
            return Err(bad("a snapshot not sent whole"));
        }
        if index < self.applied {
            // Older than what this image holds (a leader behind us cannot be, but an answer
            // is no proof): keep the newer.
            return Ok(Next::Fetch);
        }
        self.image =
            MetadataImage::from_snapshot_bytes(&partition.unaligned_records).map_err(|e| {
                Unfollowable::UnreadableImage {
                    index,
                    reason: e.to_string(),
                }
            })?;
        self.applied = index;
        self.catch_up_to.get_or_insert(index);
        Ok(Next::Fetch)
    }
}

/// A broker-only node's metadata, followed from the quorum; cheap to clone (shard 0).
#[derive(Clone)]
pub struct Observer {
    following: Rc<RefCell<Following>>,
    /// Rung whenever the image or the leader changed.
    progressed: Rc<LocalEvent>,
    /// An observer has no links of its own to judge other brokers by.
    unreachable: Arc<Unreachable>,
    voter_addresses: Rc<Vec<(i32, String)>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let following = self.following.borrow();
        f.debug_struct("Observer")
            .field("applied", &following.applied)
            .field("leader", &following.leader)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Starts following the quorum of `settings` on this shard.
    pub fn start(settings: &QuorumSettings) -> Observer {
        let observer = Observer {
            following: Rc::default(),
            progressed: Rc::new(LocalEvent::new()),
            unreachable: Arc::new(Unreachable::default()),
            voter_addresses: Rc::new(
                settings
                    .voters
                    .iter()
                    .map(|v| (v.id, v.address.clone()))
                    .collect(),
            ),
        };
        crate::controller::spawn_until_shutdown(observer.clone().run(settings.node_id));
        observer
    }

    pub fn leader(&self) -> Option<i32> {
        self.following.borrow().leader
    }

    pub fn applied(&self) -> u64 {
        self.following.borrow().applied
    }

    /// See [`Following::caught_up_at`].
    pub fn caught_up_at(&self) -> u64 {
        self.following.borrow().caught_up_at()
    }

    pub fn image(&self) -> (MetadataImage, u64) {
        let following = self.following.borrow();
        (following.image.clone(), following.applied)
    }

    pub fn with_image<T>(&self, read: impl FnOnce(&MetadataImage) -> T) -> T {
        read(&self.following.borrow().image)
    }

    pub async fn progressed(&self) {
        self.progressed.wait().await
    }

    pub fn unreachable(&self) -> Arc<Unreachable> {
        self.unreachable.clone()
    }

    pub fn voter_addresses(&self) -> Vec<(i32, String)> {
        self.voter_addresses.as_ref().clone()
    }

    async fn run(self, node_id: i32) {
        // A Fetch waits up to MAX_WAIT for news; a leader silent for twice that is gone.
        let mut client = RpcClient::new(
            self.voter_addresses(),
            format!("runnel-broker-{node_id}-metadata"),
            MAX_WAIT * 2,
        );
        loop {
            if let Some(leader) = self.leader() {
                client.aim_at(leader);
            }
            let before = self.seen();
            let request = self.following.borrow().fetch_request(node_id);
            let next = match client
                .call::<_, FetchResponse>(ApiKey::Fetch, FETCH_VERSION, &request)
                .await
            {
                Ok(response) => self.following.borrow_mut().on_fetch(response),
                Err(e) => {
                    tracing::debug!("metadata fetch: {e}");
                    Ok(Next::Elsewhere { leader: None })
                }
            };
            let next = match next {
                Ok(Next::Snapshot { index, epoch }) => {
                    let request = self
                        .following
                        .borrow()
                        .snapshot_request(node_id, index, epoch);
                    match client
                        .call::<_, FetchSnapshotResponse>(
                            ApiKey::FetchSnapshot,
                            FETCH_SNAPSHOT_VERSION,
                            &request,
                        )
                        .await
                    {
                        Ok(response) => {
                            let taken = self.following.borrow_mut().on_snapshot(response);
                            if taken.is_ok() {
                                tracing::info!(
                                    index = self.applied(),
                                    "metadata image taken from the controller quorum's leader"
                                );
                            }
                            taken
                        }
                        Err(e) => {
                            tracing::debug!("metadata snapshot fetch: {e}");
                            Ok(Next::Elsewhere { leader: None })
                        }
                    }
                }
                other => other,
            };
            let pause = match next {
                Ok(Next::Fetch) | Ok(Next::Snapshot { .. }) => false,
                Ok(Next::Elsewhere { leader }) => {
                    match leader.filter(|&l| Some(l) != client.target()) {
                        Some(leader) => client.aim_at(leader),
                        None => {
                            // Nobody leads, or who answered claims to: look at the others.
                            self.following.borrow_mut().leader = None;
                            client.try_next();
                        }
                    }
                    true
                }
                Err(e) => {
                    // Following on would leave this broker acting on metadata no voter has.
                    tracing::error!("metadata: {e}; shutting down");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::this(),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                    return;
                }
            };
            // After the leader is forgotten too: the followers hear that nobody leads.
            if self.seen() != before {
                self.progressed.notify_all();
            }
            if pause {
                rt::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// What the followers care about: where the image stands and who leads.
    fn seen(&self) -> (u64, Option<i32>) {
        let following = self.following.borrow();
        (following.applied, following.leader)
    }
}

#[cfg(test)]
#[path = "observer_tests.rs"]
mod tests;
