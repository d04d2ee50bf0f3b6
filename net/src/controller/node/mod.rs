//! A node of the cluster at run time: the controller quorum's voter ([`voter`]) with its files
//! ([`disk`]), the controller listener's requests ([`requests`], and those brokers forward
//! for their clients: [`admin`]), this node's life as a broker ([`broker`]), its topic changes
//! and producer ids asked of the active controller ([`forward`], [`topic_authority`]), the
//! cluster view its shards answer clients from ([`view_follower`]) and the topics it hosts,
//! which follow the metadata ([`topics_follower`]). It all runs on shard 0.

mod admin;
mod admin_reassignments;
mod admin_topics;
mod alter_partition;
pub mod broker;
pub mod disk;
mod forward;
mod ids;
mod requests;
mod topic_authority;
pub mod topics_follower;
mod view_follower;
pub mod voter;

use std::rc::Rc;

use runnel_engine::rt::TcpListener;

use crate::controller::settings::QuorumSettings;
use crate::controller::transport::{self, Handlers};
use broker::Advertised;
use disk::Found;
pub use forward::{alter_partition, to_controller};
use voter::Voter;

/// Starts this node's part in the cluster on the current shard: its controller listener,
/// its voter, and its broker lifecycle. Only combined-mode nodes (broker and voter) for now.
pub async fn start(
    settings: QuorumSettings,
    found: Found,
    advertised: Advertised,
) -> std::io::Result<Voter> {
    let listen = settings
        .controller_listen
        .ok_or_else(|| std::io::Error::other("a voter needs a controller listener"))?;
    let listener = TcpListener::bind(listen)
        .map_err(|e| std::io::Error::new(e.kind(), format!("controller listener {listen}: {e}")))?;
    let voter = Voter::start(&settings, found).await?;
    // From now on topic changes and producer ids are the active controller's to decide.
    forward::install(&settings);
    let raft_voter = voter.clone();
    let request_voter = voter.clone();
    let handlers = Rc::new(Handlers {
        raft: Box::new(move |payload| raft_voter.receive(payload)),
        request: Box::new(move |payload| {
            let voter = request_voter.clone();
            Box::pin(async move { requests::answer(&voter, payload).await })
        }),
    });
    crate::controller::spawn_until_shutdown(transport::serve(listener, handlers));
    crate::controller::spawn_until_shutdown(view_follower::follow(voter.clone()));
    crate::controller::spawn_until_shutdown(topics_follower::follow(
        voter.clone(),
        settings.node_id,
    ));
    crate::controller::spawn_until_shutdown(broker::run_lifecycle(
        settings,
        advertised,
        voter.clone(),
    ));
    tracing::info!(%listen, "controller listener");
    Ok(voter)
}
