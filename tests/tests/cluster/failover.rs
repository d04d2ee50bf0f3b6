//! Losing voters: the active controller (another is elected at once), a minority (the
//! quorum works on), a majority (no controller at all, and none claimed).

use std::time::{Duration, Instant};

use runnel_tests::cluster::Cluster;

use crate::{eventually, wait_for_brokers};

#[test]
fn killing_the_controller_elects_another_and_the_killed_node_rejoins() {
    let mut cluster = Cluster::start("cluster-failover", 3);
    let old = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    cluster.kill(old);
    let killed_at = Instant::now();
    let survivors = cluster.running();
    let new = cluster
        .wait_for_controller(&survivors, Duration::from_secs(10))
        .unwrap();
    let took = killed_at.elapsed();
    assert_ne!(new, old);
    // The election timeout is 500 ms here: a new controller within a few of them.
    assert!(took < Duration::from_secs(3), "failover took {took:?}");
    eprintln!("controller {old} killed; {new} took over after {took:?}");
    // The new controller writes metadata: it fences the dead broker, and registers it again
    // when it comes back.
    let mut expected = vec![(1, false), (2, false), (3, false)];
    expected[(old - 1) as usize].1 = true;
    wait_for_brokers(&cluster, &survivors, &expected);
    cluster.start_node(old);
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    assert_eq!(
        cluster
            .wait_for_controller(&[1, 2, 3], Duration::from_secs(10))
            .unwrap(),
        new
    );
}

#[test]
fn a_majority_down_leaves_no_controller_until_it_returns() {
    let mut cluster = Cluster::start("cluster-majority", 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    // A minority down: the quorum works on (it fences the lost broker).
    let first = [1, 2, 3].into_iter().find(|&n| n != controller).unwrap();
    cluster.kill(first);
    let mut expected = vec![(1, false), (2, false), (3, false)];
    expected[(first - 1) as usize].1 = true;
    wait_for_brokers(&cluster, &cluster.running(), &expected);
    // A majority down: the last node must stop being, or becoming, the controller.
    let second = cluster
        .running()
        .into_iter()
        .find(|&n| n != controller)
        .unwrap();
    cluster.kill(second);
    let last = cluster.running()[0];
    eventually(Duration::from_secs(5), || {
        let named = cluster
            .describe(last)
            .map_err(|e| e.to_string())?
            .controller_id
            .0;
        if named == -1 {
            Ok(())
        } else {
            Err(format!("node {last} still names controller {named}"))
        }
    });
    // And it stays without one: it cannot win an election alone.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cluster.describe(last).unwrap().controller_id.0, -1);
    }
    cluster.start_node(second);
    let back = cluster
        .wait_for_controller(&[last, second], Duration::from_secs(15))
        .unwrap();
    assert!([last, second].contains(&back));
}

#[test]
fn a_stopped_controller_is_replaced_and_follows_when_it_resumes() {
    let cluster = Cluster::start("cluster-sigstop", 3);
    let old = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    let stopped = cluster.node(old).broker.as_ref().unwrap();
    stopped.signal(libc::SIGSTOP);
    let others: Vec<i32> = [1, 2, 3].into_iter().filter(|&n| n != old).collect();
    let new = cluster
        .wait_for_controller(&others, Duration::from_secs(10))
        .unwrap();
    assert_ne!(new, old);
    // Past the session timeout (2 s here): the stopped broker is fenced, and the broker whose
    // heartbeats went to the stopped controller found the new one in time.
    let mut expected = vec![(1, false), (2, false), (3, false)];
    expected[(old - 1) as usize].1 = true;
    wait_for_brokers(&cluster, &others, &expected);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(crate::brokers_seen_by(&cluster, new).unwrap(), expected);
    stopped.signal(libc::SIGCONT);
    // Resumed, it follows the new controller rather than acting as the old one.
    assert_eq!(
        cluster
            .wait_for_controller(&[1, 2, 3], Duration::from_secs(10))
            .unwrap(),
        new
    );
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
}
