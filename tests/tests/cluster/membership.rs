//! Forming a cluster: one controller elected, every broker registered and unfenced, the
//! same view from every node; and a node that restarts registers again.

use std::time::Duration;

use runnel_tests::cluster::Cluster;

use crate::wait_for_brokers;

#[test]
fn three_nodes_elect_one_controller_and_register_every_broker() {
    let cluster = Cluster::start("cluster-forms", 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    assert!((1..=3).contains(&controller));
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    // One cluster, one id, whichever node is asked.
    let ids: Vec<String> = [1, 2, 3]
        .iter()
        .map(|&n| cluster.describe(n).unwrap().cluster_id.to_string())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.len() == 22),
        "{ids:?}"
    );
    // Each broker advertises its own listener, and clients are told all of them.
    let described = cluster.describe(2).unwrap();
    for broker in &described.brokers {
        let addr = cluster.addr(broker.broker_id.0);
        assert_eq!(
            (broker.host.as_str(), broker.port),
            (addr.ip().to_string().as_str(), i32::from(addr.port())),
            "broker {} listener",
            broker.broker_id.0
        );
    }
}

#[test]
fn a_restarted_node_recovers_its_metadata_and_registers_again() {
    let mut cluster = Cluster::start("cluster-restart", 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    let follower = [1, 2, 3].into_iter().find(|&n| n != controller).unwrap();
    cluster.kill(follower);
    let others: Vec<i32> = cluster.running();
    // Its session runs out: the controller fences it.
    let mut expected = vec![(1, false), (2, false), (3, false)];
    expected[(follower - 1) as usize].1 = true;
    wait_for_brokers(&cluster, &others, &expected);
    cluster.start_node(follower);
    wait_for_brokers(&cluster, &[1, 2, 3], &[(1, false), (2, false), (3, false)]);
    assert_eq!(
        cluster
            .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
            .unwrap(),
        controller,
        "a follower's restart does not move the controller"
    );
}

#[test]
fn a_node_shuts_down_cleanly_and_promptly_on_sigterm() {
    let mut cluster = Cluster::start("cluster-sigterm", 3);
    cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    let broker = cluster.nodes[1].broker.as_mut().unwrap();
    broker.signal(libc::SIGTERM);
    // Well within the 10 s shutdown grace: the quorum's tasks end with the shard's.
    broker.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(
        broker
            .log
            .iter()
            .any(|l| l.contains("clean shutdown complete")),
        "{}",
        broker.log.join("\n")
    );
}
