//! The body of a controller-listener frame: a kind byte, then the payload.

use bytes::{BufMut, Bytes, BytesMut};

/// The largest frame accepted: a metadata snapshot sent whole to a lagging voter must fit
/// (the same limit as raft messages themselves, `quorum::wire::DEFAULT_MAX_FRAME`).
pub const MAX_FRAME_BYTES: usize = crate::controller::quorum::wire::DEFAULT_MAX_FRAME;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A raft-rs message from one voter to another (prost-encoded).
    Raft = 1,
    /// A Kafka request (header and body) from a broker to the controller.
    Request = 2,
    /// The Kafka response to a [`Kind::Request`] on the same connection.
    Response = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Raft),
            2 => Some(Kind::Request),
            3 => Some(Kind::Response),
            _ => None,
        }
    }
}

/// A frame (size, kind, payload) ready to send.
pub fn encode_frame(kind: Kind, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u32((payload.len() + 1) as u32);
    out.put_u8(kind as u8);
    out.put_slice(payload);
    out.freeze()
}

/// Splits a received frame body into its kind and payload; `None` for an empty body or an
/// unknown kind (the peer speaks something else: the connection is closed).
pub fn decode_body(mut body: Bytes) -> Option<(Kind, Bytes)> {
    let kind = Kind::from_byte(*body.first()?)?;
    let _ = body.split_to(1);
    Some((kind, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_through_the_kafka_framing() {
        let frame = encode_frame(Kind::Request, b"hello");
        assert_eq!(&frame[..4], &6u32.to_be_bytes());
        let (kind, payload) = decode_body(frame.slice(4..)).unwrap();
        assert_eq!(kind, Kind::Request);
        assert_eq!(&payload[..], b"hello");
    }

    #[test]
    fn empty_and_unknown_bodies_are_refused() {
        assert_eq!(decode_body(Bytes::new()), None);
        assert_eq!(decode_body(Bytes::from_static(&[0, 1, 2])), None);
        assert_eq!(decode_body(Bytes::from_static(&[4])), None);
        let (kind, payload) = decode_body(Bytes::from_static(&[1])).unwrap();
        assert_eq!((kind, payload.len()), (Kind::Raft, 0));
    }
}
