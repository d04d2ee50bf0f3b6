//! The Fetch response, written by hand around zero-copy record ranges (v4-v12).
//!
//! The codec crate needs each partition's records as one buffer; here they may instead be
//! ranges of segment files, sent later with splice. The encoding is checked byte for byte
//! against the codec's for every version (tests below).

use std::os::fd::OwnedFd;

use bytes::{BufMut, Bytes, BytesMut};

/// A partition's records in a response.
#[derive(Debug)]
pub enum Records {
    /// In memory (the copy path).
    Copied(Bytes),
    /// Ranges of segment files, sent with splice: (file, position, length).
    Files(Vec<(OwnedFd, u64, u64)>),
}

impl Records {
    pub fn len(&self) -> u64 {
        match self {
            Records::Copied(bytes) => bytes.len() as u64,
            Records::Files(ranges) => ranges.iter().map(|r| r.2).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps at most the first `max` bytes.
    pub fn truncate(&mut self, max: u64) {
        match self {
            Records::Copied(bytes) => bytes.truncate(max.min(bytes.len() as u64) as usize),
            Records::Files(ranges) => {
                let mut left = max;
                ranges.retain_mut(|(_, _, len)| {
                    *len = (*len).min(left);
                    left -= *len;
                    *len > 0
                });
            }
        }
    }
}

/// A transaction aborted within the records returned: a read_committed consumer drops its
/// producer's records from `first_offset` up to the abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One partition of the response.
#[derive(Debug)]
pub struct FetchPartition {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `None` (null) for read_uncommitted fetches, as Kafka sends it; read_committed ones
    /// always carry a list, empty when nothing in range was aborted.
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// For a follower whose log diverged from the leader's (KIP-320, v12+): the leader's
    /// largest epoch at or below the follower's last fetched one, and where it ends.
    pub diverging_epoch: Option<(i32, i64)>,
    pub records: Records,
}

/// The whole response body.
#[derive(Debug, Default)]
pub struct FetchBody {
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopic>,
}

/// One topic of the response.
#[derive(Debug)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
}

/// A piece of an encoded response: bytes to send, or a file range to splice.
#[derive(Debug)]
pub enum Piece {
    Bytes(Bytes),
    File {
        fd: OwnedFd,
        position: u64,
        len: u64,
    },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encodes `reply` at `version` (4..=12) into pieces; record bytes stay where they are.
pub fn encode(reply: FetchBody, version: i16) -> Vec<Piece> {
    assert!(
        (4..=12).contains(&version),
        "Fetch v{version} is not served"
    );
    let flexible = version >= 12;
    let mut out = Pieces::default();
    let buf = &mut out.current;
    buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        buf.put_i16(reply.error_code);
        buf.put_i32(reply.session_id);
    }
    put_len(buf, reply.topics.len(), flexible);
    for topic in reply.topics {
        put_string(&mut out.current, &topic.name, flexible);
        put_len(&mut out.current, topic.partitions.len(), flexible);
        for partition in topic.partitions {
            let buf = &mut out.current;
            buf.put_i32(partition.partition_index);
            buf.put_i16(partition.error_code);
            buf.put_i64(partition.high_watermark);
            buf.put_i64(partition.last_stable_offset);
            if version >= 5 {
                buf.put_i64(partition.log_start_offset);
            }
            put_aborted(buf, partition.aborted_transactions.as_deref(), flexible);
            if version >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            let len = partition.records.len();
            if flexible {
                put_uvarint(buf, len + 1);
            } else {
                buf.put_i32(len as i32);
            }
            match partition.records {
                Records::Copied(bytes) => out.push(Piece::Bytes(bytes)),
                Records::Files(ranges) => {
                    for (fd, position, len) in ranges {
                        out.push(Piece::File { fd, position, len });
                    }
                }
            }
            if flexible {
                put_partition_tags(&mut out.current, partition.diverging_epoch);
            }
        }
        if flexible {
            out.current.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        out.current.put_u8(0); // response tagged fields
    }
    out.finish()
}

#[derive(Default)]
struct Pieces {
    done: Vec<Piece>,
    current: BytesMut,
}

impl Pieces {
    fn push(&mut self, piece: Piece) {
        if !self.current.is_empty() {
            self.done.push(Piece::Bytes(self.current.split().freeze()));
        }
        if !piece.is_empty() {
            self.done.push(piece);
        }
    }

    fn finish(mut self) -> Vec<Piece> {
        if !self.current.is_empty() {
            self.done.push(Piece::Bytes(self.current.split().freeze()));
        }
        self.done
    }
}

fn put_uvarint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// An array length: compact (n + 1, varint) in flexible versions, i32 before.
fn put_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

/// A partition's tagged fields: the diverging epoch (tag 0, an EpochEndOffset of its own
/// epoch, end offset and empty tags) when there is one.
fn put_partition_tags(buf: &mut BytesMut, diverging_epoch: Option<(i32, i64)>) {
    match diverging_epoch {
        None => buf.put_u8(0),
        Some((epoch, end_offset)) => {
            put_uvarint(buf, 1); // one tagged field
            put_uvarint(buf, 0); // its tag
            put_uvarint(buf, 4 + 8 + 1); // its size
            buf.put_i32(epoch);
            buf.put_i64(end_offset);
            buf.put_u8(0); // its own tagged fields
        }
    }
}

/// The nullable aborted_transactions array (each entry with its own tagged fields when
/// flexible).
fn put_aborted(buf: &mut BytesMut, aborted: Option<&[AbortedTransaction]>, flexible: bool) {
    let Some(aborted) = aborted else {
        if flexible {
            put_uvarint(buf, 0);
        } else {
            buf.put_i32(-1);
        }
        return;
    };
    put_len(buf, aborted.len(), flexible);
    for txn in aborted {
        buf.put_i64(txn.producer_id);
        buf.put_i64(txn.first_offset);
        if flexible {
            buf.put_u8(0);
        }
    }
}

fn put_string(buf: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::{AbortedTransaction as Aborted, *};
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn reply() -> FetchBody {
        let partition = |index: i32, records: &[u8]| FetchPartition {
            partition_index: index,
            error_code: if index == 2 { 1 } else { 0 },
            high_watermark: 1000 + i64::from(index),
            last_stable_offset: 900,
            log_start_offset: 5,
            // A read_uncommitted partition, a read_committed one with nothing aborted, and
            // one with aborted transactions.
            aborted_transactions: match index {
                0 => None,
                2 => Some(Vec::new()),
                _ => Some(vec![
                    Aborted {
                        producer_id: 4000,
                        first_offset: 17,
                    },
                    Aborted {
                        producer_id: -7,
                        first_offset: i64::MAX,
                    },
                ]),
            },
            // A follower told where its log diverged.
            diverging_epoch: (index == 7).then_some((3, 4242)),
            records: Records::Copied(Bytes::copy_from_slice(records)),
        };
        FetchBody {
            error_code: 0,
            session_id: 0,
            topics: vec![
                FetchTopic {
                    name: "orders".into(),
                    partitions: vec![partition(0, b"abc"), partition(2, b"")],
                },
                FetchTopic {
                    name: "x".repeat(200),
                    partitions: vec![partition(7, &[9u8; 300])],
                },
            ],
        }
    }

    /// The same response, encoded by the codec crate.
    fn codec_bytes(reply: &FetchBody, version: i16) -> Vec<u8> {
        let mut response = FetchResponse::default();
        response.error_code = reply.error_code;
        response.session_id = reply.session_id;
        for topic in &reply.topics {
            let mut t = FetchableTopicResponse::default();
            t.topic = TopicName(StrBytes::from_string(topic.name.clone()));
            for p in &topic.partitions {
                let mut d = PartitionData::default();
                d.partition_index = p.partition_index;
                d.error_code = p.error_code;
                d.high_watermark = p.high_watermark;
                d.last_stable_offset = p.last_stable_offset;
                d.log_start_offset = p.log_start_offset;
                d.aborted_transactions = p.aborted_transactions.as_ref().map(|list| {
                    list.iter()
                        .map(|a| {
                            let mut t = AbortedTransaction::default();
                            t.producer_id = ProducerId(a.producer_id);
                            t.first_offset = a.first_offset;
                            t
                        })
                        .collect()
                });
                d.preferred_read_replica = BrokerId(-1);
                if let Some((epoch, end_offset)) = p.diverging_epoch {
                    d.diverging_epoch.epoch = epoch;
                    d.diverging_epoch.end_offset = end_offset;
                }
                d.records = match &p.records {
                    Records::Copied(b) => Some(b.clone()),
                    Records::Files(_) => unreachable!(),
                };
                t.partitions.push(d);
            }
            response.responses.push(t);
        }
        let mut out = BytesMut::new();
        response.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    #[test]
    fn matches_the_codec_at_every_version() {
        for version in 4..=12 {
            let expected = codec_bytes(&reply(), version);
            let pieces = encode(reply(), version);
            let mut ours = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Bytes(b) => ours.extend_from_slice(&b),
                    Piece::File { .. } => unreachable!(),
                }
            }
            assert_eq!(ours, expected, "v{version}");
        }
    }

    #[test]
    fn truncation_keeps_a_prefix() {
        let mut copied = Records::Copied(Bytes::from_static(b"abcdef"));
        copied.truncate(4);
        assert!(matches!(&copied, Records::Copied(b) if b == &b"abcd"[..]));
        let file = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let mut files = Records::Files(vec![(file(), 0, 10), (file(), 100, 10), (file(), 200, 10)]);
        files.truncate(15);
        let Records::Files(ranges) = &files else {
            unreachable!()
        };
        let kept: Vec<_> = ranges.iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(kept, vec![(0, 10), (100, 5)]);
        files.truncate(0);
        assert!(files.is_empty());
    }

    #[test]
    fn file_ranges_become_their_own_pieces() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let reply = FetchBody {
            topics: vec![FetchTopic {
                name: "t".into(),
                partitions: vec![FetchPartition {
                    partition_index: 0,
                    error_code: 0,
                    high_watermark: 10,
                    last_stable_offset: 10,
                    log_start_offset: 0,
                    aborted_transactions: None,
                    diverging_epoch: None,
                    records: Records::Files(vec![(file.into(), 4096, 777)]),
                }],
            }],
            ..FetchBody::default()
        };
        let pieces = encode(reply, 12);
        assert_eq!(
            pieces.len(),
            3,
            "header bytes, the file range, the trailing tags"
        );
        assert!(matches!(
            pieces[1],
            Piece::File {
                position: 4096,
                len: 777,
                ..
            }
        ));
    }
}
