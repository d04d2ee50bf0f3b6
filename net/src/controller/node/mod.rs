//! A node of the cluster at run time: the controller quorum's voter ([`voter`]) with its files
//! ([`disk`]), the controller listener's requests ([`requests`], and those brokers forward
//! for their clients: [`admin`]), this node's life as a broker ([`broker`]), its topic changes
//! and producer ids asked of the active controller ([`forward`], [`topic_authority`]), the
//! cluster view its shards answer clients from ([`view_follower`]) and the topics it hosts,
//! and its dynamic broker configs, which follow the metadata ([`topics_follower`],
//! [`broker_configs_follower`]) of its voter or, on a broker-only node,
//! of its [`observer`] ([`source`]; the quorum serves observers in [`metadata_fetch`]). It
//! all runs on shard 0.

mod admin;
mod admin_reassignments;
mod admin_topics;
mod alter_partition;
pub mod broker;
mod broker_configs_follower;
pub mod disk;
mod forward;
mod ids;
pub mod metadata_fetch;
pub mod observer;
mod requests;
pub mod source;
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
use observer::Observer;
use source::MetadataSource;
use voter::Voter;

/// Starts this node's part in the cluster on the current shard, by its roles: a controller
/// runs its controller listener and voter; a broker follows the metadata (its own voter's,
/// or on a broker-only node the quorum's, fetched by an [`Observer`]), registers and
/// heartbeats. Every node keeps its shards' view of the cluster and its topics in step with
/// the metadata (a controller-only node hosts no partition, but answers clients' Metadata),
/// and forwards topic changes to the active controller.
pub async fn start(
    settings: QuorumSettings,
    found: Found,
    advertised: Advertised,
) -> std::io::Result<()> {
    let metadata = if settings.roles.controller {
        MetadataSource::Voter(start_controller(&settings, found).await?)
    } else {
        MetadataSource::Observer(Observer::start(&settings))
    };
    source::install(metadata.clone());
    // From now on topic changes and producer ids are the active controller's to decide.
    forward::install(&settings);
    crate::controller::spawn_until_shutdown(view_follower::follow(metadata.clone()));
    crate::controller::spawn_until_shutdown(topics_follower::follow(
        metadata.clone(),
        settings.node_id,
    ));
    crate::controller::spawn_until_shutdown(broker_configs_follower::follow(
        metadata.clone(),
        settings.node_id,
    ));
    if settings.roles.broker {
        crate::controller::spawn_until_shutdown(broker::run_lifecycle(
            settings, advertised, metadata,
        ));
    }
    Ok(())
}

/// The controller listener and the voter behind it.
async fn start_controller(settings: &QuorumSettings, found: Found) -> std::io::Result<Voter> {
    let listen = settings
        .controller_listen
        .ok_or_else(|| std::io::Error::other("a voter needs a controller listener"))?;
    let listener = TcpListener::bind(listen)
        .map_err(|e| std::io::Error::new(e.kind(), format!("controller listener {listen}: {e}")))?;
    let voter = Voter::start(settings, found).await?;
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
    tracing::info!(%listen, "controller listener");
    Ok(voter)
}
