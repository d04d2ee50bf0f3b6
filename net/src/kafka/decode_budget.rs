//! How much memory decoding one request may take, relative to its frame.
//!
//! The codec's length checks keep every claimed count within the bytes left, but an element
//! that is small on the wire can be large in memory: a Metadata v0 topic is 2 bytes on the
//! wire and 72 in its `Vec`, so a 100 MB frame of empty topic names decodes to 3.6 GB. The
//! vendored codec charges each array (`count * size_of::<T>()`) and each copied string or
//! bytes field (`len`) to a per-decode budget before allocating it (vendor/README.md); this
//! module sets that budget and runs the decode under it. A request over it is refused as
//! malformed, which closes the connection, as Kafka closes on any request it can't parse.

use kafka_protocol::protocol::types::decode_with_budget;

/// Decoded bytes allowed per frame byte. Real requests stay far below it: names and ids
/// make their elements many bytes on the wire (a Metadata topic named `orders` is 8 bytes
/// for 72 in memory, 9x), and Produce's records are zero-copy slices of the frame.
pub const FACTOR: usize = 16;

/// Every request may use at least this much, whatever its size: small requests, however
/// odd their shape, are never refused, and the bound it adds per connection is small.
pub const FLOOR: usize = 4 << 20;

/// The budget for decoding a frame of `frame_len` bytes.
pub fn budget(frame_len: usize) -> usize {
    frame_len.saturating_mul(FACTOR).max(FLOOR)
}

/// Runs `decode` (the header and body decode of a frame of `frame_len` bytes) under the
/// frame's budget.
pub fn within_budget<R>(frame_len: usize, decode: impl FnOnce() -> R) -> R {
    decode_with_budget(budget(frame_len), decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, RequestKind};

    /// A Metadata v0 body: `count` topics, each an empty name (2 bytes).
    fn hostile_metadata(count: usize) -> Bytes {
        let mut body = BytesMut::with_capacity(4 + 2 * count);
        body.put_i32(count as i32);
        for _ in 0..count {
            body.put_i16(0);
        }
        body.freeze()
    }

    fn decode(key: ApiKey, version: i16, mut body: Bytes) -> Result<RequestKind, String> {
        let len = body.len();
        within_budget(len, || RequestKind::decode(key, &mut body, version))
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn budget_is_proportional_with_a_floor() {
        assert_eq!(budget(0), FLOOR);
        assert_eq!(budget(1000), FLOOR);
        assert_eq!(budget(10 << 20), 160 << 20);
        assert_eq!(budget(usize::MAX), usize::MAX);
    }

    #[test]
    fn hostile_metadata_is_refused_before_allocating() {
        // 4 MiB of 2-byte topics: 2M topics, ~150 MB decoded, over 16 x 4 MiB = 64 MiB.
        let body = hostile_metadata(2 << 20);
        let err = decode(ApiKey::Metadata, 0, body).unwrap_err();
        assert!(err.contains("decode budget"), "{err}");
    }

    #[test]
    fn small_hostile_requests_fit_the_floor() {
        // Under the floor the same shape decodes (50k topics, 3.6 MB decoded).
        let RequestKind::Metadata(request) =
            decode(ApiKey::Metadata, 0, hostile_metadata(50_000)).unwrap()
        else {
            panic!("not a metadata request");
        };
        assert_eq!(request.topics.unwrap().len(), 50_000);
    }

    #[test]
    fn the_budget_ends_with_the_decode() {
        let _ = decode(ApiKey::Metadata, 0, hostile_metadata(2 << 20));
        // Outside `within_budget` decoding is unlimited again, as upstream.
        let mut body = hostile_metadata(2 << 20);
        assert!(RequestKind::decode(ApiKey::Metadata, &mut body, 0).is_ok());
    }

    #[test]
    fn a_large_produce_request_still_decodes() {
        // Produce v3 by hand (this codec build decodes requests only): no transactional id,
        // acks, timeout, one topic with one partition holding 100 MiB of records.
        let mut body = BytesMut::new();
        body.put_i16(-1);
        body.put_i16(1);
        body.put_i32(5000);
        body.put_i32(1);
        body.put_i16(3);
        body.put_slice(b"big");
        body.put_i32(1);
        body.put_i32(0);
        body.put_i32(100 << 20);
        body.put_bytes(7, 100 << 20);
        let RequestKind::Produce(decoded) = decode(ApiKey::Produce, 3, body.freeze()).unwrap()
        else {
            panic!("not a produce request");
        };
        let records = decoded.topic_data[0].partition_data[0].records.as_ref();
        assert_eq!(records.map(Bytes::len), Some(100 << 20));
    }
}
