//! A network partition between the controllers: the side with a majority elects a
//! controller, the isolated one stops being one, and no two nodes act as controller at once.

use std::time::{Duration, Instant};

use runnel_tests::cluster::Cluster;

/// The nodes that name themselves as the controller, as each running node answers now.
fn self_declared_controllers(cluster: &Cluster) -> Vec<i32> {
    cluster
        .running()
        .into_iter()
        .filter(|&node| {
            cluster
                .describe(node)
                .is_ok_and(|d| d.controller_id.0 == node)
        })
        .collect()
}

#[test]
fn an_isolated_controller_steps_down_and_the_majority_elects_another() {
    let cluster = Cluster::start_partitionable("cluster-partition", 3);
    let old = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    let majority: Vec<i32> = [1, 2, 3].into_iter().filter(|&n| n != old).collect();
    cluster.set_isolated(old, true);
    let cut_at = Instant::now();
    let mut new = None;
    // Until the majority has a controller and a while after, sample who claims to be one.
    while cut_at.elapsed() < Duration::from_secs(6) {
        let claiming = self_declared_controllers(&cluster);
        assert!(
            claiming.len() <= 1,
            "two controllers at once after {:?}: {claiming:?}",
            cut_at.elapsed()
        );
        if new.is_none() {
            new = cluster
                .wait_for_controller(&majority, Duration::from_millis(1))
                .ok();
            if let Some(new) = new {
                eprintln!(
                    "controller {new} elected {:?} after the cut",
                    cut_at.elapsed()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = new.expect("the majority elected a controller");
    assert!(majority.contains(&new));
    let isolated_names = cluster.describe(old).unwrap().controller_id.0;
    assert_ne!(
        isolated_names, old,
        "the isolated node still calls itself controller"
    );
    // Healed, the old controller follows the new one.
    cluster.set_isolated(old, false);
    let agreed = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    assert!(majority.contains(&agreed), "{agreed} leads after healing");
}

#[test]
fn a_node_cut_from_one_peer_does_not_disturb_the_controller() {
    let cluster = Cluster::start_partitionable("cluster-half-cut", 3);
    let controller = cluster
        .wait_for_controller(&[1, 2, 3], Duration::from_secs(15))
        .unwrap();
    let followers: Vec<i32> = [1, 2, 3].into_iter().filter(|&n| n != controller).collect();
    // The two followers lose each other but both still reach the controller: pre-vote keeps
    // either from deposing a controller that a majority still hears.
    cluster.set_cut(followers[0], followers[1], true);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        for node in [1, 2, 3] {
            assert_eq!(
                cluster.describe(node).unwrap().controller_id.0,
                controller,
                "node {node}"
            );
        }
    }
}
