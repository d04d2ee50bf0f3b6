//! Keeps this broker's dynamic broker configs in step with the metadata: the cluster-wide
//! defaults (Kafka's broker resource "") and this broker's own, as the controller decided them.
//!
//! Only an image that is caught up is followed: one past what this node had applied before it
//! stopped (a replay's images are older, and taking their configs for a moment could, say,
//! shorten retention and delete data), and not the empty image an observer starts from.

use std::time::Duration;

use runnel_engine::rt;

use super::source::MetadataSource;
use crate::controller::metadata::ConfigResource;
use crate::partitions::{broker_configs, shard};

/// How often the configs are compared with the image even when the metadata reports nothing
/// (an install that failed is tried again then).
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Follows the metadata for as long as the node runs (on shard 0).
pub async fn follow(metadata: MetadataSource, node_id: i32) {
    let mut refused = None;
    loop {
        let applied = metadata.applied();
        if applied > 0 && applied >= metadata.recovered_commit() {
            let configs = metadata.with_image(|image| {
                let of = |resource| image.configs(&resource).cloned().unwrap_or_default();
                (
                    of(ConfigResource::Cluster),
                    of(ConfigResource::Broker(node_id)),
                )
            });
            // A set refused is tried again only once it or the topics change: whether it
            // fits depends on every topic's own configs too.
            let topics_version = shard::current().topics().version;
            let still_refused = refused
                .as_ref()
                .is_some_and(|(set, version)| *set == configs && *version == topics_version);
            if !still_refused {
                let (cluster, mine) = configs.clone();
                match broker_configs::follow_metadata(cluster, mine).await {
                    Ok(true) => {
                        tracing::info!(applied, "broker configs taken from the metadata");
                        refused = None;
                    }
                    Ok(false) => refused = None,
                    Err(e) => {
                        // Said once per set of configs, not every look.
                        tracing::error!("broker configs in the metadata not taken: {e}");
                        refused = Some((configs, topics_version));
                    }
                }
            }
        }
        let _ = rt::select(metadata.progressed(), rt::sleep(LOOK_EVERY)).await;
    }
}
