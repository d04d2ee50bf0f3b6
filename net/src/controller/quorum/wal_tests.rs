use super::*;
use raft::Storage;

fn ent(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec(),
        ..Default::default()
    }
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

fn cs() -> ConfState {
    ConfState::from((vec![1, 2, 3], vec![]))
}

/// conf state, entries 1..=3 (term 1), hard state, then a conflicting batch 3..=4 (term 2).
fn sample() -> Vec<u8> {
    let mut w = Vec::new();
    encode_conf_state(&cs(), &mut w);
    encode_entries(&[ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 1, b"c")], &mut w);
    encode_hard_state(&hs(1, 1, 2), &mut w);
    encode_entries(&[ent(3, 2, b"C"), ent(4, 2, b"d")], &mut w);
    encode_hard_state(&hs(2, 2, 3), &mut w);
    w
}

#[test]
fn round_trip_with_conflicting_append() {
    let w = sample();
    let r = recover(None, &w).unwrap();
    assert_eq!(r.valid_len, w.len());
    let s = &r.storage;
    assert_eq!(s.conf_state(), &cs());
    assert_eq!(s.hard_state(), &hs(2, 2, 3));
    let got: Vec<(u64, u64, Vec<u8>)> = s
        .log_entries()
        .iter()
        .map(|e| (e.index, e.term, e.data.clone()))
        .collect();
    // Appending at 3 dropped the old 3 (term 1) before adding the new 3 and 4.
    assert_eq!(
        got,
        vec![
            (1, 1, b"a".to_vec()),
            (2, 1, b"b".to_vec()),
            (3, 2, b"C".to_vec()),
            (4, 2, b"d".to_vec()),
        ]
    );
}

#[test]
fn a_shorter_conflicting_append_drops_the_longer_tail() {
    let mut w = Vec::new();
    encode_entries(
        &(1..=5).map(|i| ent(i, 1, b"x")).collect::<Vec<_>>(),
        &mut w,
    );
    encode_entries(&[ent(2, 3, b"y")], &mut w);
    let r = recover(None, &w).unwrap();
    assert_eq!(r.storage.last(), 2);
    assert_eq!(r.storage.term(2), Ok(3));
}

#[test]
fn torn_tail_at_every_offset_keeps_whole_frames_only() {
    let w = sample();
    // Frame boundaries: the valid_len of every prefix must be the largest boundary within it.
    let mut bounds = vec![0];
    let mut pos = 0;
    while pos < w.len() {
        let len = u32::from_be_bytes(w[pos..pos + 4].try_into().unwrap()) as usize;
        pos += FRAME_HEADER + len;
        bounds.push(pos);
    }
    assert_eq!(*bounds.last().unwrap(), w.len());
    for cut in 0..=w.len() {
        let r = recover(None, &w[..cut]).unwrap();
        let want = *bounds.iter().rev().find(|b| **b <= cut).unwrap();
        assert_eq!(r.valid_len, want, "cut at {cut}");
        // Recovering the kept prefix gives the same storage again.
        assert_eq!(recover(None, &w[..want]).unwrap(), r);
    }
}

#[test]
fn every_single_bit_flip_cuts_at_or_before_the_damaged_frame() {
    let w = sample();
    let clean = recover(None, &w).unwrap().storage;
    for byte in 0..w.len() {
        for bit in 0..8 {
            let mut bad = w.clone();
            bad[byte] ^= 1 << bit;
            let r = recover(None, &bad).unwrap();
            assert!(r.valid_len <= byte, "flip at {byte}.{bit} survived");
            assert!(r.valid_len < w.len());
            assert_ne!(r.storage, clean);
        }
    }
}

#[test]
fn corruption_in_the_middle_cuts_everything_after_it() {
    let mut w = Vec::new();
    encode_entries(&[ent(1, 1, b"a")], &mut w);
    let first = w.len();
    encode_entries(&[ent(2, 1, b"b")], &mut w);
    encode_entries(&[ent(3, 1, b"c")], &mut w);
    w[first + FRAME_HEADER + 2] ^= 0xff;
    let r = recover(None, &w).unwrap();
    assert_eq!(r.valid_len, first);
    assert_eq!(r.storage.last(), 1);
}

#[test]
fn zero_filled_preallocation_is_a_clean_end() {
    let mut w = sample();
    let len = w.len();
    w.resize(len + 4096, 0);
    assert_eq!(recover(None, &w).unwrap().valid_len, len);
}

#[test]
fn huge_claimed_lengths_do_not_allocate() {
    let mut w = Vec::new();
    w.extend_from_slice(&u32::MAX.to_be_bytes());
    w.extend_from_slice(&[0; 8]);
    assert_eq!(recover(None, &w).unwrap().valid_len, 0);
    let mut snap = SNAPSHOT_MAGIC.to_vec();
    snap.extend_from_slice(&[0; 4]);
    snap.extend_from_slice(&u32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&snap[12..]);
    snap[8..12].copy_from_slice(&crc.to_be_bytes());
    assert!(decode_snapshot(&snap).is_err());
}

#[test]
fn unknown_entry_type_or_kind_is_corruption() {
    let mut w = Vec::new();
    encode_entries(&[ent(1, 1, b"a")], &mut w);
    let good = w.len();
    let mut e = ent(2, 1, b"b");
    e.entry_type = 77;
    encode_entries(&[e], &mut w);
    assert_eq!(recover(None, &w).unwrap().valid_len, good);
    let mut w2 = w[..good].to_vec();
    frame(9, 0, &mut w2, |_| {});
    assert_eq!(recover(None, &w2).unwrap().valid_len, good);
}

fn snapshot_at(index: u64, term: u64) -> Snapshot {
    Snapshot {
        data: b"state machine".to_vec(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs()),
            index,
            term,
        }),
    }
}

#[test]
fn snapshot_round_trip_and_damage() {
    let snap = snapshot_at(7, 2);
    let bytes = encode_snapshot(&snap);
    assert_eq!(decode_snapshot(&bytes).unwrap(), snap);
    for cut in 0..bytes.len() {
        assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut {cut}");
    }
    for byte in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[byte] ^= 0x10;
        assert!(decode_snapshot(&bad).is_err(), "flip {byte}");
    }
}

#[test]
fn new_snapshot_with_old_wal_skips_covered_entries() {
    // Crash between writing the snapshot (index 3) and rotating the WAL.
    let w = sample();
    let r = recover(Some(&encode_snapshot(&snapshot_at(3, 2))), &w).unwrap();
    assert_eq!(r.valid_len, w.len());
    assert_eq!((r.storage.first(), r.storage.last()), (4, 4));
    assert_eq!(r.storage.term(3), Ok(2));
    assert_eq!(r.storage.hard_state(), &hs(2, 2, 3));
}

#[test]
fn rotated_head_recovers_the_same_log() {
    let mut s = recover(None, &sample()).unwrap().storage;
    s.create_snapshot(3, cs(), b"sm".to_vec()).unwrap();
    s.compact(4).unwrap();
    let snap = encode_snapshot(s.latest_snapshot());
    let r = recover(Some(&snap), &encode_head(&s)).unwrap();
    assert_eq!(r.storage, s);
}

#[test]
fn a_missing_batch_is_an_error_not_a_silent_cut() {
    let mut w = Vec::new();
    encode_entries(&[ent(1, 1, b"a")], &mut w);
    encode_entries(&[ent(3, 1, b"c")], &mut w);
    assert_eq!(recover(None, &w), Err(WalError::Gap { last: 1, found: 3 }));
}

#[test]
fn commit_beyond_the_log_is_clamped() {
    let mut w = Vec::new();
    encode_entries(&[ent(1, 1, b"a")], &mut w);
    encode_hard_state(&hs(1, 1, 9), &mut w);
    assert_eq!(recover(None, &w).unwrap().storage.hard_state().commit, 1);
}

#[test]
fn installed_snapshot_with_old_divergent_wal_drops_the_old_tail() {
    // The old log has 1..=5 at term 1; the leader's snapshot at 3 has term 2, so entries
    // 4..=5 of the old WAL belong to a log the snapshot replaced.
    let mut w = Vec::new();
    encode_entries(
        &(1..=5).map(|i| ent(i, 1, b"x")).collect::<Vec<_>>(),
        &mut w,
    );
    encode_hard_state(&hs(1, 1, 2), &mut w);
    let r = recover(Some(&encode_snapshot(&snapshot_at(3, 2))), &w).unwrap();
    assert_eq!((r.storage.first(), r.storage.last()), (4, 3));
    assert_eq!(r.storage.hard_state(), &hs(2, 0, 3));
    // With the snapshot's entry present at its term, the tail is kept.
    let r = recover(Some(&encode_snapshot(&snapshot_at(3, 1))), &w).unwrap();
    assert_eq!((r.storage.first(), r.storage.last()), (4, 5));
}

#[test]
fn entries_kept_without_their_hard_state_raise_the_term() {
    // A follower's write is [entries of term 2][hard state term 2]; the crash tore it
    // between the two frames.
    let mut w = Vec::new();
    encode_entries(&[ent(1, 1, b"a")], &mut w);
    encode_hard_state(&hs(1, 3, 1), &mut w);
    encode_entries(&[ent(2, 2, b"b")], &mut w);
    let r = recover(None, &w).unwrap();
    assert_eq!(r.storage.hard_state(), &hs(2, 0, 1));
}
