//! Reassignments driven step by step: started, caught up through the leader's ISR changes,
//! completed by the tick, replaced, cancelled, and refused.

use super::super::test_support::{Harness, SESSION_MS};
use super::super::{AlterPartition, MetadataImage};
use super::*;

/// Moves partition 0 of "t" to `target` (`None` cancels) and commits it; the error otherwise.
fn reassign(h: &mut Harness, target: Option<&[BrokerId]>) -> Result<(), i16> {
    let outcome = h.controller.alter_reassignment("t", 0, target, true);
    let decision = outcome?;
    h.commit(&decision.records).expect("reassignment applies");
    Ok(())
}

/// The leader of partition 0 of "t" sets its ISR to `isr`, as it does once followers catch up.
fn leader_sets_isr(h: &mut Harness, isr: &[BrokerId]) {
    let p = h.partition("t", 0);
    let request = AlterPartition {
        broker_id: p.leader,
        broker_epoch: h.epoch(p.leader),
        topic_id: h.image().topic("t").unwrap().id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        new_isr: isr.to_vec(),
        partition_epoch: p.partition_epoch,
    };
    let outcome = h.controller.alter_partition(&request);
    h.commit_ok(outcome);
}

fn reassigning(adding: &[BrokerId], removing: &[BrokerId]) -> Reassigning {
    Reassigning {
        adding: adding.to_vec(),
        removing: removing.to_vec(),
    }
}

#[test]
fn a_move_keeps_the_old_replicas_until_the_new_ones_are_in_sync() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1, 2, 3]]);
    reassign(&mut h, Some(&[2, 3, 4])).unwrap();
    let p = h.partition("t", 0);
    assert_eq!(
        p.replicas,
        vec![2, 3, 4, 1],
        "the target, then what it removes"
    );
    assert_eq!(p.reassigning, reassigning(&[4], &[1]));
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    assert_eq!(
        h.controller.reassignments(None),
        vec![OngoingReassignment {
            topic: "t".into(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            reassigning: reassigning(&[4], &[1]),
        }]
    );

    // Broker 4 has not caught up: nothing completes.
    assert_eq!(h.tick(100), 0);
    leader_sets_isr(&mut h, &[1, 2, 3, 4]);
    let before = h.partition("t", 0);
    assert_eq!(h.tick(200), 1, "one change completes it");
    let p = h.partition("t", 0);
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert_eq!(
        p.leader, 2,
        "the removed leader hands over to the first target replica"
    );
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert!(!p.reassigning.in_progress());
    assert!(h.controller.reassignments(None).is_empty());
    assert_eq!(h.tick(300), 0, "nothing more to do");
}

#[test]
fn a_leader_the_target_keeps_stays_leader() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1, 2, 3]]);
    reassign(&mut h, Some(&[4, 1, 2])).unwrap();
    leader_sets_isr(&mut h, &[1, 2, 3, 4]);
    let before = h.partition("t", 0);
    assert_eq!(h.tick(100), 1);
    let p = h.partition("t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone()),
        (vec![4, 1, 2], vec![1, 2, 4])
    );
    assert_eq!((p.leader, p.leader_epoch), (1, before.leader_epoch));
}

#[test]
fn a_target_already_in_sync_completes_at_once() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2, 3]]);
    // Fewer replicas: only removing, the kept ones are in sync.
    assert_eq!(
        h.controller
            .alter_reassignment("t", 0, Some(&[2, 1]), false),
        Err(ec::INVALID_REPLICATION_FACTOR),
        "KIP-860: the replication factor stays unless allowed to change"
    );
    reassign(&mut h, Some(&[2, 1])).unwrap();
    let p = h.partition("t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 1], vec![1, 2], 1)
    );
    assert!(!p.reassigning.in_progress());
    // The same replicas again: nothing to do, nothing proposed.
    let decision = h
        .controller
        .alter_reassignment("t", 0, Some(&[2, 1]), false)
        .unwrap();
    assert!(decision.records.is_empty());
}

#[test]
fn a_new_target_replaces_the_move_under_way() {
    let mut h = Harness::cluster(5);
    h.create_manual("t", &[&[1, 2, 3]]);
    reassign(&mut h, Some(&[2, 3, 4])).unwrap();
    reassign(&mut h, Some(&[3, 4, 5])).unwrap();
    let p = h.partition("t", 0);
    assert_eq!(p.replicas, vec![3, 4, 5, 1, 2]);
    // Measured from the original replicas: broker 4 was being added and still is.
    assert_eq!(p.reassigning, reassigning(&[4, 5], &[1, 2]));
    leader_sets_isr(&mut h, &[1, 2, 3, 5]);
    assert_eq!(h.tick(100), 0, "broker 4 is not in sync yet");
    leader_sets_isr(&mut h, &[1, 2, 3, 4, 5]);
    assert_eq!(h.tick(200), 1);
    let p = h.partition("t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![3, 4, 5], vec![3, 4, 5], 3)
    );
}

#[test]
fn cancelling_goes_back_to_the_original_replicas() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1, 2, 3]]);
    assert_eq!(
        reassign(&mut h, None),
        Err(NO_REASSIGNMENT_IN_PROGRESS),
        "nothing to cancel"
    );
    reassign(&mut h, Some(&[2, 3, 4])).unwrap();
    leader_sets_isr(&mut h, &[1, 2, 3, 4]);
    reassign(&mut h, None).unwrap();
    let p = h.partition("t", 0);
    // The original replicas, in the order the move gave them (Kafka's revert does the same).
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3, 1], vec![1, 2, 3], 1)
    );
    assert!(!p.reassigning.in_progress());
    assert_eq!(h.tick(100), 0);
}

#[test]
fn cancelling_is_refused_when_only_added_replicas_are_in_sync() {
    let mut h = Harness::cluster(2);
    h.create_manual("t", &[&[1]]);
    reassign(&mut h, Some(&[2])).unwrap();
    leader_sets_isr(&mut h, &[1, 2]);
    // Broker 1 goes silent before the tick that would complete the move: its session ends,
    // and broker 2, being added, is the only ISR member left.
    h.heartbeats_except(5000, &[1]);
    assert_eq!(h.tick(SESSION_MS + 1), 2, "the ISR change and the fence");
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert_eq!(
        reassign(&mut h, None),
        Err(ec::INVALID_REPLICA_ASSIGNMENT),
        "going back would be an unclean election"
    );
    // The next tick completes the move instead.
    assert_eq!(h.tick(SESSION_MS + 2), 1);
    let p = h.partition("t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2], vec![2], 2)
    );
}

#[test]
fn bad_targets_are_refused() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1, 2]]);
    let alter = |h: &Harness, topic: &str, partition: i32, target: &[BrokerId]| {
        h.controller
            .alter_reassignment(topic, partition, Some(target), true)
            .map(|_| ())
    };
    assert_eq!(
        alter(&h, "nope", 0, &[1]),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(alter(&h, "t", 1, &[1]), Err(ec::UNKNOWN_TOPIC_OR_PARTITION));
    assert_eq!(
        alter(&h, "t", -1, &[1]),
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(alter(&h, "t", 0, &[]), Err(ec::INVALID_REPLICA_ASSIGNMENT));
    assert_eq!(
        alter(&h, "t", 0, &[1, 1]),
        Err(ec::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        alter(&h, "t", 0, &[1, 9]),
        Err(ec::INVALID_REPLICA_ASSIGNMENT)
    );
    assert_eq!(
        alter(&h, "t", 0, &[1, -1]),
        Err(ec::INVALID_REPLICA_ASSIGNMENT)
    );
    // Nothing was proposed by any of them.
    assert!(!h.partition("t", 0).reassigning.in_progress());
}

#[test]
fn listing_names_only_partitions_under_way() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1], &[2]]);
    reassign(&mut h, Some(&[3])).unwrap();
    let wanted = |partitions: &[i32]| vec![("t".to_string(), partitions.to_vec())];
    assert_eq!(
        h.controller.reassignments(Some(&wanted(&[0, 1, 7]))).len(),
        1
    );
    assert!(h.controller.reassignments(Some(&wanted(&[1]))).is_empty());
    let unknown = vec![("nope".to_string(), vec![0])];
    assert!(h.controller.reassignments(Some(&unknown)).is_empty());
}

#[test]
fn a_move_under_way_survives_a_snapshot() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1, 2, 3]]);
    reassign(&mut h, Some(&[2, 3, 4])).unwrap();
    let restored = MetadataImage::from_snapshot_bytes(&h.image().snapshot_bytes()).unwrap();
    assert_eq!(&restored, h.image());
    let id = restored.topic("t").unwrap().id;
    assert_eq!(
        restored.partition(&id, 0).unwrap().reassigning,
        reassigning(&[4], &[1])
    );
}

#[test]
fn asking_twice_for_the_same_target_changes_nothing() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1]]);
    reassign(&mut h, Some(&[1, 3])).unwrap();
    let started = h.partition("t", 0);
    assert_eq!(started.reassigning, reassigning(&[3], &[]));
    // A broker retrying a request the controller already decided.
    let again = h
        .controller
        .alter_reassignment("t", 0, Some(&[1, 3]), true)
        .unwrap();
    assert!(again.records.is_empty(), "{:?}", again.records);
    // Still under way, and cancelling still goes back to one replica.
    assert_eq!(h.controller.reassignments(None).len(), 1);
    reassign(&mut h, None).unwrap();
    let p = h.partition("t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone()), (vec![1], vec![1]));
    // The replication factor is the original's again.
    assert_eq!(
        h.controller
            .alter_reassignment("t", 0, Some(&[2]), false)
            .map(|_| ()),
        Ok(())
    );
}

#[test]
fn a_new_target_drops_replicas_being_added_that_it_leaves_out() {
    let mut h = Harness::cluster(4);
    h.create_manual("t", &[&[1]]);
    reassign(&mut h, Some(&[2])).unwrap();
    leader_sets_isr(&mut h, &[1, 2]);
    // Broker 2 caught up but the tick has not completed the move; the target changes to 3.
    reassign(&mut h, Some(&[3])).unwrap();
    let p = h.partition("t", 0);
    assert_eq!(p.replicas, vec![3, 1]);
    assert_eq!(p.reassigning, reassigning(&[3], &[1]));
    assert_eq!(
        (p.leader, p.isr.clone()),
        (1, vec![1]),
        "broker 2 left the ISR"
    );
}

#[test]
fn moves_of_one_request_are_one_entry_and_answered_each() {
    let mut h = Harness::cluster(3);
    h.create_manual("t", &[&[1], &[2]]);
    let to_3: &[BrokerId] = &[3];
    let decision = h
        .controller
        .alter_reassignments(
            &[
                ("t", 0, Some(to_3)),
                ("t", 1, Some(to_3)),
                ("t", 0, None),
                ("t", 2, Some(to_3)),
            ],
            true,
        )
        .unwrap();
    assert_eq!(
        decision.reply,
        vec![
            ec::NONE,
            ec::NONE,
            ec::INVALID_REQUEST,
            ec::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    assert_eq!(decision.records.len(), 2);
    h.commit(&decision.records).expect("one entry applies");
    assert_eq!(h.controller.reassignments(None).len(), 2);
}
