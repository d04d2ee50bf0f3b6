use raft::eraftpb::{Entry, HardState};

use super::*;

fn fresh(id: u64, voters: &[u64]) -> Result<Quorum, QuorumError> {
    Quorum::new(id, voters, Recovered::default(), 0, Timing::default())
}

/// A follower whose log holds entries 1..=3 of term 1, all committed.
fn follower() -> Quorum {
    let mut w = Vec::new();
    wal::encode_conf_state(&ConfState::from((vec![1, 2, 3], vec![])), &mut w);
    let ents: Vec<Entry> = (1..=3)
        .map(|index| Entry {
            index,
            term: 1,
            data: b"x".to_vec(),
            ..Default::default()
        })
        .collect();
    wal::encode_entries(&ents, &mut w);
    wal::encode_hard_state(
        &HardState {
            term: 1,
            vote: 1,
            commit: 3,
        },
        &mut w,
    );
    let recovered = wal::recover(None, &w).unwrap();
    Quorum::new(2, &[1, 2, 3], recovered, 3, Timing::default()).unwrap()
}

/// A state-machine snapshot at `index` of `term` for the voters of `cs`, as the WAL stores it.
fn encoded_snapshot(cs: ConfState, index: u64, term: u64) -> Vec<u8> {
    wal::encode_snapshot(&raft::eraftpb::Snapshot {
        data: b"sm".to_vec(),
        metadata: Some(raft::eraftpb::SnapshotMetadata {
            conf_state: Some(cs),
            index,
            term,
        }),
    })
}

fn msg(t: MessageType, from: u64, to: u64) -> Message {
    Message {
        msg_type: t as i32,
        from,
        to,
        term: 1,
        ..Default::default()
    }
}

#[test]
fn bad_configurations_are_errors() {
    assert!(matches!(fresh(0, &[1, 2]), Err(QuorumError::Config(_))));
    assert!(matches!(fresh(4, &[1, 2, 3]), Err(QuorumError::Config(_))));
    assert!(matches!(fresh(1, &[1, 0]), Err(QuorumError::Config(_))));
    let bad_timing = Timing {
        election_tick: 1,
        ..Timing::default()
    };
    assert!(Quorum::new(1, &[1], Recovered::default(), 0, bad_timing).is_err());
    assert!(matches!(
        Quorum::new(1, &[1, 2], Recovered::default(), 5, Timing::default()),
        Err(QuorumError::AppliedOutOfRange { .. })
    ));
    let mut q = fresh(1, &[1, 2, 3]).unwrap();
    // The bootstrap configuration is written with the first output.
    let out = q.ready().expect("the conf state must be persisted");
    let recovered = wal::recover(None, &out.persist.wal).unwrap();
    assert_eq!(
        Quorum::new(1, &[1, 2], recovered, 0, Timing::default()).unwrap_err(),
        QuorumError::VotersChanged {
            on_disk: vec![1, 2, 3],
            configured: vec![1, 2],
        }
    );
}

#[test]
fn step_refuses_what_raft_must_not_see() {
    let mut q = follower();
    let hb = |commit| Message {
        commit,
        ..msg(MessageType::MsgHeartbeat, 1, 2)
    };
    assert_eq!(
        q.step(msg(MessageType::MsgHeartbeat, 1, 3)),
        Err(StepError::WrongRecipient { to: 3 })
    );
    assert_eq!(
        q.step(msg(MessageType::MsgHeartbeat, 9, 2)),
        Err(StepError::UnknownPeer { from: 9 })
    );
    assert_eq!(
        q.step(msg(MessageType::MsgHeartbeat, 2, 2)),
        Err(StepError::UnknownPeer { from: 2 })
    );
    assert!(matches!(
        q.step(msg(MessageType::MsgHup, 1, 2)),
        Err(StepError::Invalid(_))
    ));
    let mut unknown = msg(MessageType::MsgHeartbeat, 1, 2);
    unknown.msg_type = 1000;
    assert!(matches!(q.step(unknown), Err(StepError::Invalid(_))));
    assert!(matches!(q.step(hb(9)), Err(StepError::Contradicts(_))));
    // A well-formed heartbeat within our log goes through.
    assert_eq!(q.step(hb(3)), Ok(()));
    assert_eq!(q.status().leader, Some(1));
}

/// The acknowledgement a follower sends for an append: (index, commit).
fn append_answer(q: &mut Quorum) -> (u64, u64) {
    let out = q.ready().expect("an answer");
    let answer = out
        .messages
        .iter()
        .chain(q.persisted(out.number).iter())
        .find(|m| m.get_msg_type() == MessageType::MsgAppendResponse)
        .cloned()
        .expect("an append response");
    (answer.index, answer.commit)
}

/// An append that starts below the commit index (a leader re-sending entries whose
/// acknowledgement it missed) is answered with the commit index, never applied over what is
/// committed, even when it names other terms.
#[test]
fn an_append_below_the_commit_index_is_answered_with_it() {
    let mut q = follower();
    let rewrite = Message {
        term: 2,
        index: 1,
        log_term: 1,
        entries: vec![Entry {
            index: 2,
            term: 2,
            ..Default::default()
        }],
        ..msg(MessageType::MsgAppend, 1, 2)
    };
    assert_eq!(q.step(rewrite), Ok(()));
    assert_eq!(append_answer(&mut q), (3, 3));
}

/// The same from below the compaction point, where the follower no longer knows the terms
/// (raft-rs reports them as 0): it used to be refused as contradicting the log, and the leader
/// re-sent it forever while this voter never caught up.
#[test]
fn an_append_from_below_the_compaction_point_is_answered_not_refused() {
    let cs = ConfState::from((vec![1, 2, 3], vec![]));
    let snapshot = encoded_snapshot(cs, 5, 2);
    let mut w = Vec::new();
    wal::encode_hard_state(
        &HardState {
            term: 2,
            vote: 1,
            commit: 5,
        },
        &mut w,
    );
    let recovered = wal::recover(Some(&snapshot), &w).unwrap();
    let mut q = Quorum::new(2, &[1, 2, 3], recovered, 5, Timing::default()).unwrap();
    while let Some(out) = q.ready() {
        q.persisted(out.number);
    }
    let resent = Message {
        term: 2,
        index: 2,
        log_term: 1,
        commit: 5,
        entries: (3..=6)
            .map(|index| Entry {
                index,
                term: if index <= 4 { 1 } else { 2 },
                data: b"x".to_vec(),
                ..Default::default()
            })
            .collect(),
        ..msg(MessageType::MsgAppend, 1, 2)
    };
    assert_eq!(q.step(resent), Ok(()));
    assert_eq!(append_answer(&mut q), (5, 5));
}

#[test]
fn propose_refusals() {
    let mut q = follower();
    assert_eq!(q.propose(Vec::new()), Err(ProposeError::Empty));
    assert_eq!(
        q.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader: None })
    );
}

#[test]
fn restart_replays_committed_entries_after_applied() {
    let mut w = Vec::new();
    wal::encode_conf_state(&ConfState::from((vec![1], vec![])), &mut w);
    let ents: Vec<Entry> = (1..=3)
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![index as u8],
            ..Default::default()
        })
        .collect();
    wal::encode_entries(&ents, &mut w);
    wal::encode_hard_state(
        &HardState {
            term: 1,
            vote: 1,
            commit: 3,
        },
        &mut w,
    );
    let recovered = wal::recover(None, &w).unwrap();
    let mut q = Quorum::new(1, &[1], recovered, 1, Timing::default()).unwrap();
    let out = q.ready().unwrap();
    let got: Vec<u64> = out.committed.iter().map(|c| c.index).collect();
    assert_eq!(got, vec![2, 3]);
    assert_eq!(out.applied, 3);
}

/// A crash between the two steps of an installed snapshot's rotation leaves the leader's
/// snapshot beside our old WAL, whose log ends before it (or diverges there), so recovery
/// drops the old WAL's entries beyond the snapshot. Appending to that WAL after the restart
/// would put acknowledged entries where the next recovery drops them too: the restart must
/// finish the rotation before anything else is written.
#[test]
fn restart_after_an_interrupted_install_finishes_the_rotation() {
    let voters = [1, 2, 3];
    let cs = ConfState::from((voters.to_vec(), vec![]));
    let ent = |index, term| Entry {
        index,
        term,
        data: b"x".to_vec(),
        ..Default::default()
    };
    // Old WAL: entries 1..=3 of term 1; the leader's snapshot stands at 5, term 2.
    let mut old_wal = Vec::new();
    wal::encode_conf_state(&cs, &mut old_wal);
    wal::encode_entries(
        &(1..=3).map(|i| ent(i, 1)).collect::<Vec<_>>(),
        &mut old_wal,
    );
    wal::encode_hard_state(
        &HardState {
            term: 1,
            vote: 1,
            commit: 3,
        },
        &mut old_wal,
    );
    let snapshot = encoded_snapshot(cs, 5, 2);
    let mut disk_wal = old_wal;
    let recovered = wal::recover(Some(&snapshot), &disk_wal).unwrap();
    assert_eq!(recovered.storage.last(), 5);
    let mut q = Quorum::new(2, &voters, recovered, 5, Timing::default()).unwrap();
    // The leader appends 6 and 7 after the snapshot; we write every output as the driver does.
    let mut append = msg(MessageType::MsgAppend, 1, 2);
    append.term = 2;
    append.index = 5;
    append.log_term = 2;
    append.commit = 5;
    append.entries = vec![ent(6, 2), ent(7, 2)];
    q.step(append).unwrap();
    let mut disk_snapshot = snapshot.clone();
    while let Some(out) = q.ready() {
        match out.persist.rotation {
            Some(rot) => {
                disk_snapshot = rot.snapshot_file;
                disk_wal = out.persist.wal;
            }
            None => disk_wal.extend_from_slice(&out.persist.wal),
        }
        q.persisted(out.number);
    }
    assert_eq!(q.storage().last(), 7);
    let again = wal::recover(Some(&disk_snapshot), &disk_wal).unwrap();
    assert_eq!(again.valid_len, disk_wal.len());
    assert_eq!(&again.storage, q.storage(), "acknowledged entries lost");
}
