//! Raft messages between controllers: `[len u32 big-endian][prost Message]` frames.
//!
//! Decoding refuses a frame longer than the caller's limit before allocating for it, and
//! [`validate`] checks everything raft-rs would otherwise trust: the generated
//! `get_msg_type()`/`get_entry_type()` accessors panic on unknown enum values, and raft-rs
//! panics on a few malformed shapes (non-contiguous entries, a snapshot message without
//! metadata), so nothing from the network reaches raft unchecked. The limit must exceed the
//! largest metadata snapshot, which travels in one `MsgSnapshot`.

use prost::Message as _;
use raft::eraftpb::{EntryType, Message, MessageType};

/// A reasonable frame limit: snapshots of the metadata image travel whole in one message.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// The most entries one append may carry (raft batches by `max_size_per_msg`, 1 MiB).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 64 * 1024;

const LEN_PREFIX: usize = 4;

/// Why a frame or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("message does not decode")]
    Decode,
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// Appends `msg` as one frame.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(&(msg.encoded_len() as u32).to_be_bytes());
    msg.encode(out).expect("a Vec<u8> grows as needed");
}

/// Decodes the frame at the start of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the validated message and the bytes it took.
pub fn decode(buf: &[u8], max_frame: usize) -> Result<Option<(Message, usize)>, WireError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > max_frame {
        return Err(WireError::TooLarge {
            len,
            max: max_frame,
        });
    }
    let Some(body) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    let msg = Message::decode(body).map_err(|_| WireError::Decode)?;
    validate(&msg)?;
    Ok(Some((msg, LEN_PREFIX + len)))
}

/// The message types controllers exchange. Local ones (MsgHup, MsgBeat, ...) must never come
/// from the network; forwarded proposals, read-index and leader transfer are not used.
fn peer_message(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgAppend
            | MessageType::MsgAppendResponse
            | MessageType::MsgRequestVote
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVote
            | MessageType::MsgRequestPreVoteResponse
            | MessageType::MsgSnapshot
            | MessageType::MsgHeartbeat
            | MessageType::MsgHeartbeatResponse
    )
}

/// Checks a message from a peer before raft sees it (shape only; who may send it and what
/// it may say about our log is [`super::node::Quorum::step`]'s job).
pub fn validate(msg: &Message) -> Result<(), WireError> {
    let t = MessageType::from_i32(msg.msg_type).ok_or(WireError::Invalid("unknown type"))?;
    if !peer_message(t) {
        return Err(WireError::Invalid("not a peer message type"));
    }
    if msg.from == 0 || msg.to == 0 {
        return Err(WireError::Invalid("missing sender or recipient"));
    }
    // raft-rs treats term 0 as a local message; every peer message carries a term.
    if msg.term == 0 {
        return Err(WireError::Invalid("term 0"));
    }
    if !msg.entries.is_empty() && t != MessageType::MsgAppend {
        return Err(WireError::Invalid("entries on a message that carries none"));
    }
    if msg.entries.len() > MAX_ENTRIES_PER_MESSAGE {
        return Err(WireError::Invalid("too many entries"));
    }
    let mut expect_index = msg.index;
    let mut prev_term = msg.log_term;
    for e in &msg.entries {
        EntryType::from_i32(e.entry_type).ok_or(WireError::Invalid("unknown entry type"))?;
        expect_index = expect_index
            .checked_add(1)
            .ok_or(WireError::Invalid("entry index overflows"))?;
        if e.index != expect_index {
            return Err(WireError::Invalid("entries are not contiguous after index"));
        }
        if e.term < prev_term || e.term > msg.term {
            return Err(WireError::Invalid("entry terms out of order"));
        }
        prev_term = e.term;
    }
    if t == MessageType::MsgSnapshot {
        let meta = msg
            .snapshot
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .ok_or(WireError::Invalid("snapshot without metadata"))?;
        let voters = meta.conf_state.as_ref().map(|c| c.voters.as_slice());
        if meta.index == 0 || meta.term == 0 || voters.is_none_or(|v| v.is_empty()) {
            return Err(WireError::Invalid("snapshot metadata incomplete"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{ConfState, Entry, Snapshot, SnapshotMetadata};

    fn append() -> Message {
        Message {
            msg_type: MessageType::MsgAppend as i32,
            from: 1,
            to: 2,
            term: 3,
            index: 4,
            log_term: 2,
            commit: 4,
            entries: vec![
                Entry {
                    index: 5,
                    term: 2,
                    data: b"x".to_vec(),
                    ..Default::default()
                },
                Entry {
                    index: 6,
                    term: 3,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn snapshot_msg() -> Message {
        Message {
            msg_type: MessageType::MsgSnapshot as i32,
            from: 1,
            to: 2,
            term: 3,
            snapshot: Some(Snapshot {
                data: b"sm".to_vec(),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(ConfState::from((vec![1, 2, 3], vec![]))),
                    index: 9,
                    term: 2,
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_partial_frames() {
        for msg in [append(), snapshot_msg()] {
            let mut buf = Vec::new();
            encode(&msg, &mut buf);
            encode(&msg, &mut buf);
            let (got, used) = decode(&buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
            assert_eq!(got, msg);
            assert_eq!(used * 2, buf.len());
            for cut in 0..used {
                assert_eq!(decode(&buf[..cut], DEFAULT_MAX_FRAME), Ok(None));
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_reading_them() {
        let buf = u32::MAX.to_be_bytes();
        assert!(matches!(
            decode(&buf, 1024),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn invalid_shapes_are_refused() {
        let mut cases: Vec<Message> = Vec::new();
        let mut m = append();
        m.msg_type = 99;
        cases.push(m);
        let mut m = append();
        m.msg_type = MessageType::MsgHup as i32;
        cases.push(m);
        let mut m = append();
        m.msg_type = MessageType::MsgPropose as i32;
        cases.push(m);
        let mut m = append();
        m.entries[1].entry_type = 7;
        cases.push(m);
        let mut m = append();
        m.entries[1].index = 8;
        cases.push(m);
        let mut m = append();
        m.entries[0].term = 9;
        cases.push(m);
        let mut m = append();
        m.term = 0;
        cases.push(m);
        let mut m = append();
        m.from = 0;
        cases.push(m);
        let mut m = append();
        m.index = u64::MAX;
        cases.push(m);
        let mut m = snapshot_msg();
        m.snapshot.as_mut().unwrap().metadata = None;
        cases.push(m);
        let mut m = snapshot_msg();
        m.snapshot = None;
        cases.push(m);
        let mut m = snapshot_msg();
        m.snapshot.as_mut().unwrap().mut_metadata().conf_state = None;
        cases.push(m);
        let mut m = append();
        m.msg_type = MessageType::MsgHeartbeat as i32;
        cases.push(m);
        for (i, m) in cases.iter().enumerate() {
            assert!(validate(m).is_err(), "case {i} accepted");
            let mut buf = Vec::new();
            encode(m, &mut buf);
            assert!(decode(&buf, DEFAULT_MAX_FRAME).is_err(), "case {i} decoded");
        }
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Random bytes, truncations and mutations of valid frames never panic, and whatever
    /// decodes passes validation (so raft's accessors cannot panic on it).
    #[test]
    fn fuzzish_decode_never_panics() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut seeds = Vec::new();
        for msg in [append(), snapshot_msg()] {
            let mut buf = Vec::new();
            encode(&msg, &mut buf);
            seeds.push(buf);
        }
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut buf = if round % 4 == 0 {
                let len = (rng.next() % 96) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if b.len() >= 4 {
                    let body = (b.len() - 4) as u32;
                    b[..4].copy_from_slice(&body.to_be_bytes());
                }
                b
            } else {
                seeds[(rng.next() % 2) as usize].clone()
            };
            for _ in 0..(rng.next() % 4) {
                if buf.is_empty() {
                    break;
                }
                let i = (rng.next() as usize) % buf.len();
                buf[i] ^= 1 << (rng.next() % 8);
            }
            let cut = (rng.next() as usize) % (buf.len() + 1);
            buf.truncate(cut.max(buf.len() / 2));
            if let Ok(Some((msg, _))) = decode(&buf, 1 << 16) {
                accepted += 1;
                let _ = msg.get_msg_type();
                msg.entries.iter().for_each(|e| {
                    let _ = e.get_entry_type();
                });
            }
        }
        assert!(accepted > 0, "the fuzz never produced a valid message");
    }
}
