//! The producer rules, driven append by append as a client and recovery would.

use super::*;
use crate::log::txn::{CompletedTxn, EndTxnMarker, MarkerKind};

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
        false,
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
    let mut marker = control;
    marker.attributes = 0x30;
    for (header, why) in [
        (control, "control batch"),
        (marker, "transaction marker"),
        (batch(PID, 0, -1, 1), "negative sequence"),
        (batch(PID, -1, 0, 1), "negative epoch"),
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

/// A transactional batch of `count` records.
fn txn_batch(producer_id: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
    let mut header = batch(producer_id, epoch, seq, count);
    header.attributes = 0x10;
    header
}

fn marker(kind: MarkerKind, coordinator_epoch: i32) -> EndTxnMarker {
    EndTxnMarker {
        kind,
        coordinator_epoch,
    }
}

/// Checks and commits a marker at `offset`; returns what it completed.
fn end(
    states: &mut ProducerStates,
    producer_id: i64,
    epoch: i16,
    marker: EndTxnMarker,
    offset: i64,
) -> Result<Option<CompletedTxn>, ProducerError> {
    let (update, completed) = states.check_marker(producer_id, epoch, marker, offset, 0)?;
    states.commit(update);
    Ok(completed)
}

#[test]
fn the_first_transactional_batch_opens_a_transaction_that_a_marker_closes() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 0, 0, 3), 10));
    appended(append(&mut states, txn_batch(PID, 0, 3, 2), 13));
    assert_eq!(states.get(PID).unwrap().current_txn_first_offset, Some(10));
    assert_eq!(states.first_open_txn_offset(), Some(10));
    let completed = end(&mut states, PID, 0, marker(MarkerKind::Abort, 4), 15).unwrap();
    assert_eq!(
        completed,
        Some(CompletedTxn {
            producer_id: PID,
            first_offset: 10,
            last_offset: 15,
            aborted: true
        })
    );
    let entry = states.get(PID).unwrap();
    assert_eq!(entry.current_txn_first_offset, None);
    assert_eq!(entry.coordinator_epoch, 4);
    assert_eq!(states.first_open_txn_offset(), None);
    // The next transaction opens at its own first batch; the sequence goes on.
    appended(append(&mut states, txn_batch(PID, 0, 5, 1), 16));
    assert_eq!(states.first_open_txn_offset(), Some(16));
    let completed = end(&mut states, PID, 0, marker(MarkerKind::Commit, 4), 17).unwrap();
    assert!(!completed.unwrap().aborted);
}

#[test]
fn a_transactional_batch_without_a_producer_is_refused() {
    let states = ProducerStates::default();
    let refused = states.check_client_append([(0, &txn_batch(NO_PRODUCER_ID, -1, -1, 1))], 0);
    assert!(
        matches!(refused, Err(ProducerError::InvalidRecord(_))),
        "{refused:?}"
    );
}

#[test]
fn a_plain_batch_during_an_open_transaction_is_invalid_txn_state() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 0, 0, 1), 0));
    let refused = append(&mut states, batch(PID, 0, 1, 1), 1);
    assert_eq!(
        refused,
        Err(ProducerError::NotInTransaction { producer_id: PID })
    );
    // Other producers are not affected, and after the marker plain batches are fine again.
    appended(append(&mut states, batch(PID + 1, 0, 0, 1), 1));
    end(&mut states, PID, 0, marker(MarkerKind::Commit, 0), 2).unwrap();
    appended(append(&mut states, batch(PID, 0, 1, 1), 3));
    // A retry of the transactional batch is still a duplicate, not a refusal.
    assert!(matches!(
        append(&mut states, txn_batch(PID, 0, 0, 1), 9),
        Ok(Verdict::Duplicate(_))
    ));
}

#[test]
fn markers_from_old_epochs_or_old_coordinators_are_fenced() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 2, 0, 1), 0));
    end(&mut states, PID, 2, marker(MarkerKind::Commit, 5), 1).unwrap();
    assert_eq!(
        states.check_marker(PID, 1, marker(MarkerKind::Abort, 5), 2, 0),
        Err(ProducerError::InvalidProducerEpoch {
            producer_id: PID,
            current: 2,
            got: 1
        })
    );
    assert_eq!(
        states.check_marker(PID, 2, marker(MarkerKind::Abort, 4), 2, 0),
        Err(ProducerError::TransactionCoordinatorFenced {
            producer_id: PID,
            current: 5,
            got: 4
        })
    );
    // The same coordinator epoch again is fine (a retried marker): it completes nothing.
    assert_eq!(
        end(&mut states, PID, 2, marker(MarkerKind::Commit, 5), 2),
        Ok(None)
    );
}

#[test]
fn a_marker_with_a_bumped_epoch_fences_the_old_epoch() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 0, 0, 2), 0));
    let completed = end(&mut states, PID, 1, marker(MarkerKind::Abort, 0), 2).unwrap();
    assert_eq!(completed.map(|c| c.first_offset), Some(0));
    assert_eq!(states.get(PID).unwrap().epoch, 1);
    assert!(matches!(
        append(&mut states, txn_batch(PID, 0, 2, 1), 3),
        Err(ProducerError::InvalidProducerEpoch { .. })
    ));
    // The new epoch starts its sequence at 0.
    appended(append(&mut states, txn_batch(PID, 1, 0, 1), 3));
}

#[test]
fn a_marker_for_an_unknown_producer_is_written_and_completes_nothing() {
    let mut states = ProducerStates::default();
    assert_eq!(
        end(&mut states, PID, 3, marker(MarkerKind::Abort, 1), 0),
        Ok(None)
    );
    let entry = states.get(PID).unwrap();
    assert_eq!((entry.epoch, entry.coordinator_epoch), (3, 1));
}

#[test]
fn the_lso_recorded_for_an_abort_is_the_next_other_open_transaction() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 0, 0, 1), 0));
    appended(append(&mut states, txn_batch(PID + 1, 0, 0, 1), 1));
    let (update, completed) = states
        .check_marker(PID, 0, marker(MarkerKind::Abort, 0), 2, 0)
        .unwrap();
    states.commit(update);
    let completed = completed.unwrap();
    assert_eq!(states.last_stable_offset_after(&completed), 1);
    let completed = end(&mut states, PID + 1, 0, marker(MarkerKind::Abort, 0), 3)
        .unwrap()
        .unwrap();
    assert_eq!(states.last_stable_offset_after(&completed), 4);
}

#[test]
fn producers_with_open_transactions_never_expire() {
    let mut states = ProducerStates::default();
    appended(append(&mut states, txn_batch(PID, 0, 0, 1), 0));
    assert_eq!(states.expire(i64::MAX, 1), 0);
    end(&mut states, PID, 0, marker(MarkerKind::Commit, 0), 1).unwrap();
    assert_eq!(states.expire(i64::MAX, 1), 1);
}

#[test]
fn replay_rebuilds_transactions_as_appends_and_markers_built_them() {
    let mut live = ProducerStates::default();
    let mut replayed = ProducerStates::default();
    let mut offset = 0;
    for (pid, seq, count) in [(PID, 0, 2), (PID + 1, 0, 1), (PID, 2, 3)] {
        let mut header = txn_batch(pid, 0, seq, count);
        appended(append(&mut live, header, offset));
        header.base_offset = offset;
        replayed.replay(&header, 0);
        offset += i64::from(count);
    }
    assert_eq!(replayed, live);
    let abort = marker(MarkerKind::Abort, 2);
    let live_done = end(&mut live, PID, 0, abort, offset).unwrap();
    let mut header = batch(PID, 0, -1, 1);
    header.attributes = 0x30;
    header.base_offset = offset;
    assert_eq!(replayed.replay_marker(&header, abort, 0), live_done);
    assert_eq!(replayed, live);
    assert_eq!(replayed.first_open_txn_offset(), Some(2));
}
