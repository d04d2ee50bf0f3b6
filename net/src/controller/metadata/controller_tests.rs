//! Broker lifecycle decisions driven step by step with explicit times: registration, heartbeats,
//! session expiry, controlled shutdown, producer ids, and a controller failover.

use super::super::test_support::{Harness, SESSION_MS};
use super::super::{AlterPartition, ApplyError, MetadataImage};
use super::codes::*;
use super::*;

#[test]
fn registration_epochs_and_incarnations() {
    let mut h = Harness::new();
    let epoch = h.register(0, 1, 1);
    assert_eq!(
        epoch, h.offset as i64,
        "the epoch is the offset of the registration"
    );
    let b = h.image().broker(1).unwrap();
    assert!(b.fenced, "a broker starts fenced");

    // The same incarnation again is a retry: nothing to propose, same epoch.
    let retry = h
        .controller
        .register_broker(h.at(100), &Harness::registration(1, 1))
        .unwrap();
    assert!(retry.records.is_empty());
    assert_eq!(h.controller.registered_epoch(1, [1; 16]), Some(epoch));

    // A fenced old incarnation is replaced at once, with a newer epoch.
    let second = h.register(200, 1, 2);
    assert!(second > epoch);
    assert_eq!(h.controller.registered_epoch(1, [1; 16]), None);

    // Unfenced and heartbeating: a second process with the same id is refused...
    assert!(!h.heartbeat(300, 1).is_fenced);
    let third = Harness::registration(1, 3);
    assert_eq!(
        h.controller.register_broker(h.at(5000), &third),
        Err(DUPLICATE_BROKER_REGISTRATION)
    );
    // ...until the session has expired.
    let third_epoch = h.register(300 + SESSION_MS + 1, 1, 3);
    assert!(third_epoch > second);
    assert!(h.image().broker(1).unwrap().fenced);

    // The old epoch and unknown brokers are refused.
    let mut hb = h.beat(1);
    hb.broker_epoch = second;
    assert_eq!(
        h.controller.heartbeat(h.at(1), &hb),
        Err(STALE_BROKER_EPOCH)
    );
    hb.broker_id = 9;
    assert_eq!(
        h.controller.heartbeat(h.at(1), &hb),
        Err(BROKER_ID_NOT_REGISTERED)
    );
    let mut bad = Harness::registration(2, 1);
    bad.listeners.clear();
    assert_eq!(
        h.controller.register_broker(h.at(1), &bad),
        Err(ec::INVALID_REQUEST)
    );
}

#[test]
fn a_new_incarnation_takes_the_old_one_out_of_leadership() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 3, 0);
    let led_by_1 = h.image().partitions_led_by(1).len();
    assert_eq!(led_by_1, 1);
    // Broker 1 crashes and restarts after its session expired but before a tick fenced it.
    h.heartbeats_except(SESSION_MS, &[1]);
    h.register(SESSION_MS + 1, 1, 2);
    assert!(h.image().partitions_led_by(1).is_empty());
    assert!(h.image().replicas_on(1).len() == 3, "still a replica");
    for p in 0..3 {
        assert!(!h.partition("t", p).isr.contains(&1));
    }
}

#[test]
fn a_heartbeat_unfences_only_a_caught_up_broker_that_asks() {
    let mut h = Harness::new();
    let epoch = h.register(0, 1, 1);
    let mut hb = h.beat(1);
    hb.current_metadata_offset = epoch - 1;
    let d = h.controller.heartbeat(h.at(10), &hb).unwrap();
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply,
        HeartbeatReply {
            is_fenced: true,
            is_caught_up: false,
            should_shutdown: false
        }
    );
    hb.current_metadata_offset = epoch;
    hb.want_fence = true;
    let d = h.controller.heartbeat(h.at(20), &hb).unwrap();
    assert!(d.records.is_empty() && d.reply.is_fenced && d.reply.is_caught_up);

    hb.want_fence = false;
    let d = h.controller.heartbeat(h.at(30), &hb).unwrap();
    assert_eq!(
        d.records,
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 1,
            epoch
        }]
    );
    assert!(!d.reply.is_fenced);
    h.commit(&d.records).unwrap();
    assert_eq!(h.image().live_brokers(), vec![1]);

    // An unfenced broker asking to be fenced is fenced.
    let mut hb = h.beat(1);
    hb.want_fence = true;
    let now = h.at(40);
    let outcome = h.controller.heartbeat(now, &hb);
    let reply = h.commit_ok(outcome);
    assert!(reply.is_fenced && h.image().broker(1).unwrap().fenced);
}

#[test]
fn session_expiry_fences_and_moves_leadership() {
    let mut h = Harness::cluster(3);
    h.create("t", 6, 3, 0);
    let led = h.image().partitions_led_by(3);
    assert_eq!(led.len(), 2);
    let before: Vec<_> = (0..6).map(|p| h.partition("t", p)).collect();

    h.heartbeats_except(5000, &[3]);
    assert_eq!(h.tick(SESSION_MS), 0, "not expired at exactly the timeout");
    assert_eq!(
        h.tick(SESSION_MS + 1),
        7,
        "six partition changes and the fence"
    );
    let b3 = h.image().broker(3).unwrap();
    assert!(b3.fenced);
    assert!(h.image().partitions_led_by(3).is_empty());
    for (p, old) in (0..6).zip(before) {
        let now = h.partition("t", p);
        assert!(!now.isr.contains(&3), "fenced broker left the ISR of {p}");
        assert_eq!(now.partition_epoch, old.partition_epoch + 1);
        if old.leader == 3 {
            // The first replica in replica order that is live and in the ISR.
            let expected = old.replicas.iter().copied().find(|&r| r != 3).unwrap();
            assert_eq!(now.leader, expected);
            assert_eq!(now.leader_epoch, old.leader_epoch + 1);
        } else {
            assert_eq!(
                (now.leader, now.leader_epoch),
                (old.leader, old.leader_epoch)
            );
        }
    }
    // Nothing more to do: no churn.
    assert_eq!(h.tick(SESSION_MS + 2), 0);
    // Brokers 1 and 2 heartbeat in time and stay.
    h.heartbeats_except(SESSION_MS + 4000, &[]);
    assert_eq!(h.tick(SESSION_MS + 5000 + 4000), 0);
}

#[test]
fn no_unclean_election_and_the_last_isr_member_leads_again() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    // The leader shrinks the ISR to itself (followers fell behind), then goes silent.
    last_isr_member_lost(&mut h, &["t"]);
    let p = h.partition("t", 0);
    assert_eq!(
        p.leader, NO_LEADER,
        "out-of-sync replicas 2 and 3 must not lead"
    );
    assert_eq!(p.isr, vec![1], "the last ISR member stays");
    assert_eq!(h.image().leader_of("t", 0), None);
    assert_eq!(h.tick(SESSION_MS + 2), 0, "still nobody to elect");

    // Broker 1 comes back and leads again, in the same entry as its unfencing.
    let reply = h.heartbeat(SESSION_MS + 100, 1);
    assert!(!reply.is_fenced);
    let again = h.partition("t", 0);
    assert_eq!(again.leader, 1);
    assert_eq!(again.leader_epoch, p.leader_epoch + 1);
}

/// The ISR of partition 0 of each of `topics` shrinks to its leader, broker 1, which then goes
/// silent and is fenced at `SESSION_MS + 1`, leaving them leaderless.
fn last_isr_member_lost(h: &mut Harness, topics: &[&str]) {
    for topic in topics {
        let topic_id = h.image().topic(topic).unwrap().id;
        let p = h.partition(topic, 0);
        let shrink = AlterPartition {
            broker_id: 1,
            broker_epoch: h.epoch(1),
            topic_id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            new_isr: vec![1],
            partition_epoch: p.partition_epoch,
        };
        h.commit_ok(h.controller.alter_partition(&shrink));
    }
    h.heartbeats_except(5000, &[1]);
    assert_eq!(
        h.tick(SESSION_MS + 1),
        topics.len() + 1,
        "leaders gone, and the fence"
    );
    for topic in topics {
        assert_eq!(h.partition(topic, 0).leader, NO_LEADER);
    }
}

fn set_config(h: &mut Harness, resource: ConfigResource, name: &str, value: &str) {
    let record = MetadataRecord::Config {
        resource,
        name: name.into(),
        value: Some(value.into()),
    };
    h.commit(&[record]).unwrap();
}

#[test]
fn a_topic_allowing_unclean_elections_gets_an_out_of_sync_leader() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    h.create_manual("strict", &[&[1, 2, 3]]);
    set_config(
        &mut h,
        ConfigResource::Topic("t".into()),
        "unclean.leader.election.enable",
        "true",
    );
    last_isr_member_lost(&mut h, &["t", "strict"]);
    // The next tick elects broker 2, the first live replica, with only itself in sync.
    assert_eq!(h.tick(SESSION_MS + 2), 1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert_eq!(h.tick(SESSION_MS + 3), 0);
    // "strict" did not consent: still leaderless, waiting for broker 1.
    assert_eq!(h.partition("strict", 0).leader, NO_LEADER);
}

#[test]
fn the_cluster_default_allows_unclean_elections_unless_the_topic_refuses() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    set_config(
        &mut h,
        ConfigResource::Cluster,
        "unclean.leader.election.enable",
        "true",
    );
    set_config(
        &mut h,
        ConfigResource::Topic("t".into()),
        "unclean.leader.election.enable",
        "false",
    );
    last_isr_member_lost(&mut h, &["t"]);
    assert_eq!(h.tick(SESSION_MS + 2), 0, "the topic's own config wins");
    set_config(
        &mut h,
        ConfigResource::Topic("t".into()),
        "unclean.leader.election.enable",
        "TRUE",
    );
    assert_eq!(h.tick(SESSION_MS + 3), 1);
    assert_eq!(h.partition("t", 0).leader, 2);
}

#[test]
fn brokers_expiring_together_all_stay_in_the_isr_and_the_first_back_leads() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    let p = h.partition("t", 0);
    let shrink = AlterPartition {
        broker_id: 1,
        broker_epoch: h.epoch(1),
        topic_id: h.image().topic("t").unwrap().id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        new_isr: vec![1, 2],
        partition_epoch: p.partition_epoch,
    };
    h.commit_ok(h.controller.alter_partition(&shrink));
    h.heartbeats_except(5000, &[1, 2]);
    assert_eq!(
        h.tick(SESSION_MS + 1),
        3,
        "one change and two fences, in one entry"
    );
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![1, 2]));
    // Broker 2 returns first: it leads, and broker 1, still fenced, leaves the ISR.
    h.heartbeat(SESSION_MS + 100, 2);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr), (2, vec![2]));
}

#[test]
fn lost_or_repeated_proposals_are_re_derived_and_harmless() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 3, 0);
    h.heartbeats_except(5000, &[2]);
    let lost = h.controller.tick(h.at(SESSION_MS + 1));
    assert!(!lost.is_empty());
    // The proposal was lost: the next tick derives the same entry.
    let again = h.controller.tick(h.at(SESSION_MS + 2));
    assert_eq!(again, lost);
    h.commit(&again).unwrap();
    // A duplicate that also committed is refused whole and changes nothing.
    let image = h.image().clone();
    assert!(matches!(
        h.commit(&lost),
        Err(ApplyError::StalePartitionEpoch { .. })
    ));
    let mut after = h.image().clone();
    assert_eq!(after.apply_batch(h.offset, &[]), Ok(()));
    assert_eq!(
        after.to_records(),
        image.to_records(),
        "a refused duplicate must not change the image"
    );
    assert_eq!(
        h.controller.tick(h.at(SESSION_MS + 3)),
        Vec::<MetadataRecord>::new()
    );
}

#[test]
fn tick_repairs_a_leader_left_on_a_fenced_broker() {
    // An image where broker 2 was fenced without its leadership moving (e.g. written by a
    // controller with another rule): the next tick repairs it.
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[2, 3, 1]]);
    let fence = MetadataRecord::FenceBroker {
        broker_id: 2,
        epoch: h.epoch(2),
    };
    h.commit(&[fence]).unwrap();
    assert_eq!(h.image().leader_of("t", 0), Some(2));
    let records = h.controller.tick(h.at(1000));
    assert_eq!(records.len(), 1);
    h.commit(&records).unwrap();
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr), (3, vec![3, 1]));
}

#[test]
fn controlled_shutdown_moves_leadership_then_lets_the_broker_go() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 3, 0);
    h.create_manual("solo", &[&[1]]);
    assert_eq!(h.image().partitions_led_by(1).len(), 2);

    let mut hb = h.beat(1);
    hb.want_shutdown = true;
    let d = h.controller.heartbeat(h.at(100), &hb).unwrap();
    assert!(!d.reply.should_shutdown && !d.reply.is_fenced);
    assert!(d.records.contains(&MetadataRecord::BrokerShutdown {
        broker_id: 1,
        epoch: h.epoch(1)
    }));
    // The entry is lost; the next heartbeat derives it again.
    let d = h.controller.heartbeat(h.at(200), &hb).unwrap();
    h.commit(&d.records).unwrap();
    assert!(h.image().broker(1).unwrap().in_controlled_shutdown);
    assert!(h.image().partitions_led_by(1).is_empty());
    assert_eq!(h.image().live_brokers(), vec![2, 3]);
    assert_eq!(h.partition("solo", 0).isr, vec![1], "last member kept");
    for p in 0..3 {
        assert!(!h.partition("t", p).isr.contains(&1));
    }
    // A topic created now avoids the broker that is shutting down.
    h.create("later", 4, 2, 0);
    assert!(h
        .image()
        .replicas_on(1)
        .iter()
        .all(|(id, _)| *id != h.image().topic("later").unwrap().id));

    let d = h.controller.heartbeat(h.at(300), &hb).unwrap();
    assert!(d.reply.should_shutdown && d.reply.is_fenced);
    assert_eq!(
        d.records,
        vec![MetadataRecord::FenceBroker {
            broker_id: 1,
            epoch: h.epoch(1)
        }]
    );
    h.commit(&d.records).unwrap();
    // Later heartbeats keep saying so; it can't be unfenced.
    hb.want_shutdown = false;
    let d = h.controller.heartbeat(h.at(400), &hb).unwrap();
    assert!(d.records.is_empty() && d.reply.should_shutdown);
}

#[test]
fn controlled_shutdown_waits_while_the_broker_still_leads() {
    let mut h = Harness::cluster(2);
    h.create_manual("t", &[&[1, 2]]);
    // The shutdown record committed but its moves did not (as if written alone).
    let shutdown = MetadataRecord::BrokerShutdown {
        broker_id: 1,
        epoch: h.epoch(1),
    };
    h.commit(&[shutdown]).unwrap();
    let mut hb = h.beat(1);
    hb.want_shutdown = true;
    let d = h.controller.heartbeat(h.at(100), &hb).unwrap();
    assert!(!d.reply.should_shutdown);
    assert!(!d.records.is_empty());
    h.commit(&d.records).unwrap();
    assert_eq!(h.image().leader_of("t", 0), Some(2));
    let d = h.controller.heartbeat(h.at(200), &hb).unwrap();
    assert!(d.reply.should_shutdown);
}

#[test]
fn a_fenced_broker_asking_to_shut_down_may_go_at_once() {
    let mut h = Harness::new();
    h.register(0, 1, 1);
    let mut hb = h.beat(1);
    hb.want_shutdown = true;
    let d = h.controller.heartbeat(h.at(1), &hb).unwrap();
    assert!(d.records.is_empty() && d.reply.should_shutdown);
}

/// Every block handed out (committed) so far, checked for overlaps.
fn assert_disjoint(blocks: &[ProducerIdBlock]) {
    let mut sorted = blocks.to_vec();
    sorted.sort_by_key(|b| b.first);
    for pair in sorted.windows(2) {
        assert!(
            pair[0].first + pair[0].count <= pair[1].first,
            "{pair:?} overlap"
        );
    }
}

#[test]
fn producer_id_blocks_never_overlap_even_across_failover() {
    let mut h = Harness::cluster(3);
    let mut blocks = Vec::new();
    for round in 0..3 {
        for id in 1..=3 {
            let block = h.commit_ok(h.controller.allocate_producer_ids(id, h.epoch(id)));
            assert_eq!(block.count, PRODUCER_ID_BLOCK_SIZE);
            blocks.push(block);
        }
        assert_eq!(h.image().next_producer_id(), 3000 * (round + 1));
    }
    // Two requests decided from the same image: only the first to commit is handed out.
    let a = h.controller.allocate_producer_ids(1, h.epoch(1)).unwrap();
    let b = h.controller.allocate_producer_ids(2, h.epoch(2)).unwrap();
    assert_eq!(a.reply, b.reply);
    h.commit(&a.records).unwrap();
    blocks.push(a.reply);
    assert!(
        h.commit(&b.records).is_err(),
        "the second must not be handed out"
    );
    let b = h.commit_ok(h.controller.allocate_producer_ids(2, h.epoch(2)));
    blocks.push(b);

    // Failover: a new controller from a snapshot of the image only.
    let image = MetadataImage::from_snapshot_bytes(&h.image().snapshot_bytes()).unwrap();
    h.controller = MetadataController::new(image, ControllerSettings::default());
    for id in 1..=3 {
        blocks.push(h.commit_ok(h.controller.allocate_producer_ids(id, h.epoch(id))));
    }
    assert_disjoint(&blocks);
    assert_eq!(blocks.len(), 14);

    assert_eq!(
        h.controller.allocate_producer_ids(1, h.epoch(1) - 1),
        Err(STALE_BROKER_EPOCH)
    );
    assert_eq!(
        h.controller.allocate_producer_ids(7, 1),
        Err(BROKER_ID_NOT_REGISTERED)
    );
}

#[test]
fn after_failover_every_broker_gets_a_fresh_session() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 3, 0);
    // Nobody has heartbeated since time 0 when the new controller takes over at 20 s.
    let image = h.image().clone();
    h.controller = MetadataController::new(image, ControllerSettings::default());
    let takeover = 20_000;
    assert_eq!(
        h.tick(takeover),
        0,
        "no broker is fenced for the old controller's silence"
    );
    h.heartbeats_except(takeover + 5000, &[3]);
    assert_eq!(h.tick(takeover + SESSION_MS), 0);
    assert_eq!(h.tick(takeover + SESSION_MS + 1), 4);
    assert_eq!(h.image().live_brokers(), vec![1, 2]);
}

#[test]
fn a_broker_whose_listener_refuses_is_fenced_at_the_next_tick_unless_heard_from_after() {
    let mut h = Harness::cluster(3);
    h.create("t", 3, 3, 0);
    h.heartbeats_except(1000, &[]);
    // Broker 3's last heartbeat is handled after a first refusal (it was sent before the
    // process died): that refusal is not enough...
    h.controller.peer_refused(3, h.at(1000));
    h.heartbeats_except(1010, &[1, 2]);
    assert_eq!(h.tick(1020), 0, "heard from after that refusal");
    // ...a later one is, well within the session timeout.
    h.controller.peer_refused(3, h.at(1100));
    assert_eq!(h.tick(1120), 4, "three ISR shrinks and the fence");
    assert!(h.image().broker(3).unwrap().fenced);
    assert_eq!(h.image().live_brokers(), vec![1, 2]);
}
