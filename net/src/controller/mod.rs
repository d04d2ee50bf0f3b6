//! The cluster's controller: the Raft quorum that holds the cluster's metadata ([`quorum`],
//! sans I/O), the metadata it holds and the controller's decisions ([`metadata`], sans I/O),
//! how nodes talk ([`transport`]), a node's part at run time ([`node`]), the cluster as every
//! shard's handlers see it ([`view`]), and the `[cluster]` settings ([`settings`]).

pub mod metadata;
pub mod node;
pub mod quorum;
pub mod settings;
pub mod transport;
pub mod view;

/// Spawns one of the cluster's long-lived tasks on this shard, ending it when the broker shuts
/// down: they loop forever otherwise, and the shard would wait its whole grace period for them.
pub(crate) fn spawn_until_shutdown(task: impl std::future::Future + 'static) {
    runnel_engine::rt::spawn_local(async move {
        runnel_engine::rt::select(runnel_engine::rt::shutdown_requested(), task).await;
    });
}
