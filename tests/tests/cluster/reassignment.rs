//! Reassignment on three brokers (AlterPartitionReassignments, ListPartitionReassignments),
//! asked through brokers that forward to the controller: a move that cannot finish is listed
//! and cancelled; then a partition moves off the one broker that held it onto two others
//! while an idempotent acks=all librdkafka producer keeps writing. Afterwards every
//! acknowledged message is there once and in order, the new replicas' logs are the same bytes,
//! and the old broker's copy is deleted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_tests::cluster::Cluster;
use runnel_tests::requests::{reassign, reassignments};

use crate::elections::create_assigned;
use crate::replication::{log_bytes, read_all, spawn_producer, wait_for_isr, Numbers};
use crate::{conn, eventually, partition_seen_by, wait_for_brokers};

const TOPIC: &str = "moving";
const TIMEOUT: Duration = Duration::from_secs(30);
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

#[test]
fn a_partition_moves_to_other_brokers_under_load_and_the_old_copy_goes() {
    let mut cluster = Cluster::start("cluster-reassignment", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    create_assigned(&cluster, 2, TOPIC, &[1]);
    assert_eq!(wait_for_isr(&cluster, TOPIC, &[1]), 1);

    // A move that cannot finish while broker 3 is down: listed by any broker, then cancelled.
    cluster.kill(3);
    let to_1_and_3: &[i32] = &[1, 3];
    let accepted = vec![(TOPIC.to_string(), 0, 0)];
    eventually(TIMEOUT, || {
        match reassign(&mut conn(&cluster, 2), &[(TOPIC, 0, Some(to_1_and_3))]) {
            Ok(Ok(answer)) if answer == accepted => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let under_way = (TOPIC.to_string(), 0, vec![1, 3], vec![3], vec![]);
    for via in [1, 2] {
        let named: &[(&str, &[i32])] = &[(TOPIC, &[0, 5])];
        assert_eq!(
            reassignments(&mut conn(&cluster, via), Some(named)).unwrap(),
            Ok(vec![under_way.clone()])
        );
    }
    let cancel = &[(TOPIC, 0, None)];
    assert_eq!(
        reassign(&mut conn(&cluster, 1), cancel).unwrap(),
        Ok(accepted.clone())
    );
    assert_eq!(
        reassignments(&mut conn(&cluster, 2), None).unwrap(),
        Ok(vec![])
    );
    assert_eq!(
        reassign(&mut conn(&cluster, 2), cancel).unwrap(),
        Ok(vec![(TOPIC.to_string(), 0, NO_REASSIGNMENT_IN_PROGRESS)])
    );
    eventually(TIMEOUT, || match partition_seen_by(&cluster, 2, TOPIC)? {
        seen if seen.leader == 1 && seen.replicas == [1] && seen.isr == [1] => Ok(()),
        seen => Err(format!("after the cancellation: {seen:?}")),
    });
    cluster.start_node(3);
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);

    // The move, with a producer writing throughout.
    let acked: Arc<Mutex<Numbers>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let bootstrap = [1, 2, 3].map(|n| cluster.addr(n).to_string()).join(",");
    let producing = spawn_producer(
        bootstrap,
        TOPIC,
        acked.clone(),
        Arc::default(),
        stop.clone(),
    );
    let acked_before_the_move = || acked.lock().unwrap().len();
    eventually(TIMEOUT, || match acked_before_the_move() {
        n if n >= 1000 => Ok(()),
        n => Err(format!("{n} acknowledged")),
    });
    let to_2_and_3: &[i32] = &[2, 3];
    assert_eq!(
        reassign(&mut conn(&cluster, 3), &[(TOPIC, 0, Some(to_2_and_3))]).unwrap(),
        Ok(accepted)
    );
    eventually(TIMEOUT, || {
        for node in 1..=3 {
            let seen = partition_seen_by(&cluster, node, TOPIC)?;
            if !([2, 3].contains(&seen.leader) && seen.replicas == [2, 3] && seen.isr == [2, 3]) {
                return Err(format!("node {node} sees {seen:?}"));
            }
        }
        Ok(())
    });
    assert_eq!(
        reassignments(&mut conn(&cluster, 1), None).unwrap(),
        Ok(vec![])
    );
    // The new leader takes writes.
    let after_the_move = acked.lock().unwrap().len();
    eventually(TIMEOUT, || match acked.lock().unwrap().len() {
        n if n >= after_the_move + 1000 => Ok(()),
        n => Err(format!(
            "{n} acknowledged, {after_the_move} when the move completed"
        )),
    });
    stop.store(true, Ordering::SeqCst);
    let sent = producing.join().unwrap();

    // Broker 1 holds no replica any more: its copy is deleted.
    let data_dirs: Vec<std::path::PathBuf> = (1..=3)
        .map(|id| cluster.node(id).dir.path().join("data"))
        .collect();
    let data = |id: i32| data_dirs[id as usize - 1].clone();
    let old_copy = data(1).join(format!("{TOPIC}-0"));
    eventually(TIMEOUT, || match old_copy.exists() {
        false => Ok(()),
        true => Err(format!("{} still exists", old_copy.display())),
    });

    // Every acknowledged message once, in order, at the offset it was acknowledged with.
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u64,
        sent,
        "every message sent was acknowledged"
    );
    let stored = read_all(&cluster.addr(2).to_string(), TOPIC);
    for (offset, number) in &acked {
        assert_eq!(stored.get(offset), Some(number), "acknowledged at {offset}");
    }
    let numbers: Vec<u64> = stored.values().copied().collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "once and in order");

    // The two new replicas hold the same bytes.
    eventually(TIMEOUT, || {
        let (two, three) = (log_bytes(&data(2), TOPIC), log_bytes(&data(3), TOPIC));
        match two.len() == three.len() {
            true => Ok(()),
            false => Err(format!(
                "replica logs of {} and {} bytes",
                two.len(),
                three.len()
            )),
        }
    });
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    assert!(log_bytes(&data(2), TOPIC) == log_bytes(&data(3), TOPIC));
}
