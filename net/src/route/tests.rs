//! The scatter and gather on a real two-shard runtime, each shard with its partitions open.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_engine::rt::{self, Runtime, RuntimeConfig, RuntimeError};

use super::*;
use crate::partitions::shard::{self, start_shard, TopicDefaults};
use crate::partitions::topics::{new_topic_id, TopicMeta};
use crate::partitions::Partition;

/// Topic `t`: partitions 0..4 on shards 1, 0, 1, 0.
const PLACEMENT: [usize; 4] = [1, 0, 1, 0];

fn data_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runnel-route-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `test` on shard 0 of a two-shard broker holding topic `t`. Shard `dies`, if any,
/// panics 200 ms after opening its partitions. Returns how the runtime ended.
fn on_two_shards<F, Fut>(name: &str, dies: Option<usize>, test: F) -> Result<(), RuntimeError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = data_dir(name);
    let mut topics = Topics::default();
    let meta = TopicMeta {
        name: "t".into(),
        id: new_topic_id().expect("topic id"),
        shards: PLACEMENT.to_vec(),
        configs: BTreeMap::new(),
        controller: None,
    };
    topics.by_name.insert(meta.name.clone(), Arc::new(meta));
    let topics = Arc::new(topics);
    let opened = Arc::new(AtomicUsize::new(0));
    let started = opened.clone();
    let shard_dir = dir.clone();
    let runtime = Runtime::start(
        RuntimeConfig {
            cores: 2,
            pin_threads: false,
            ..RuntimeConfig::default()
        },
        move |me| {
            let (dir, topics, opened) = (shard_dir.clone(), topics.clone(), started.clone());
            async move {
                let defaults = Arc::new(TopicDefaults::default());
                start_shard(dir, false, topics, defaults, Default::default()).await;
                opened.fetch_add(1, Ordering::SeqCst);
                if dies == Some(me) {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!("shard {me} dies on purpose");
                }
            }
        },
    )
    .expect("runtime starts");
    while opened.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    runtime
        .handle()
        .run_on(0, test)
        .expect("shard 0 runs the test");
    let ended = runtime.join();
    let _ = std::fs::remove_dir_all(dir);
    ended
}

/// What the work saw of a partition: its number, the shard it ran on, its input.
type Seen = (i32, usize, u32);

fn seen_on_owner(partitions: Vec<(Partition, u32)>) -> impl Future<Output = Vec<Seen>> {
    let seen = partitions
        .iter()
        .map(|(p, input)| (p.tp.partition, rt::shard_id(), *input))
        .collect();
    std::future::ready(seen)
}

#[test]
fn answers_come_back_in_request_order_one_message_per_shard() {
    on_two_shards("order", None, || async {
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        routed.push(&topics, "t", 3, 30);
        routed.push(&topics, "missing", 0, 0);
        routed.push(&topics, "t", 0, 0);
        routed.push(&topics, "t", 9, 0);
        routed.refuse(error_code::INVALID_TOPIC_EXCEPTION);
        routed.push(&topics, "t", -1, 0);
        routed.push(&topics, "t", 2, 20);
        routed.push(&topics, "t", 1, 10);
        assert_eq!(routed.len(), 8);
        assert_eq!(routed.shard_count(), 2);
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let gathered = routed
            .scatter(move |partitions| {
                counted.fetch_add(1, Ordering::SeqCst);
                seen_on_owner(partitions)
            })
            .await
            .gather()
            .await;
        let unknown = error_code::UNKNOWN_TOPIC_OR_PARTITION;
        assert_eq!(
            gathered,
            vec![
                Ok((3, 0, 30)),
                Err(unknown),
                Ok((0, 1, 0)),
                Err(unknown),
                Err(error_code::INVALID_TOPIC_EXCEPTION),
                Err(unknown),
                Ok((2, 1, 20)),
                Ok((1, 0, 10)),
            ]
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one message per owning shard"
        );
    })
    .expect("runtime ends cleanly");
}

#[test]
fn a_stopped_shard_fails_only_its_partitions() {
    let ended = on_two_shards("stopped", Some(1), || async {
        rt::sleep(Duration::from_millis(400)).await; // shard 1 has died by now
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        for partition in 0..4 {
            routed.push(&topics, "t", partition, partition as u32);
        }
        let gathered = routed.scatter(seen_on_owner).await.gather().await;
        assert_eq!(
            gathered,
            vec![
                Err(errors::SHARD_STOPPED),
                Ok((1, 0, 1)),
                Err(errors::SHARD_STOPPED),
                Ok((3, 0, 3)),
            ]
        );
    });
    assert!(matches!(ended, Err(RuntimeError::ShardPanicked(1))));
}

#[test]
fn a_partition_not_open_on_its_shard_is_not_served() {
    on_two_shards("not-open", None, || async {
        let closed = TopicPartition::new("t", 2);
        let removed = rt::run_on(1, move || async move {
            shard::current().logs.remove(&closed).is_some()
        });
        assert_eq!(removed.await, Ok(true));
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        routed.push(&topics, "t", 2, 0);
        routed.push(&topics, "t", 0, 0);
        let gathered = routed.scatter(seen_on_owner).await.gather().await;
        assert_eq!(gathered, vec![Err(errors::NOT_OPEN), Ok((0, 1, 0))]);
    })
    .expect("runtime ends cleanly");
}

#[test]
fn work_that_answers_too_few_partitions_is_an_error_not_a_success() {
    on_two_shards("too-few", None, || async {
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        routed.push(&topics, "t", 1, 0);
        routed.push(&topics, "t", 3, 0);
        let gathered = routed
            .scatter(|_: Vec<(Partition, u32)>| std::future::ready(vec![7u8]))
            .await
            .gather()
            .await;
        assert_eq!(gathered, vec![Ok(7), Err(errors::NOT_ANSWERED)]);
    })
    .expect("runtime ends cleanly");
}

#[test]
fn work_starts_in_posting_order_before_anything_is_awaited() {
    on_two_shards("posting-order", None, || async {
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        routed.push(&topics, "t", 0, 0); // shard 1
        routed.push(&topics, "t", 1, 0); // shard 0
        let started = Arc::new(Mutex::new(Vec::new()));
        let scatter = |request: u32| {
            let started = started.clone();
            routed.scatter(move |partitions: Vec<(Partition, u32)>| {
                // The synchronous part: what Produce uses to place appends in order.
                started
                    .lock()
                    .expect("not poisoned")
                    .push((rt::shard_id(), request));
                async move { vec![(); partitions.len()] }
            })
        };
        let first = scatter(1).await;
        let second = scatter(2).await;
        // Gathered in reverse: the order the work started in doesn't depend on it.
        assert_eq!(second.gather().await, vec![Ok(()), Ok(())]);
        assert_eq!(first.gather().await, vec![Ok(()), Ok(())]);
        let started = started.lock().expect("not poisoned").clone();
        for shard in [0, 1] {
            let on_shard: Vec<u32> = started
                .iter()
                .filter(|(s, _)| *s == shard)
                .map(|(_, r)| *r)
                .collect();
            assert_eq!(on_shard, vec![1, 2], "shard {shard}");
        }
    })
    .expect("runtime ends cleanly");
}

#[test]
fn any_completes_with_the_first_shard_to_finish() {
    on_two_shards("any", None, || async {
        let topics = shard::current().topics();
        let mut routed = Routed::new(Need::Leader);
        routed.push(&topics, "t", 0, 0); // shard 1: slow
        routed.push(&topics, "t", 1, 0); // shard 0: quick
        let waits = routed
            .scatter(|partitions: Vec<(Partition, u32)>| async move {
                if rt::shard_id() == 1 {
                    let slow = rt::sleep(Duration::from_secs(30));
                    let _ = rt::select(slow, rt::shutdown_requested()).await;
                }
                vec![(); partitions.len()]
            })
            .await;
        let raced = rt::select(waits.any(), rt::sleep(Duration::from_secs(10))).await;
        assert!(
            matches!(raced, rt::Either::Left(())),
            "any waited for the slow shard"
        );
    })
    .expect("runtime ends cleanly");
}

/// Topic `c` from the controller: partition 0 led here (shard 1), 1 followed here (shard 0,
/// leader 2), 2 led by broker 3 with no replica here, 3 leaderless with a replica here.
fn cluster_topics() -> Topics {
    use crate::partitions::topics::{ControllerTopic, Here, PartitionPlacement};
    let place = |here, leader| PartitionPlacement {
        replicas: vec![1, 2, 3],
        isr: vec![1, 2, 3],
        leader,
        leader_epoch: 4,
        partition_epoch: 0,
        here,
    };
    let meta = TopicMeta {
        name: "c".into(),
        id: new_topic_id().expect("topic id"),
        shards: vec![1, 0, 0, 1],
        configs: BTreeMap::new(),
        controller: Some(ControllerTopic {
            partitions: vec![
                place(Here::Leader, 1),
                place(Here::Follower, 2),
                place(Here::Absent, 3),
                place(Here::Follower, -1),
            ],
        }),
    };
    let mut topics = Topics::default();
    topics.by_name.insert(meta.name.clone(), Arc::new(meta));
    topics
}

#[test]
fn cluster_partitions_are_owned_as_the_metadata_places_them() {
    let topics = cluster_topics();
    let owner_of = |partition| owner(&topics, "c", partition).map(|(_, owner)| owner);
    assert_eq!(owner_of(0), Some(Owner::Leader { shard: 1 }));
    assert_eq!(
        owner_of(1),
        Some(Owner::Follower {
            shard: 0,
            leader: Some(2)
        })
    );
    assert_eq!(owner_of(2), Some(Owner::OtherBroker { leader: 3 }));
    assert_eq!(
        owner_of(3),
        Some(Owner::Follower {
            shard: 1,
            leader: None
        })
    );
    assert_eq!(owner_of(4), None);
    // Leader-only work reaches only the partition led here; the rest are told to look again.
    let mut routed = Routed::new(Need::Leader);
    for partition in 0..4 {
        routed.push(&topics, "c", partition, ());
    }
    assert_eq!(routed.shard_count(), 1);
    let not_leader = error_code::NOT_LEADER_OR_FOLLOWER;
    assert_eq!(
        routed.refused,
        vec![(1, not_leader), (2, not_leader), (3, not_leader)]
    );
    // Any replica: the followed partitions too, not the one held elsewhere.
    let mut routed = Routed::new(Need::AnyReplica);
    for partition in 0..4 {
        routed.push(&topics, "c", partition, ());
    }
    assert_eq!(routed.refused, vec![(2, not_leader)]);
}

/// Partition `partition` of `c` on `shard`: its role and leader epoch, if open there.
async fn open_on(shard: usize, partition: i32) -> Option<(crate::partitions::Role, i32)> {
    rt::run_on(shard, move || async move {
        shard::current()
            .partition(&TopicPartition::new("c", partition))
            .map(|p| (p.role(), p.leader_epoch()))
    })
    .await
    .expect("shard runs")
}

#[test]
fn an_installed_cluster_registry_opens_only_hosted_partitions_and_routes_by_leader() {
    use crate::partitions::Role;
    on_two_shards("install", None, || async {
        let installed = shard::install_from_metadata(|old| {
            let mut next = Topics::clone(old);
            next.by_name.extend(cluster_topics().by_name);
            next.metadata_offset = 7;
            Some(next)
        })
        .await;
        assert_eq!(installed, Ok(Some(vec![])));
        let state = shard::current();
        assert_eq!(state.topics().metadata_offset, 7);
        // Hosted partitions are open on their shards with the part the metadata gives; the
        // one held elsewhere has no log and no directory.
        assert_eq!(open_on(1, 0).await, Some((Role::Leader, 4)));
        assert_eq!(open_on(0, 1).await, Some((Role::Follower, 4)));
        assert_eq!(open_on(1, 3).await, Some((Role::Follower, 4)));
        assert_eq!((open_on(0, 2).await, open_on(1, 2).await), (None, None));
        assert!(state.data_dir.join("c-0").exists());
        assert!(!state.data_dir.join("c-2").exists());
        // Leader-only work reaches the partition led here and nothing else.
        let topics = state.topics();
        let mut routed = Routed::new(Need::Leader);
        for partition in 0..4 {
            routed.push(&topics, "c", partition, partition as u32);
        }
        let not_leader = error_code::NOT_LEADER_OR_FOLLOWER;
        assert_eq!(
            routed.scatter(seen_on_owner).await.gather().await,
            vec![
                Ok((0, 1, 0)),
                Err(not_leader),
                Err(not_leader),
                Err(not_leader)
            ]
        );
        // The lone broker's topic is untouched.
        assert_eq!(
            routed_all_of_t(&topics).await,
            vec![Ok((0, 1, 0)), Ok((1, 0, 1)), Ok((2, 1, 2)), Ok((3, 0, 3))]
        );
        // The metadata drops the topic: its logs close and its data goes.
        let removed = shard::install_from_metadata(|old| {
            let mut next = Topics::clone(old);
            next.by_name.remove("c");
            Some(next)
        })
        .await;
        assert_eq!(removed, Ok(Some(vec!["c".into()])));
        assert_eq!(open_on(1, 0).await, None);
        assert!(!state.data_dir.join("c-0").exists());
        // Nothing to change: nothing installed.
        assert_eq!(shard::install_from_metadata(|_| None).await, Ok(None));
    })
    .expect("runtime ends cleanly");
}

/// Every partition of `t`, leader-only work.
async fn routed_all_of_t(topics: &Topics) -> Vec<Result<Seen, ErrorCode>> {
    let mut routed = Routed::new(Need::Leader);
    for partition in 0..4 {
        routed.push(topics, "t", partition, partition as u32);
    }
    routed.scatter(seen_on_owner).await.gather().await
}
