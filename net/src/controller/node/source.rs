//! Where a node's metadata comes from: its own voter (a controller) or, on a broker-only node,
//! the [`Observer`] that follows the quorum. The followers that keep the node's view and
//! topics in step read either the same way.

use std::cell::RefCell;
use std::sync::Arc;

use super::observer::Observer;
use super::voter::Voter;
use crate::controller::metadata::MetadataImage;
use crate::controller::view::Unreachable;

/// This node's metadata; cheap to clone (shared on shard 0).
#[derive(Clone, Debug)]
pub enum MetadataSource {
    Voter(Voter),
    Observer(Observer),
}

thread_local! {
    static LOCAL_SOURCE: RefCell<Option<MetadataSource>> = const { RefCell::new(None) };
}

/// This node's metadata, on the shard it is followed on (shard 0), once the node has joined.
pub fn local_source() -> Option<MetadataSource> {
    LOCAL_SOURCE.with(|local| local.borrow().clone())
}

pub(super) fn install(source: MetadataSource) {
    LOCAL_SOURCE.with(|local| *local.borrow_mut() = Some(source));
}

impl MetadataSource {
    /// The node id of the quorum's leader, as far as this node knows.
    pub fn leader(&self) -> Option<i32> {
        match self {
            MetadataSource::Voter(voter) => voter.leader(),
            MetadataSource::Observer(observer) => observer.leader(),
        }
    }

    /// The image as of the applied index, and that index.
    pub fn image(&self) -> (MetadataImage, u64) {
        match self {
            MetadataSource::Voter(voter) => voter.image(),
            MetadataSource::Observer(observer) => observer.image(),
        }
    }

    pub fn with_image<T>(&self, read: impl FnOnce(&MetadataImage) -> T) -> T {
        match self {
            MetadataSource::Voter(voter) => voter.with_image(read),
            MetadataSource::Observer(observer) => observer.with_image(read),
        }
    }

    /// The index of the last metadata entry in the image.
    pub fn applied(&self) -> u64 {
        match self {
            MetadataSource::Voter(voter) => voter.applied(),
            MetadataSource::Observer(observer) => observer.applied(),
        }
    }

    /// How far the image must get before it is as new as what this node knew when it last
    /// stopped (see [`Voter::recovered_commit`]); an observer keeps nothing on disk and
    /// reads from the first entry on, so its image must get as far as the quorum's leader
    /// stood when it started following (see [`Following::caught_up_at`](super::observer::Following::caught_up_at)).
    pub fn recovered_commit(&self) -> u64 {
        match self {
            MetadataSource::Voter(voter) => voter.recovered_commit(),
            MetadataSource::Observer(observer) => observer.caught_up_at(),
        }
    }

    /// Waits for the next change of the image or the leader.
    pub async fn progressed(&self) {
        match self {
            MetadataSource::Voter(voter) => voter.progressed().await,
            MetadataSource::Observer(observer) => observer.progressed().await,
        }
    }

    /// The brokers this node's controller links cannot reach (none for an observer).
    pub fn unreachable(&self) -> Arc<Unreachable> {
        match self {
            MetadataSource::Voter(voter) => voter.unreachable(),
            MetadataSource::Observer(observer) => observer.unreachable(),
        }
    }

    /// Every voter's (node id, controller listener), sorted by id.
    pub fn voter_addresses(&self) -> Vec<(i32, String)> {
        match self {
            MetadataSource::Voter(voter) => voter.voter_addresses(),
            MetadataSource::Observer(observer) => observer.voter_addresses(),
        }
    }
}
