//! Topic decisions: placement balance, replication-factor and assignment errors, partitions
//! added, deletion, configs, and AlterPartition's fencing rules.

use std::collections::BTreeMap;

use super::super::codes::*;
use super::super::test_support::{topic_id, Harness};
use super::super::{AlterPartition, ControllerSettings, MetadataController};
use super::*;

fn new_topic(name: &str, assignment: Assignment) -> NewTopic {
    NewTopic {
        name: name.into(),
        assignment,
        configs: Vec::new(),
    }
}

fn auto(partitions: i32, replication_factor: i16) -> Assignment {
    Assignment::Auto {
        partitions,
        replication_factor,
    }
}

fn entropy(name: &str) -> Entropy {
    Entropy {
        topic_id: topic_id(name),
        placement_seed: 0,
    }
}

fn create_error(c: &MetadataController, name: &str, assignment: Assignment) -> i16 {
    c.create_topic(&new_topic(name, assignment), entropy(name))
        .expect_err("should be refused")
}

/// (leaders per broker, replicas per broker) of `name`.
fn counts(h: &Harness, name: &str) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
    let (mut leaders, mut replicas) = (BTreeMap::new(), BTreeMap::new());
    for p in &h.image().topic(name).unwrap().partitions {
        *leaders.entry(p.leader).or_default() += 1;
        for &r in &p.replicas {
            *replicas.entry(r).or_default() += 1;
        }
        assert_eq!(
            p.replicas[0], p.leader,
            "the preferred leader leads a new partition"
        );
        assert_eq!(p.isr, p.replicas);
    }
    (leaders, replicas)
}

#[test]
fn placement_spreads_leaders_and_replicas_evenly() {
    for brokers in [3, 5] {
        let mut first_leaders = std::collections::BTreeSet::new();
        for seed in 0..10u64 {
            let mut h = Harness::cluster(brokers);
            let partitions = 4 * brokers;
            h.create("t", partitions, 3, seed);
            let (leaders, replicas) = counts(&h, "t");
            let ids: Vec<i32> = (1..=brokers).collect();
            assert_eq!(leaders.keys().copied().collect::<Vec<_>>(), ids);
            assert!(
                leaders.values().all(|&n| n == 4),
                "{brokers} brokers, seed {seed}: {leaders:?}"
            );
            assert!(
                replicas.values().all(|&n| n == 12),
                "{brokers} brokers, seed {seed}: {replicas:?}"
            );
            first_leaders.insert(h.partition("t", 0).leader);
        }
        assert!(first_leaders.len() > 1, "the seed must move the start");
    }
    // Followers spread too: with 5 brokers no broker always follows the same leader.
    let mut h = Harness::cluster(5);
    h.create("t", 10, 2, 3);
    let followers: std::collections::BTreeSet<(i32, i32)> = (0..10)
        .map(|p| {
            let r = h.partition("t", p).replicas;
            (r[0], r[1])
        })
        .collect();
    assert_eq!(followers.len(), 10);
}

#[test]
fn replication_factor_rules() {
    let mut h = Harness::cluster(3);
    let c = &h.controller;
    assert_eq!(
        create_error(c, "t", auto(3, 4)),
        ec::INVALID_REPLICATION_FACTOR
    );
    assert_eq!(
        create_error(c, "t", auto(3, 0)),
        ec::INVALID_REPLICATION_FACTOR
    );
    assert_eq!(
        create_error(c, "t", auto(3, -2)),
        ec::INVALID_REPLICATION_FACTOR
    );
    assert_eq!(create_error(c, "t", auto(0, 1)), ec::INVALID_PARTITIONS);
    assert_eq!(create_error(c, "t", auto(-5, 1)), ec::INVALID_PARTITIONS);
    assert_eq!(
        create_error(c, "t", auto(i32::MAX, 1)),
        ec::INVALID_PARTITIONS
    );

    // Fenced brokers are not placed on: with broker 3 gone, 3 replicas are too many.
    h.heartbeats_except(5000, &[3]);
    h.tick(10_000);
    let c = &h.controller;
    assert_eq!(
        create_error(c, "t", auto(3, 3)),
        ec::INVALID_REPLICATION_FACTOR
    );
    h.create("t", 4, 2, 1);
    assert!(h.image().replicas_on(3).is_empty());
}

#[test]
fn defaults_and_internal_topics() {
    let settings = ControllerSettings {
        default_replication_factor: 2,
        default_partitions: 5,
        ..ControllerSettings::default()
    };
    let mut h = Harness::cluster_with(5, settings.clone());
    h.create("t", -1, -1, 0);
    let topic = h.image().topic("t").unwrap();
    assert_eq!(topic.partitions.len(), 5);
    assert!(topic.partitions.iter().all(|p| p.replicas.len() == 2));
    // min(3, live brokers).
    let three = 3;
    assert_eq!(h.controller.internal_replication_factor(), three);
    h.create("__consumer_offsets", 3, -1, 0);
    assert_eq!(
        h.partition("__consumer_offsets", 0).replicas.len(),
        three as usize
    );

    let mut small = Harness::cluster_with(2, settings);
    let two = 2;
    assert_eq!(small.controller.internal_replication_factor(), two);
    small.create("__transaction_state", 1, -1, 0);
    assert_eq!(
        small.partition("__transaction_state", 0).replicas.len(),
        two as usize
    );
}

#[test]
fn explicit_assignments_are_checked() {
    let mut h = Harness::cluster(3);
    let c = &h.controller;
    let manual = |a: &[&[i32]]| Assignment::Manual(a.iter().map(|r| r.to_vec()).collect());
    for bad in [
        manual(&[&[1, 9]]),
        manual(&[&[1, 1]]),
        manual(&[&[1, 2], &[3]]),
        manual(&[&[]]),
        manual(&[]),
    ] {
        assert_eq!(
            create_error(c, "t", bad.clone()),
            ec::INVALID_REPLICA_ASSIGNMENT,
            "{bad:?}"
        );
    }
    // Only fenced replicas: nobody could start the partition.
    h.heartbeats_except(5000, &[3]);
    h.tick(10_000);
    let c = &h.controller;
    assert_eq!(
        create_error(c, "t", manual(&[&[3]])),
        ec::INVALID_REPLICA_ASSIGNMENT
    );
    // A fenced replica is kept but starts outside the ISR; the first live one leads.
    h.create_manual("t", &[&[3, 2, 1], &[3, 1, 2]]);
    let p0 = h.partition("t", 0);
    assert_eq!(
        (p0.replicas, p0.isr, p0.leader),
        (vec![3, 2, 1], vec![2, 1], 2)
    );
    let p1 = h.partition("t", 1);
    assert_eq!((p1.isr, p1.leader), (vec![1, 2], 1));
}

#[test]
fn names_duplicates_and_configs() {
    let mut h = Harness::cluster(1);
    assert_eq!(
        create_error(&h.controller, "bad name", auto(1, 1)),
        ec::INVALID_TOPIC_EXCEPTION
    );
    let mut topic = new_topic("t", auto(1, 1));
    topic.configs = vec![("retention.ms".into(), "100".into())];
    let decision = h.controller.create_topic(&topic, entropy("t")).unwrap();
    assert!(decision.records.contains(&MetadataRecord::Config {
        resource: ConfigResource::Topic("t".into()),
        name: "retention.ms".into(),
        value: Some("100".into()),
    }));
    h.commit(&decision.records).unwrap();
    assert_eq!(
        create_error(&h.controller, "t", auto(1, 1)),
        ec::TOPIC_ALREADY_EXISTS
    );
    // A topic id already in use (or zero) is refused: the driver draws another.
    let mut e = entropy("t");
    assert_eq!(
        h.controller
            .create_topic(&new_topic("u", auto(1, 1)), e)
            .unwrap_err(),
        ec::INVALID_REQUEST
    );
    e.topic_id = [0; 16];
    assert_eq!(
        h.controller
            .create_topic(&new_topic("u", auto(1, 1)), e)
            .unwrap_err(),
        ec::INVALID_REQUEST
    );

    let resource = ConfigResource::Topic("t".into());
    let changes = [
        ("retention.ms".to_owned(), None),
        ("cleanup.policy".to_owned(), Some("compact".to_owned())),
    ];
    h.commit_ok(h.controller.alter_configs(&resource, &changes));
    let configs = h.image().configs(&resource).unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs["cleanup.policy"], "compact");
    let unknown = ConfigResource::Topic("nope".into());
    assert_eq!(
        h.controller.alter_configs(&unknown, &changes),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        h.controller
            .alter_configs(&ConfigResource::Broker(-1), &changes),
        Err(ec::INVALID_REQUEST)
    );
    h.commit_ok(
        h.controller
            .alter_configs(&ConfigResource::Cluster, &changes),
    );

    let id = h.commit_ok(h.controller.delete_topic("t"));
    assert_eq!(id, topic_id("t"));
    assert!(h.image().topic("t").is_none());
    assert!(h.image().configs(&resource).is_none());
    assert_eq!(
        h.controller.delete_topic("t"),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
}

#[test]
fn partitions_are_added_continuing_the_rotation() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 2, 4);
    h.commit_ok(h.controller.create_partitions("t", 6, None));
    let (leaders, replicas) = counts(&h, "t");
    assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
    assert!(replicas.values().all(|&n| n == 4), "{replicas:?}");
    assert!(h
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .iter()
        .all(|p| p.replicas.len() == 2));

    let c = &h.controller;
    assert_eq!(
        c.create_partitions("nope", 7, None),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        c.create_partitions("t", 6, None),
        Err(ec::INVALID_PARTITIONS)
    );
    assert_eq!(
        c.create_partitions("t", 2, None),
        Err(ec::INVALID_PARTITIONS)
    );
    assert_eq!(
        c.create_partitions("t", i32::MAX, None),
        Err(ec::INVALID_PARTITIONS)
    );
    let two = [vec![1, 2], vec![2, 3]];
    assert_eq!(
        c.create_partitions("t", 7, Some(&two)),
        Err(ec::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        c.create_partitions("t", 7, Some(&[vec![1]])),
        Err(ec::INVALID_REPLICA_ASSIGNMENT)
    );
    h.commit_ok(h.controller.create_partitions("t", 8, Some(&two)));
    assert_eq!(h.partition("t", 7).replicas, vec![2, 3]);
}

/// Topic "t", one partition, replicas 1,2,3 all in sync, led by 1.
fn partition_led_by_1() -> (Harness, AlterPartition) {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    let p = h.partition("t", 0);
    let request = AlterPartition {
        broker_id: 1,
        broker_epoch: h.epoch(1),
        topic_id: topic_id("t"),
        partition: 0,
        leader_epoch: p.leader_epoch,
        new_isr: vec![1, 2],
        partition_epoch: p.partition_epoch,
    };
    (h, request)
}

#[test]
fn alter_partition_changes_the_isr_for_the_current_leader() {
    let (mut h, request) = partition_led_by_1();
    let reply = h.commit_ok(h.controller.alter_partition(&request));
    let p = h.partition("t", 0);
    assert_eq!(p.isr, vec![1, 2]);
    assert_eq!(
        (reply.isr, reply.partition_epoch, reply.leader_epoch),
        (p.isr.clone(), p.partition_epoch, 0)
    );
    assert_eq!(p.leader_epoch, 0, "an ISR change keeps the leader epoch");

    // The same ISR again: nothing to write. The old partition epoch: refused.
    let mut same = request.clone();
    same.partition_epoch = p.partition_epoch;
    assert!(h
        .controller
        .alter_partition(&same)
        .unwrap()
        .records
        .is_empty());
    let mut expand = request.clone();
    expand.new_isr = vec![1, 2, 3];
    assert_eq!(
        h.controller.alter_partition(&expand),
        Err(INVALID_UPDATE_VERSION)
    );
    expand.partition_epoch = p.partition_epoch;
    h.commit_ok(h.controller.alter_partition(&expand));
    assert_eq!(h.partition("t", 0).isr, vec![1, 2, 3]);
}

#[test]
fn alter_partition_fencing_rules() {
    let (mut h, request) = partition_led_by_1();
    let c = &h.controller;
    let with = |f: &dyn Fn(&mut AlterPartition)| {
        let mut r = request.clone();
        f(&mut r);
        r
    };
    assert_eq!(
        c.alter_partition(&with(&|r| r.broker_epoch -= 1)),
        Err(STALE_BROKER_EPOCH)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.broker_id = 8)),
        Err(STALE_BROKER_EPOCH)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.topic_id = [1; 16])),
        Err(ec::UNKNOWN_TOPIC_ID)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.partition = 1)),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.leader_epoch += 1)),
        Err(ec::NOT_CONTROLLER)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.partition_epoch += 1)),
        Err(ec::NOT_CONTROLLER)
    );
    let follower = with(&|r| {
        r.broker_id = 2;
        r.broker_epoch = h.epoch(2);
    });
    assert_eq!(c.alter_partition(&follower), Err(ec::INVALID_REQUEST));
    assert_eq!(
        c.alter_partition(&with(&|r| r.new_isr = vec![2, 3])),
        Err(ec::INVALID_REQUEST)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.new_isr = vec![1, 4])),
        Err(ec::INVALID_REQUEST)
    );
    assert_eq!(
        c.alter_partition(&with(&|r| r.new_isr = vec![])),
        Err(ec::INVALID_REQUEST)
    );

    // Broker 3 is fenced: it cannot be put back into the ISR.
    h.heartbeats_except(5000, &[3]);
    h.tick(10_000);
    let p = h.partition("t", 0);
    assert_eq!(p.isr, vec![1, 2]);
    let mut expand = request.clone();
    expand.partition_epoch = p.partition_epoch;
    expand.new_isr = vec![1, 2, 3];
    assert_eq!(
        h.controller.alter_partition(&expand),
        Err(INELIGIBLE_REPLICA)
    );

    // Leadership moves to 2: the old leader's epoch is fenced.
    h.heartbeats_except(10_000 + 5000, &[1]);
    h.tick(15_001);
    assert_eq!(h.image().leader_of("t", 0), Some(2));
    let mut old_leader = request.clone();
    old_leader.partition_epoch = h.partition("t", 0).partition_epoch;
    assert_eq!(
        h.controller.alter_partition(&old_leader),
        Err(FENCED_LEADER_EPOCH)
    );
}
