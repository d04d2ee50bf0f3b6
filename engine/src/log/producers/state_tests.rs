//! The producer rules, driven append by append as a client and recovery would.

use super::*;

const PID: i64 = 1000;

/// A header of `count` records from `producer_id`, epoch `epoch`, first sequence `seq`.
fn batch(producer_id: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 1,
        max_timestamp: 1,
        producer_id,
        producer_epoch: epoch,
        base_sequence: seq,
        records_count: count,
    }
}

/// Checks and, when it is to be written, commits one batch at `offset`.
fn append(
    states: &mut ProducerStates,
    header: BatchHeader,
    offset: i64,
) -> Result<Verdict, ProducerError> {
    let verdict = states.check_client_append([(offset, &header)], 0)?;
    if let Verdict::Append(update) = &verdict {
        states.commit(update.clone());
    }
    Ok(verdict)
}

fn appended(verdict: Result<Verdict, ProducerError>) {
    assert!(
        matches!(verdict, Ok(Verdict::Append(_))),
        "expected an append, got {verdict:?}"
    );
}

#[test]
fn sequences_that_follow_are_appended_and_remembered() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, batch(PID, 0, 0, 3), 0));
    appended(append(&mut states, batch(PID, 0, 3, 2), 3));
    let entry = states.get(PID).unwrap();
    assert_eq!(entry.last_seq(), Some(4));
    assert_eq!(entry.last_offset(), Some(4));
}

#[test]
fn a_retry_of_any_of_the_last_five_batches_gets_its_first_offsets() {
    let mut states = ProducerStates::default();
    for i in 0..7 {
        appended(append(
            &mut states,
            batch(PID, 0, i * 2, 2),
            100 + i64::from(i) * 2,
        ));
    }
    // Batches 2..=6 are retained; 0 and 1 fell out.
    for i in 2..7 {
        let verdict = append(&mut states, batch(PID, 0, i * 2, 2), 999).unwrap();
        let Verdict::Duplicate(original) = verdict else {
            panic!("batch {i} not recognised: {verdict:?}");
        };
        assert_eq!(original.first_offset, 100 + i64::from(i) * 2);
        assert_eq!(original.last_offset, 101 + i64::from(i) * 2);
    }
    let too_old = append(&mut states, batch(PID, 0, 2, 2), 999);
    assert!(matches!(
        too_old,
        Err(ProducerError::OutOfOrderSequence {
            expected: 14,
            got: 2,
            ..
        })
    ));
}

#[test]
fn a_gap_is_out_of_order_and_changes_nothing() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, batch(PID, 0, 0, 1), 0));
    let before = states.clone();
    let gap = append(&mut states, batch(PID, 0, 2, 1), 1);
    assert_eq!(
        gap,
        Err(ProducerError::OutOfOrderSequence {
            producer_id: PID,
            expected: 1,
            got: 2
        })
    );
    assert_eq!(states, before);
}

#[test]
fn an_older_epoch_is_fenced() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, batch(PID, 3, 0, 1), 0));
    assert_eq!(
        append(&mut states, batch(PID, 2, 1, 1), 1),
        Err(ProducerError::InvalidProducerEpoch {
            producer_id: PID,
            current: 3,
            got: 2
        })
    );
}

#[test]
fn a_new_epoch_starts_at_sequence_zero_and_forgets_the_old_batches() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, batch(PID, 0, 0, 5), 0));
    assert!(matches!(
        append(&mut states, batch(PID, 1, 5, 1), 5),
        Err(ProducerError::OutOfOrderSequence {
            expected: 0,
            got: 5,
            ..
        })
    ));
    appended(append(&mut states, batch(PID, 1, 0, 1), 5));
    // The old epoch's batch is no longer a duplicate but a fenced epoch.
    assert!(matches!(
        append(&mut states, batch(PID, 0, 0, 5), 6),
        Err(ProducerError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn an_unknown_producer_must_start_at_zero() {
    let mut states = ProducerStates::default();
    assert_eq!(
        append(&mut states, batch(PID, 0, 7, 1), 0),
        Err(ProducerError::UnknownProducerId {
            producer_id: PID,
            got: 7
        })
    );
    appended(append(&mut states, batch(PID, 0, 0, 1), 0));
}

#[test]
fn sequences_wrap_from_max_to_zero() {
    assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
    let mut states = ProducerStates::default();
    let mut entry = ProducerEntry::new(0);
    entry.add(
        0,
        BatchMetadata {
            first_seq: i32::MAX - 2,
            last_seq: i32::MAX,
            first_offset: 0,
            last_offset: 2,
            max_timestamp: 0,
        },
        0,
    );
    states.insert(PID, entry);
    appended(append(&mut states, batch(PID, 0, 0, 2), 3));
    assert_eq!(states.get(PID).unwrap().last_seq(), Some(1));
}

#[test]
fn several_batches_of_one_producer_in_a_request_are_checked_in_turn() {
    let states = ProducerStates::default();
    let (a, b, c) = (
        batch(PID, 0, 0, 2),
        batch(PID, 0, 2, 2),
        batch(PID, 0, 5, 1),
    );
    assert!(matches!(
        states.check_client_append([(0, &a), (2, &b)], 0),
        Ok(Verdict::Append(_))
    ));
    assert!(matches!(
        states.check_client_append([(0, &a), (2, &b), (4, &c)], 0),
        Err(ProducerError::OutOfOrderSequence {
            expected: 4,
            got: 5,
            ..
        })
    ));
}

#[test]
fn batches_without_a_producer_are_not_tracked() {
    let states = ProducerStates::default();
    for no_producer in [NO_PRODUCER_ID, -5] {
        let verdict = states
            .check_client_append([(0, &batch(no_producer, -1, -1, 3))], 0)
            .unwrap();
        assert_eq!(verdict, Verdict::Append(ProducerUpdate::default()));
    }
}

#[test]
fn batches_no_idempotent_producer_sends_are_refused() {
    let states = ProducerStates::default();
    let mut control = batch(PID, 0, 0, 1);
    control.attributes = 0x20;
    let mut transactional = batch(PID, 0, 0, 1);
    transactional.attributes = 0x10;
    for (header, why) in [
        (control, "control batch"),
        (batch(PID, 0, -1, 1), "negative sequence"),
        (batch(PID, -1, 0, 1), "negative epoch"),
        (transactional, "transactional"),
    ] {
        let refused = states.check_client_append([(0, &header)], 0);
        assert!(refused.is_err(), "{why} accepted: {refused:?}");
    }
}

#[test]
fn replay_rebuilds_what_appends_built() {
    let mut live = ProducerStates::default();
    let mut replayed = ProducerStates::default();
    let mut offset = 0;
    for (epoch, seq, count) in [(0, 0, 2), (0, 2, 3), (1, 0, 1), (1, 1, 4)] {
        let mut header = batch(PID, epoch, seq, count);
        appended(append(&mut live, header, offset));
        header.base_offset = offset;
        replayed.replay(&header, 0);
        offset += i64::from(count);
    }
    assert_eq!(replayed, live);
}

#[test]
fn producers_idle_past_the_expiration_are_forgotten() {
    let mut states = ProducerStates::default();
    let header = batch(PID, 0, 0, 1);
    let Verdict::Append(update) = states.check_client_append([(0, &header)], 1_000).unwrap() else {
        panic!("not appended");
    };
    states.commit(update);
    assert_eq!(states.expire(1_000 + 59_999, 60_000), 0);
    assert_eq!(states.expire(1_000 + 60_000, 60_000), 1);
    assert!(states.get(PID).is_none());
}
