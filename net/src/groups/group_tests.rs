//! The group state machine driven step by step with explicit times.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

fn timing() -> Timing {
    Timing {
        initial_rebalance_delay: Duration::from_millis(300),
        new_member_join_timeout: Duration::from_secs(300),
    }
}

fn request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        require_known_member_id: false,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        supports_skip_assignment: true,
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
    }
}

/// Ticks every 100 ms from `t0` until the first rebalance completes (the initial delay is
/// extended while members keep arriving); returns the time it completed.
fn settle(group: &mut Group, t0: Instant) -> Instant {
    for step in 1..=50 {
        let t = t0 + Duration::from_millis(100 * step);
        group.tick(t, &timing());
        if group.state != GroupState::PreparingRebalance {
            return t;
        }
    }
    panic!("the rebalance never completed");
}

/// A stable generation-1 group of static members "a" (instance "inst-a", the leader) and
/// "b" ("inst-b") with the given assignments; also the leader's JoinGroup answer.
fn static_pair(t0: Instant, assigned: (&str, &str)) -> (Group, JoinResult) {
    let mut group = Group::new("g".into());
    let mut joins = Vec::new();
    for (id, instance) in [("a", "inst-a"), ("b", "inst-b")] {
        let mut req = request("", &["range"]);
        req.instance_id = Some(instance.into());
        let id = id.to_owned();
        joins.push(later(group.join(req, t0, &timing(), move |_| id.clone())));
    }
    settle(&mut group, t0);
    let leader = joins[0].try_take().unwrap();
    let assignments = vec![
        ("a".into(), Bytes::from(assigned.0.to_owned())),
        ("b".into(), Bytes::from(assigned.1.to_owned())),
    ];
    let _ = group.sync("a", Some("inst-a"), 1, None, None, assignments, t0);
    let _ = group.sync("b", Some("inst-b"), 1, None, None, vec![], t0);
    group.take_store_request();
    group.stored(1, true, t0);
    (group, leader)
}

fn ids() -> impl FnMut(&str) -> String {
    let mut next = 0;
    move |client: &str| {
        next += 1;
        format!("{client}-{next}")
    }
}

fn now_value<T>(answer: Deferred<T>) -> T {
    match answer {
        Deferred::Now(value) => value,
        Deferred::Later(_) => panic!("expected an answer now"),
    }
}

fn later<T>(answer: Deferred<T>) -> Pending<T> {
    match answer {
        Deferred::Later(pending) => pending,
        Deferred::Now(_) => panic!("expected to wait"),
    }
}

/// A stable group of the given members (each supporting `range`), generation 1, with every
/// member's assignment `assign-<id>`.
fn stable_group(members: &[&str], t0: Instant) -> Group {
    let mut group = Group::new("g".into());
    let mut joins = Vec::new();
    for id in members {
        let mut req = request("", &["range"]);
        req.client_id = id.to_string();
        let id = id.to_string();
        joins.push(later(group.join(req, t0, &timing(), move |_| id.clone())));
    }
    settle(&mut group, t0);
    assert_eq!(group.state, GroupState::CompletingRebalance);
    let results: Vec<JoinResult> = joins.iter().map(|j| j.try_take().unwrap()).collect();
    let leader = results[0].leader.clone();
    let assignments: Vec<(String, Bytes)> = members
        .iter()
        .map(|m| (m.to_string(), Bytes::from(format!("assign-{m}"))))
        .collect();
    let mut syncs = Vec::new();
    for m in members {
        let a = if *m == leader {
            assignments.clone()
        } else {
            Vec::new()
        };
        syncs.push(later(group.sync(m, None, 1, None, None, a, t0)));
    }
    let value = group
        .take_store_request()
        .expect("stored after the leader's sync");
    assert_eq!(value.members.len(), members.len());
    group.stored(1, true, t0);
    assert_eq!(group.state, GroupState::Stable);
    for (m, s) in members.iter().zip(syncs) {
        assert_eq!(
            s.try_take().unwrap().assignment,
            Bytes::from(format!("assign-{m}"))
        );
    }
    group
}

#[test]
fn first_join_needs_a_member_id_then_waits_for_the_initial_delay() {
    let t0 = Instant::now();
    let mut group = Group::new("g".into());
    let mut first = request("", &["range"]);
    first.require_known_member_id = true;
    let answer = now_value(group.join(first, t0, &timing(), ids()));
    assert_eq!(answer.error, ec::MEMBER_ID_REQUIRED);
    assert_eq!(answer.member_id, "client-1");
    assert_eq!(
        group.state,
        GroupState::Empty,
        "a pending member id doesn't rebalance"
    );

    let join = later(group.join(request("client-1", &["range"]), t0, &timing(), ids()));
    assert_eq!(group.state, GroupState::PreparingRebalance);
    group.tick(t0 + Duration::from_millis(200), &timing());
    assert!(join.try_take().is_none(), "still inside the initial delay");
    group.tick(t0 + Duration::from_millis(300), &timing());
    let result = join.try_take().expect("joined after the delay");
    assert_eq!(result.error, ec::NONE);
    assert_eq!(result.generation, 1);
    assert_eq!(result.leader, "client-1");
    assert_eq!(result.protocol.as_deref(), Some("range"));
    assert_eq!(result.members.len(), 1, "the leader sees the members");
    assert_eq!(result.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(group.state, GroupState::CompletingRebalance);
}

#[test]
fn members_arriving_during_the_initial_delay_extend_it() {
    let t0 = Instant::now();
    let mut group = Group::new("g".into());
    let a = later(group.join(request("", &["range"]), t0, &timing(), |_| "a".into()));
    group.tick(t0 + Duration::from_millis(250), &timing());
    let b = later(group.join(
        request("", &["range"]),
        t0 + Duration::from_millis(250),
        &timing(),
        |_| "b".into(),
    ));
    group.tick(t0 + Duration::from_millis(300), &timing());
    assert!(
        a.try_take().is_none(),
        "a new member arrived: wait another delay"
    );
    group.tick(t0 + Duration::from_millis(600), &timing());
    let (a, b) = (a.try_take().unwrap(), b.try_take().unwrap());
    assert_eq!((a.generation, b.generation), (1, 1));
    assert_eq!(a.members.len(), 2, "both in the first generation");
    assert!(b.members.is_empty(), "followers don't get the member list");
}

#[test]
fn a_new_member_makes_everyone_rejoin() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a"], t0);
    let t1 = t0 + Duration::from_secs(1);
    let b = later(group.join(request("", &["range"]), t1, &timing(), |_| "b".into()));
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.heartbeat("a", None, 1, t1), ec::REBALANCE_IN_PROGRESS);
    assert_eq!(
        group.validate_commit("a", None, 1),
        Ok(()),
        "commits still allowed"
    );
    let a = later(group.join(request("a", &["range"]), t1, &timing(), ids()));
    let (a, b) = (a.try_take().unwrap(), b.try_take().unwrap());
    assert_eq!((a.generation, b.generation), (2, 2));
    assert_eq!(a.leader, "a", "the leader stays");
    assert_eq!(a.members.len(), 2);
    assert_eq!(
        group.validate_commit("a", None, 2),
        Err(ec::REBALANCE_IN_PROGRESS)
    );
    // The follower syncs first and waits for the leader's assignment.
    let b_sync = later(group.sync("b", None, 2, Some("consumer"), Some("range"), vec![], t1));
    let a_sync = later(group.sync(
        "a",
        None,
        2,
        None,
        None,
        vec![
            ("a".into(), Bytes::from("x")),
            ("b".into(), Bytes::from("y")),
        ],
        t1,
    ));
    assert!(
        b_sync.try_take().is_none(),
        "nobody is answered before the group is stored"
    );
    assert!(group.take_store_request().is_some());
    group.stored(2, true, t1);
    assert_eq!(b_sync.try_take().unwrap().assignment, Bytes::from("y"));
    assert_eq!(a_sync.try_take().unwrap().assignment, Bytes::from("x"));
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.heartbeat("b", None, 2, t1), ec::NONE);
}

#[test]
fn unloading_answers_every_waiting_member_not_coordinator() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    let t1 = t0 + Duration::from_secs(1);
    // "c" joining starts a rebalance: "a" rejoins and waits for "b".
    let c = later(group.join(request("", &["range"]), t1, &timing(), |_| "c".into()));
    let a = later(group.join(request("a", &["range"]), t1, &timing(), ids()));
    assert!(
        a.try_take().is_none() && c.try_take().is_none(),
        "waiting for b"
    );

    group.unload();
    assert_eq!(group.state, GroupState::Dead);
    for join in [a, c] {
        assert_eq!(join.try_take().unwrap().error, ec::NOT_COORDINATOR);
    }
    assert!(!group.wants_store(), "nothing to store");
    assert!(!group.needs_ticks(), "no deadlines left");
}

#[test]
fn unloading_answers_a_waiting_sync_not_coordinator() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    let t1 = t0 + Duration::from_secs(1);
    let _ = group.leave("b", None, t1, &timing());
    let a = later(group.join(request("a", &["range"]), t1, &timing(), ids()));
    assert_eq!(a.try_take().unwrap().generation, 2);
    // The follower-less leader's sync waits for the store of its assignment.
    let sync = later(group.sync("a", None, 2, None, None, vec![], t1));
    group.unload();
    assert_eq!(sync.try_take().unwrap().error, ec::NOT_COORDINATOR);
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    let later_t = t0 + SESSION - Duration::from_secs(1);
    assert_eq!(group.heartbeat("a", None, 1, later_t), ec::NONE);
    group.tick(t0 + SESSION + Duration::from_millis(1), &timing());
    assert!(!group.has_member("b"), "b's session expired");
    assert_eq!(group.state, GroupState::PreparingRebalance);
    let t2 = t0 + SESSION + Duration::from_secs(1);
    assert_eq!(group.heartbeat("a", None, 1, t2), ec::REBALANCE_IN_PROGRESS);
    let a = later(group.join(request("a", &["range"]), t2, &timing(), ids()));
    let result = a
        .try_take()
        .expect("the only member rejoined: done at once");
    assert_eq!(result.generation, 2);
    assert_eq!(result.members.len(), 1);
    assert_eq!(group.heartbeat("b", None, 1, t2), ec::UNKNOWN_MEMBER_ID);
}

#[test]
fn members_that_dont_rejoin_in_time_are_dropped() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    let a = later(group.join(request("a", &["range"]), t0, &timing(), ids()));
    // b keeps heartbeating but never rejoins.
    let mut t = t0;
    while t < t0 + REBALANCE {
        t += Duration::from_secs(1);
        group.heartbeat("b", None, 1, t);
        group.tick(t, &timing());
    }
    let result = a.try_take().expect("the rebalance timed out");
    assert_eq!(result.generation, 2);
    assert!(!group.has_member("b"));
}

#[test]
fn a_follower_that_never_syncs_is_dropped() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    let t1 = t0 + Duration::from_secs(1);
    let c = later(group.join(request("", &["range"]), t1, &timing(), |_| "c".into()));
    let a = later(group.join(request("a", &["range"]), t1, &timing(), ids()));
    let b = later(group.join(request("b", &["range"]), t1, &timing(), ids()));
    for j in [&a, &b, &c] {
        assert_eq!(j.try_take().unwrap().generation, 2);
    }
    let _a_sync = later(group.sync("a", None, 2, None, None, vec![], t1));
    let _b_sync = later(group.sync("b", None, 2, None, None, vec![], t1));
    group.take_store_request();
    group.stored(2, true, t1);
    // c never sends SyncGroup; a and b keep heartbeating.
    let mut t = t1;
    while t <= t1 + REBALANCE {
        t += Duration::from_secs(1);
        group.heartbeat("a", None, 2, t);
        group.heartbeat("b", None, 2, t);
        group.tick(t, &timing());
    }
    assert!(!group.has_member("c"));
    assert!(group.has_member("a") && group.has_member("b"));
    assert_eq!(group.state, GroupState::PreparingRebalance);
}

#[test]
fn leaving_rebalances_and_the_last_member_empties_the_group() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    assert_eq!(group.leave("b", None, t0, &timing()), ec::NONE);
    assert_eq!(group.leave("b", None, t0, &timing()), ec::UNKNOWN_MEMBER_ID);
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.leave("a", None, t0, &timing()), ec::NONE);
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.generation, 2);
    let stored = group
        .take_store_request()
        .expect("an emptied group is stored");
    assert!(stored.members.is_empty());
    assert_eq!(
        group.validate_commit("", None, -1),
        Ok(()),
        "simple commits on an empty group"
    );
}

#[test]
fn errors_clients_rely_on() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a", "b"], t0);
    assert_eq!(
        group.heartbeat("nobody", None, 1, t0),
        ec::UNKNOWN_MEMBER_ID
    );
    assert_eq!(group.heartbeat("a", None, 7, t0), ec::ILLEGAL_GENERATION);
    let sync = now_value(group.sync("a", None, 0, None, None, vec![], t0));
    assert_eq!(sync.error, ec::ILLEGAL_GENERATION);
    let sync = now_value(group.sync("a", None, 1, Some("connect"), None, vec![], t0));
    assert_eq!(sync.error, ec::INCONSISTENT_GROUP_PROTOCOL);
    let mut other = request("", &["range"]);
    other.protocol_type = "connect".into();
    let join = now_value(group.join(other, t0, &timing(), ids()));
    assert_eq!(join.error, ec::INCONSISTENT_GROUP_PROTOCOL);
    let join = now_value(group.join(request("", &["sticky"]), t0, &timing(), ids()));
    assert_eq!(
        join.error,
        ec::INCONSISTENT_GROUP_PROTOCOL,
        "no protocol in common"
    );
    let join = now_value(group.join(request("stranger", &["range"]), t0, &timing(), ids()));
    assert_eq!(join.error, ec::UNKNOWN_MEMBER_ID);
    assert_eq!(
        group.validate_commit("", None, -1),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        group.validate_commit("a", None, 0),
        Err(ec::ILLEGAL_GENERATION)
    );
    assert_eq!(group.validate_commit("a", None, 1), Ok(()));
    // A follower rejoining a stable group unchanged gets its generation back, no rebalance.
    let again = now_value(group.join(request("b", &["range"]), t0, &timing(), ids()));
    assert_eq!((again.error, again.generation), (ec::NONE, 1));
    assert_eq!(group.state, GroupState::Stable);
}

#[test]
fn the_most_voted_common_protocol_wins() {
    let t0 = Instant::now();
    let mut group = Group::new("g".into());
    let mut joins = Vec::new();
    for (id, protocols) in [
        ("a", &["range", "roundrobin"][..]),
        ("b", &["roundrobin", "range", "sticky"][..]),
        ("c", &["range", "roundrobin"][..]),
    ] {
        let id = id.to_owned();
        joins.push(later(group.join(
            request("", protocols),
            t0,
            &timing(),
            move |_| id.clone(),
        )));
    }
    settle(&mut group, t0);
    let leader = joins[0].try_take().unwrap();
    assert_eq!(
        leader.protocol.as_deref(),
        Some("range"),
        "2 votes against 1"
    );
    let b = leader.members.iter().find(|m| m.member_id == "b").unwrap();
    assert_eq!(
        b.metadata,
        Bytes::from("meta-range"),
        "the metadata for the chosen protocol"
    );
}

#[test]
fn a_static_member_restarting_keeps_its_place_without_a_rebalance() {
    let t0 = Instant::now();
    let (mut group, leader) = static_pair(t0, ("pa", "pb"));
    assert_eq!(leader.members[1].instance_id.as_deref(), Some("inst-b"));
    assert_eq!(group.state, GroupState::Stable);

    // inst-b restarts: it joins without a member id and gets a new one, same generation.
    let mut restart = request("", &["range"]);
    restart.instance_id = Some("inst-b".into());
    let rejoined = now_value(group.join(restart, t0, &timing(), |_| "b2".into()));
    assert_eq!((rejoined.error, rejoined.generation), (ec::NONE, 1));
    assert_eq!(rejoined.member_id, "b2");
    assert_eq!(group.state, GroupState::Stable, "no rebalance");
    assert!(
        group.take_store_request().is_some(),
        "the new member id is stored"
    );
    assert_eq!(
        group.heartbeat("b", Some("inst-b"), 1, t0),
        ec::FENCED_INSTANCE_ID
    );
    assert_eq!(group.heartbeat("a", Some("inst-a"), 1, t0), ec::NONE);
    let sync = now_value(group.sync("b2", Some("inst-b"), 1, None, None, vec![], t0));
    assert_eq!(sync.assignment, Bytes::from("pb"), "its old assignment");
    assert_eq!(
        group.leave("b", Some("inst-b"), t0, &timing()),
        ec::FENCED_INSTANCE_ID
    );
    assert_eq!(
        group.leave("", Some("inst-b"), t0, &timing()),
        ec::NONE,
        "leave by instance id"
    );
    assert_eq!(group.state, GroupState::PreparingRebalance);
}

#[test]
fn stored_state_loads_back_as_a_stable_group() {
    let t0 = Instant::now();
    let group = stable_group(&["a", "b"], t0);
    let value = group.to_value();
    let loaded = Group::from_value("g".into(), value.clone(), t0);
    assert_eq!(loaded.state, GroupState::Stable);
    assert_eq!(loaded.generation, 1);
    assert_eq!(loaded.to_value(), value);
    let mut loaded = loaded;
    assert_eq!(
        loaded.heartbeat("a", None, 1, t0),
        ec::NONE,
        "members carry on after a restart"
    );
    let empty = Group::from_value(
        "g".into(),
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            ..Default::default()
        },
        t0,
    );
    assert_eq!(empty.state, GroupState::Empty);
}

#[test]
fn a_failed_store_sends_everyone_back_to_rejoin() {
    let t0 = Instant::now();
    let mut group = Group::new("g".into());
    let a = later(group.join(request("", &["range"]), t0, &timing(), |_| "a".into()));
    settle(&mut group, t0);
    assert_eq!(a.try_take().unwrap().generation, 1);
    let sync = later(group.sync(
        "a",
        None,
        1,
        None,
        None,
        vec![("a".into(), Bytes::from("x"))],
        t0,
    ));
    group.take_store_request();
    group.stored(1, false, t0);
    assert_eq!(
        sync.try_take().unwrap().error,
        ec::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(group.state, GroupState::PreparingRebalance);
}

#[test]
fn an_absent_static_member_keeps_its_place_through_a_rebalance() {
    let t0 = Instant::now();
    let mut group = Group::new("g".into());
    let mut a = request("", &["range"]);
    a.instance_id = Some("inst-a".into());
    a.session_timeout = Duration::from_secs(120);
    let a_join = later(group.join(a, t0, &timing(), |_| "a".into()));
    let b_join = later(group.join(request("", &["range"]), t0, &timing(), |_| "b".into()));
    let t1 = settle(&mut group, t0);
    assert_eq!(a_join.try_take().unwrap().leader, "a");
    b_join.try_take().unwrap();
    let assignments = vec![
        ("a".into(), Bytes::from("pa")),
        ("b".into(), Bytes::from("pb")),
    ];
    let _ = group.sync("a", Some("inst-a"), 1, None, None, assignments, t1);
    let _ = group.sync("b", None, 1, None, None, vec![], t1);
    group.take_store_request();
    group.stored(1, true, t1);

    // a goes away without leaving (a static member's restart); c joins meanwhile.
    let c_join = later(group.join(request("", &["range"]), t1, &timing(), |_| "c".into()));
    let b_join = later(group.join(request("b", &["range"]), t1, &timing(), ids()));
    let mut t = t1;
    while group.state == GroupState::PreparingRebalance {
        t += Duration::from_secs(1);
        group.heartbeat("b", None, 1, t);
        group.tick(t, &timing());
    }
    assert!(group.has_member("a"), "the absent static member stays");
    let b_result = b_join.try_take().unwrap();
    assert_eq!(b_result.leader, "b", "the leader is a member that rejoined");
    assert_eq!(
        b_result.members.len(),
        3,
        "and it assigns the absent member too"
    );
    assert_eq!(c_join.try_take().unwrap().generation, 2);
    let assignments = vec![
        ("a".into(), Bytes::from("pa2")),
        ("b".into(), Bytes::from("pb2")),
        ("c".into(), Bytes::from("pc2")),
    ];
    let _ = group.sync("b", None, 2, None, None, assignments, t);
    group.take_store_request();
    group.stored(2, true, t);
    assert_eq!(group.state, GroupState::Stable);

    // a comes back: its place and its new assignment, no third rebalance.
    let mut back = request("", &["range"]);
    back.instance_id = Some("inst-a".into());
    let rejoined = now_value(group.join(back, t, &timing(), |_| "a2".into()));
    assert_eq!((rejoined.error, rejoined.generation), (ec::NONE, 2));
    let sync = now_value(group.sync("a2", Some("inst-a"), 2, None, None, vec![], t));
    assert_eq!(sync.assignment, Bytes::from("pa2"));
    assert_eq!(group.state, GroupState::Stable);
}

#[test]
fn a_restarting_static_leader_is_not_asked_to_assign() {
    let t0 = Instant::now();
    let (mut group, _) = static_pair(t0, ("pa", "pb"));
    for (v9, new_id) in [(false, "a2"), (true, "a3")] {
        let mut restart = request("", &["range"]);
        restart.instance_id = Some("inst-a".into());
        restart.supports_skip_assignment = v9;
        let result = now_value(group.join(restart, t0, &timing(), |_| new_id.into()));
        assert_eq!(result.member_id, new_id);
        if v9 {
            assert!(result.skip_assignment);
            assert_eq!(result.leader, new_id);
        } else {
            assert_ne!(
                result.leader, new_id,
                "older clients see another leader: they follow"
            );
            assert!(result.members.is_empty());
        }
        assert_eq!(group.state, GroupState::Stable);
    }
}

#[test]
fn transactional_commits_are_checked_against_the_members_they_name() {
    let t0 = Instant::now();
    let mut group = stable_group(&["a"], t0);
    // Producers before KIP-447 name no member and no generation.
    assert_eq!(group.validate_txn_commit("", None, -1), Ok(()));
    assert_eq!(group.validate_txn_commit("a", None, 1), Ok(()));
    assert_eq!(group.validate_txn_commit("a", None, -1), Ok(()));
    assert_eq!(
        group.validate_txn_commit("zombie", None, 1),
        Err(ec::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        group.validate_txn_commit("a", None, 7),
        Err(ec::ILLEGAL_GENERATION)
    );
    group.mark_dead();
    assert_eq!(
        group.validate_txn_commit("", None, -1),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
}
