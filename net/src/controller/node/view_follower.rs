//! Keeps every shard's [`ClusterView`] in step with the metadata this node applies and the
//! leader it knows, and shares with every shard which peers its links cannot reach.

use std::time::Duration;

use runnel_engine::rt;

use crate::controller::metadata::MetadataImage;
use crate::controller::view::{self, BrokerEndpoint, ClusterView};
use crate::data_dir::cluster_id_text;

use super::source::MetadataSource;

/// Publishes a new view whenever the brokers or the controller change.
pub async fn follow(metadata: MetadataSource) {
    view::install_unreachable(metadata.unreachable()).await;
    let mut published: Option<ClusterView> = None;
    loop {
        let leader = metadata.leader();
        let current = metadata.with_image(|image| view_of(image, leader));
        if published.as_ref() != Some(&current) {
            view::publish(current.clone()).await;
            published = Some(current);
        }
        // Leadership can change without an entry applied here: look again now and then.
        let _ = rt::select(metadata.progressed(), rt::sleep(Duration::from_millis(200))).await;
    }
}

fn view_of(image: &MetadataImage, controller: Option<i32>) -> ClusterView {
    ClusterView {
        cluster_id: image.cluster_id().map(cluster_id_text),
        controller,
        brokers: image
            .brokers()
            .filter_map(|b| {
                let listener = b.listeners.first()?;
                Some(BrokerEndpoint {
                    id: b.id,
                    host: listener.host.clone(),
                    port: i32::from(listener.port),
                    rack: b.rack.clone(),
                    fenced: !b.is_live(),
                })
            })
            .collect(),
    }
}
