//! A one-shard broker for tests of what runs on a shard (the coordinators): the given topics,
//! each of one partition, open in a fresh data directory.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runnel_engine::rt::{Runtime, RuntimeConfig};

use super::shard::{start_shard, TopicDefaults};
use super::topics::{new_topic_id, TopicMeta, Topics};

fn data_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runnel-shard-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `test` on a one-shard runtime whose shard holds partition 0 of each of `topics`.
pub fn on_one_shard<F, Fut>(name: &str, topics: &[&str], test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = data_dir(name);
    let mut held = Topics::default();
    for topic in topics {
        let meta = TopicMeta {
            name: (*topic).into(),
            id: new_topic_id().expect("topic id"),
            shards: vec![0],
            configs: BTreeMap::new(),
            controller: None,
        };
        held.by_name.insert(meta.name.clone(), Arc::new(meta));
    }
    let held = Arc::new(held);
    let shard_dir = dir.clone();
    let opened = Arc::new(AtomicBool::new(false));
    let started = opened.clone();
    let runtime = Runtime::start(
        RuntimeConfig {
            cores: 1,
            pin_threads: false,
            ..RuntimeConfig::default()
        },
        move |_| {
            let (dir, topics, opened) = (shard_dir.clone(), held.clone(), started.clone());
            async move {
                let defaults = Arc::new(TopicDefaults::default());
                start_shard(dir, false, topics, defaults, Default::default()).await;
                opened.store(true, Ordering::SeqCst);
            }
        },
    )
    .expect("runtime starts");
    // The test runs once the partitions are open.
    while !opened.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    runtime
        .handle()
        .run_on(0, test)
        .expect("the shard runs the test");
    runtime.join().expect("runtime ends cleanly");
    let _ = std::fs::remove_dir_all(dir);
}
