//! ElectLeaders decisions and the automatic leader balance, step by step with explicit times.

use std::time::Duration;

use super::super::test_support::{Harness, SESSION_MS};
use super::super::ControllerSettings;
use super::*;

/// Brokers 1-3, and "t" with partition 0 on [1, 2, 3] and partition 1 on [2, 3, 1].
fn cluster_with(settings: ControllerSettings) -> Harness {
    let mut h = Harness::cluster_with(3, settings);
    h.create_manual("t", &[&[1, 2, 3], &[2, 3, 1]]);
    h
}

fn cluster() -> Harness {
    cluster_with(ControllerSettings::default())
}

/// Broker `id` asks to be fenced (its leaderships and ISR places move) at `ms`.
fn fence(h: &mut Harness, ms: u64, id: BrokerId) {
    let mut hb = h.beat(id);
    hb.want_fence = true;
    let now = h.at(ms);
    let outcome = h.controller.heartbeat(now, &hb);
    assert!(h.commit_ok(outcome).is_fenced);
}

/// Commits a change of a partition, as a leader's AlterPartition or the tick would.
fn change(
    h: &mut Harness,
    topic: &str,
    partition: i32,
    leader: Option<BrokerId>,
    isr: Option<&[BrokerId]>,
) {
    let p = h.partition(topic, partition);
    let record = MetadataRecord::PartitionChange(PartitionChange {
        topic_id: h.image().topic(topic).unwrap().id,
        partition,
        base_partition_epoch: p.partition_epoch,
        leader,
        isr: isr.map(<[BrokerId]>::to_vec),
        replicas: None,
        reassigning: None,
    });
    h.commit(&[record]).unwrap();
}

/// Broker 1 fails over and comes back into the ISR of partition 0, which 2 now leads.
fn failed_over(h: &mut Harness) {
    fence(h, 10, 1);
    assert!(!h.heartbeat(20, 1).is_fenced);
    assert_eq!(h.partition("t", 0).leader, 2);
    change(h, "t", 0, None, Some(&[2, 3, 1]));
}

fn request(election_type: i8, partitions: &[(&str, &[i32])]) -> ElectLeaders {
    ElectLeaders {
        election_type,
        partitions: Some(
            partitions
                .iter()
                .map(|(t, ps)| (t.to_string(), ps.to_vec()))
                .collect(),
        ),
    }
}

fn all(election_type: i8) -> ElectLeaders {
    ElectLeaders {
        election_type,
        partitions: None,
    }
}

#[test]
fn a_preferred_replica_already_leading_needs_no_election() {
    let h = cluster();
    let d = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0, 1])]))
        .unwrap();
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply,
        vec![(
            "t".to_string(),
            vec![
                (0, codes::ELECTION_NOT_NEEDED),
                (1, codes::ELECTION_NOT_NEEDED)
            ]
        )]
    );
}

#[test]
fn the_preferred_replica_leads_again_with_a_new_leader_epoch() {
    let mut h = cluster();
    failed_over(&mut h);
    let before = h.partition("t", 0);
    let outcome = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0, 1])]));
    let reply = h.commit_ok(outcome);
    assert_eq!(
        reply,
        vec![(
            "t".to_string(),
            vec![(0, ec::NONE), (1, codes::ELECTION_NOT_NEEDED)]
        )]
    );
    let after = h.partition("t", 0);
    assert_eq!(after.leader, 1);
    assert_eq!(after.isr, before.isr, "the ISR is unchanged");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    // Asked again: nothing to do.
    let again = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0])]))
        .unwrap();
    assert!(again.records.is_empty());
    assert_eq!(again.reply[0].1, vec![(0, codes::ELECTION_NOT_NEEDED)]);
}

#[test]
fn a_preferred_replica_out_of_the_isr_or_not_live_is_not_available() {
    let mut h = cluster();
    fence(&mut h, 10, 1);
    // Fenced (and out of the ISR).
    let d = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0])]))
        .unwrap();
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply[0].1,
        vec![(0, codes::PREFERRED_LEADER_NOT_AVAILABLE)]
    );
    // Live again but not caught up (not back in the ISR).
    assert!(!h.heartbeat(20, 1).is_fenced);
    let d = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0])]))
        .unwrap();
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply[0].1,
        vec![(0, codes::PREFERRED_LEADER_NOT_AVAILABLE)]
    );
    // In the ISR but shutting down: not live either.
    change(&mut h, "t", 0, None, Some(&[2, 3, 1]));
    let mut hb = h.beat(1);
    hb.want_shutdown = true;
    let outcome = h.controller.heartbeat(h.at(30), &hb);
    h.commit_ok(outcome);
    let d = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0])]))
        .unwrap();
    assert_eq!(
        d.reply[0].1,
        vec![(0, codes::PREFERRED_LEADER_NOT_AVAILABLE)]
    );
}

#[test]
fn unknown_topics_partitions_and_election_types() {
    let mut h = cluster();
    failed_over(&mut h);
    let d = h
        .controller
        .elect_leaders(&request(
            PREFERRED,
            &[("nope", &[0]), ("t", &[-1, 2, 0]), ("t", &[0])],
        ))
        .unwrap();
    assert_eq!(d.records.len(), 1, "partition 0 once, though named twice");
    assert_eq!(
        d.reply,
        vec![
            (
                "nope".to_string(),
                vec![(0, ec::UNKNOWN_TOPIC_OR_PARTITION)]
            ),
            (
                "t".to_string(),
                vec![
                    (-1, ec::UNKNOWN_TOPIC_OR_PARTITION),
                    (2, ec::UNKNOWN_TOPIC_OR_PARTITION),
                    (0, ec::NONE)
                ]
            ),
        ]
    );
    h.commit(&d.records).unwrap();
    for bad in [2, -1, i8::MAX] {
        assert_eq!(
            h.controller
                .elect_leaders(&request(bad, &[("t", &[0])]))
                .map(|d| d.reply),
            Err(ec::INVALID_REQUEST)
        );
    }
}

#[test]
fn no_partitions_named_means_every_partition_that_needs_an_election() {
    let mut h = cluster();
    h.create_manual("u", &[&[3, 1, 2]]);
    let d = h.controller.elect_leaders(&all(PREFERRED)).unwrap();
    assert!(d.records.is_empty() && d.reply.is_empty());
    failed_over(&mut h);
    // Broker 1 is back in the ISR of t-0 only: u-0 stays with 3 (which it prefers anyway).
    let outcome = h.controller.elect_leaders(&all(PREFERRED));
    let reply = h.commit_ok(outcome);
    assert_eq!(reply, vec![("t".to_string(), vec![(0, ec::NONE)])]);
    assert_eq!(h.partition("t", 0).leader, 1);
    // Not live, not in the ISR: listed with its error.
    fence(&mut h, 30, 2);
    assert_eq!(h.partition("t", 1).leader, 3);
    let d = h.controller.elect_leaders(&all(PREFERRED)).unwrap();
    assert_eq!(
        d.reply,
        vec![(
            "t".to_string(),
            vec![(1, codes::PREFERRED_LEADER_NOT_AVAILABLE)]
        )]
    );
}

#[test]
fn unclean_elects_only_for_a_leaderless_partition() {
    let mut h = cluster();
    // With a live leader: nothing to do.
    let d = h
        .controller
        .elect_leaders(&request(UNCLEAN, &[("t", &[0])]))
        .unwrap();
    assert!(d.records.is_empty());
    assert_eq!(d.reply[0].1, vec![(0, codes::ELECTION_NOT_NEEDED)]);

    // Only 1 is in sync, and it dies: the partition is leaderless, its ISR [1].
    change(&mut h, "t", 0, None, Some(&[1]));
    fence(&mut h, 10, 1);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    // A preferred election cannot help.
    let d = h
        .controller
        .elect_leaders(&request(PREFERRED, &[("t", &[0])]))
        .unwrap();
    assert_eq!(
        d.reply[0].1,
        vec![(0, codes::PREFERRED_LEADER_NOT_AVAILABLE)]
    );

    // An unclean one elects the first live replica, out of sync; its ISR is just itself.
    let outcome = h
        .controller
        .elect_leaders(&request(UNCLEAN, &[("t", &[0])]));
    assert_eq!(h.commit_ok(outcome)[0].1, vec![(0, ec::NONE)]);
    let after = h.partition("t", 0);
    assert_eq!((after.leader, after.isr.clone()), (2, vec![2]));
    assert_eq!(after.leader_epoch, p.leader_epoch + 1);
    // The periodic tick leaves it so.
    assert_eq!(h.tick(40), 0);
}

#[test]
fn unclean_prefers_a_live_isr_member_and_needs_a_live_replica() {
    let mut h = cluster();
    // Leaderless with a live ISR member (a lost proposal the tick has not repaired yet).
    change(&mut h, "t", 0, Some(NO_LEADER), None);
    let outcome = h
        .controller
        .elect_leaders(&request(UNCLEAN, &[("t", &[0])]));
    assert_eq!(h.commit_ok(outcome)[0].1, vec![(0, ec::NONE)]);
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));

    // Every replica fenced: no one to elect.
    for (ms, id) in [(10, 1), (20, 2), (30, 3)] {
        fence(&mut h, ms, id);
    }
    assert_eq!(h.partition("t", 0).leader, NO_LEADER);
    let d = h.controller.elect_leaders(&all(UNCLEAN)).unwrap();
    assert!(d.records.is_empty());
    assert_eq!(
        d.reply,
        vec![(
            "t".to_string(),
            vec![
                (0, codes::ELIGIBLE_LEADERS_NOT_AVAILABLE),
                (1, codes::ELIGIBLE_LEADERS_NOT_AVAILABLE)
            ]
        )]
    );
}

fn balancing(percentage: u32) -> ControllerSettings {
    ControllerSettings {
        leader_imbalance_check_interval: Duration::from_millis(1000),
        leader_imbalance_per_broker_percentage: percentage,
        ..ControllerSettings::default()
    }
}

#[test]
fn the_balance_check_runs_every_interval_and_elects_preferred_replicas() {
    let mut h = cluster_with(balancing(10));
    // The first tick schedules the first check an interval later.
    assert_eq!(h.tick(5), 0);
    failed_over(&mut h);
    assert_eq!(h.tick(500), 0, "not due yet");
    assert_eq!(h.tick(1005), 1);
    assert_eq!(h.partition("t", 0).leader, 1);
    // Balanced: later checks find nothing.
    assert_eq!(h.tick(2005), 0);
    assert_eq!(h.tick(3005), 0);

    // Broker 1 fails over again; the next check is due at 4005.
    fence(&mut h, 3100, 1);
    assert!(!h.heartbeat(3200, 1).is_fenced);
    assert_eq!(h.tick(3300), 0);
    assert_eq!(h.tick(4005), 0, "not back in the ISR: nothing to elect");
    change(&mut h, "t", 0, None, Some(&[2, 3, 1]));
    assert_eq!(h.tick(4500), 0, "checked at 4005; next at 5005");
    assert_eq!(h.tick(5005), 1);
    assert_eq!(h.partition("t", 0).leader, 1);
}

#[test]
fn the_balance_waits_for_a_tick_without_liveness_changes() {
    let mut h = cluster_with(balancing(10));
    assert_eq!(h.tick(0), 0);
    failed_over(&mut h);
    // Broker 3's session ends as the check falls due: the fencing goes alone.
    h.heartbeats_except(1000, &[3]);
    let records = h.controller.tick(h.at(SESSION_MS + 1));
    assert!(
        records
            .iter()
            .all(|r| !matches!(r, MetadataRecord::PartitionChange(c) if c.leader == Some(1))),
        "{records:?}"
    );
    assert!(records
        .iter()
        .any(|r| matches!(r, MetadataRecord::FenceBroker { broker_id: 3, .. })));
    h.commit(&records).unwrap();
    assert_eq!(h.partition("t", 0).leader, 2);
    // The next tick, with nothing else to do, balances.
    h.heartbeats_except(SESSION_MS + 2, &[]);
    assert_eq!(h.tick(SESSION_MS + 3), 1);
    assert_eq!(h.partition("t", 0).leader, 1);
}

#[test]
fn the_balance_respects_the_percentage_and_the_switch() {
    let mut h = cluster_with(balancing(50));
    h.create_manual("u", &[&[1, 2, 3]]);
    assert_eq!(h.tick(0), 0);
    failed_over(&mut h);
    assert_eq!(h.partition("u", 0).leader, 2, "u-0 moved too");
    // Broker 1 prefers two partitions and leads neither (100%): elected where it is in sync.
    assert_eq!(h.tick(1000), 1);
    assert_eq!(h.partition("t", 0).leader, 1);
    assert_eq!(h.partition("u", 0).leader, 2);
    // Back in u-0's ISR, but leading one of two (50%) is not above 50%.
    change(&mut h, "u", 0, None, Some(&[2, 3, 1]));
    assert_eq!(h.tick(2000), 0);
    assert_eq!(h.partition("u", 0).leader, 2);

    // Switched off: never.
    let mut h = cluster_with(ControllerSettings {
        auto_leader_rebalance: false,
        ..balancing(10)
    });
    assert_eq!(h.tick(0), 0);
    failed_over(&mut h);
    for ms in [1000, 2000, 5000] {
        assert_eq!(h.tick(ms), 0);
    }
    assert_eq!(h.partition("t", 0).leader, 2);
}
