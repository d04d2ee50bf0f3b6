//! The coordinator on a one-shard broker holding `__consumer_offsets` partition 0 (every
//! group's partition): what unloading the partition does to its groups, their waiters, a load
//! under way and later writes.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use runnel_engine::rt;

use super::*;
use crate::partitions::test_shard::on_one_shard;

async fn start_coordinator() -> Rc<Coordinator> {
    start(GroupsConfig::default()).await;
    current()
}

fn commit_entry(offset: i64) -> CommitEntry {
    CommitEntry {
        topic: OFFSETS_TOPIC.into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

/// Commits `offset` for group `group` outside group management; its error code.
async fn commit(coordinator: &Rc<Coordinator>, group: &str, offset: i64) -> i16 {
    let codes = coordinator
        .clone()
        .commit(
            0,
            group.into(),
            String::new(),
            None,
            -1,
            vec![commit_entry(offset)],
        )
        .await;
    codes[0]
}

fn committed(coordinator: &Coordinator, group: &str) -> i64 {
    coordinator
        .fetch_offsets(group, None, false)
        .first()
        .map_or(-1, |f| f.offset)
}

fn join_request() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        instance_id: None,
        require_known_member_id: false,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        supports_skip_assignment: true,
    }
}

fn offsets_log() -> runnel_engine::log::Log {
    shard::current()
        .partition(&TopicPartition::new(OFFSETS_TOPIC, 0))
        .expect("offsets partition open")
        .log()
        .clone()
}

#[test]
fn unloading_forgets_groups_answers_joins_and_loads_again_from_the_log() {
    on_one_shard("groups-unload", &[OFFSETS_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        assert_eq!(commit(&coordinator, "g", 42).await, ec::NONE);
        assert_eq!(committed(&coordinator, "g"), 42);
        // A first join waits out the initial rebalance delay (3 s).
        let joining = coordinator.clone();
        let join =
            rt::spawn_local(async move { joining.join(0, "joiners".into(), join_request()).await });
        rt::sleep(Duration::from_millis(20)).await;

        partition_lost(0);
        let answered = rt::timeout(Duration::from_secs(1), join)
            .await
            .expect("the join is answered at once");
        assert_eq!(answered.error, ec::NOT_COORDINATOR);
        assert!(!coordinator.is_loaded(0));
        assert_eq!(committed(&coordinator, "g"), -1, "forgotten here");
        assert!(coordinator.list().is_empty());
        // A write that still reaches the coordinator is refused, and nothing is written.
        let end = offsets_log().log_end_offset();
        assert_eq!(
            coordinator
                .append(0, vec![(b"k".to_vec(), None)], None)
                .await,
            Err(ec::NOT_COORDINATOR)
        );
        assert_eq!(offsets_log().log_end_offset(), end);

        // Leading again: the log brings the offsets back.
        coordinator.ensure_loaded(0).await.unwrap();
        assert_eq!(committed(&coordinator, "g"), 42);
    });
}

#[test]
fn a_load_under_way_when_the_partition_is_unloaded_keeps_nothing() {
    on_one_shard("groups-unload-loading", &[OFFSETS_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        assert_eq!(commit(&coordinator, "g", 7).await, ec::NONE);
        coordinator.unload_partition(0);

        let loading = coordinator.clone();
        let load = rt::spawn_local(async move { loading.ensure_loaded(0).await });
        let mut under_way = false;
        for _ in 0..1000 {
            rt::yield_now().await;
            if coordinator.loading.borrow().contains(&0) {
                under_way = true;
                break;
            }
        }
        assert!(under_way, "the load started and waits for its reads");
        coordinator.unload_partition(0);
        assert_eq!(load.await, Err(ec::NOT_COORDINATOR));
        assert!(!coordinator.is_loaded(0));
        assert_eq!(committed(&coordinator, "g"), -1, "nothing kept");
    });
}

#[test]
fn a_follower_log_is_not_loaded_and_refuses_commits() {
    on_one_shard("groups-follower", &[OFFSETS_TOPIC], || async {
        let coordinator = start_coordinator().await;
        coordinator.ensure_loaded(0).await.unwrap();
        // The commit is placed while leading; leadership goes before it is answered.
        offsets_log().set_follower(true);
        assert_eq!(commit(&coordinator, "g", 1).await, ec::NOT_COORDINATOR);
        partition_lost(0);
        assert_eq!(coordinator.ensure_loaded(0).await, Err(ec::NOT_COORDINATOR));
        offsets_log().set_follower(false);
        coordinator.ensure_loaded(0).await.unwrap();
        assert_eq!(
            committed(&coordinator, "g"),
            -1,
            "the refused commit left nothing"
        );
    });
}
