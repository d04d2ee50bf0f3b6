//! How a broker-only node follows the metadata log: as Kafka's KRaft observers do, it sends
//! Fetch for the partition `__cluster_metadata`-0 to the quorum's leader on the controller
//! listener, from the entry after the last it applied, and FetchSnapshot when the leader
//! answers that those entries are compacted away.
//!
//! The envelopes are Kafka's; what they carry is ours. Offsets are raft indexes. A Fetch
//! answer's records are the committed entries that hold metadata records, each as its index
//! (8 bytes), its length (4 bytes) and the batch `encode_batch` wrote; its high watermark is
//! the last index the answer covers (entries without records are skipped, so an observer
//! moves to it even when no entry is sent). A FetchSnapshot answer is the leader's metadata
//! image, whole, at the index named by its snapshot id.
//!
//! Only the quorum's leader answers: a voter cut off from the others would otherwise keep an
//! observer on old metadata without either noticing. Others say NOT_LEADER_OR_FOLLOWER and
//! name the leader they know.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, PartitionData, SnapshotId,
};
use kafka_protocol::messages::fetch_snapshot_response::{self, PartitionSnapshot, TopicSnapshot};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_engine::rt;

use super::voter::{CommittedSince, Voter};
use crate::controller::quorum::Role;
pub use crate::handlers::describe_quorum::METADATA_TOPIC;
use crate::kafka::error_code;

/// The Fetch version observers send: the last that names topics (not ids) and the first
/// whose answers can point at a snapshot.
pub const FETCH_VERSION: i16 = 12;
pub const FETCH_SNAPSHOT_VERSION: i16 = 0;
/// Runnel's own tagged field on a Fetch answer's partition (flexible versions; other
/// decoders keep or skip tags they do not know): the index the leader's image stands at, an
/// 8-byte big-endian number. An observer that starts from nothing reads from the first entry
/// on, a megabyte per answer, and must know how far it has to get before its image is as new
/// as the quorum's was: before that its image is an older cluster's (see
/// [`leader_applied`]).
const LEADER_APPLIED_TAG: i32 = 10_000;

/// Puts the leader's applied index on an answer.
pub fn set_leader_applied(partition: &mut PartitionData, applied: u64) {
    partition.unknown_tagged_fields.insert(
        LEADER_APPLIED_TAG,
        Bytes::copy_from_slice(&applied.to_be_bytes()),
    );
}

/// The leader's applied index an answer carries, if it carries one.
pub fn leader_applied(partition: &PartitionData) -> Option<u64> {
    let bytes = partition.unknown_tagged_fields.get(&LEADER_APPLIED_TAG)?;
    <[u8; 8]>::try_from(bytes.as_ref())
        .ok()
        .map(u64::from_be_bytes)
}
/// The longest a Fetch with nothing new waits for the next entry.
pub const MAX_WAIT: Duration = Duration::from_millis(500);
/// Bytes of entries per answer (more are fetched at once).
pub const MAX_BYTES: usize = 1 << 20;

/// One committed entry with records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub records: Bytes,
}

/// An answer an observer could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("entry truncated after {0} bytes")]
    Truncated(usize),
    #[error("entry {index} out of order after {previous}")]
    OutOfOrder { previous: u64, index: u64 },
}

pub fn encode_entries(entries: &[(u64, Bytes)]) -> Bytes {
    let size = entries.iter().map(|(_, data)| 12 + data.len()).sum();
    let mut out = BytesMut::with_capacity(size);
    for (index, data) in entries {
        out.put_u64(*index);
        out.put_u32(data.len() as u32);
        out.put_slice(data);
    }
    out.freeze()
}

/// The entries of a Fetch answer, checked to rise strictly.
pub fn decode_entries(mut bytes: Bytes) -> Result<Vec<Entry>, WireError> {
    let total = bytes.len();
    let mut entries: Vec<Entry> = Vec::new();
    while bytes.has_remaining() {
        let at = total - bytes.remaining();
        if bytes.remaining() < 12 {
            return Err(WireError::Truncated(at));
        }
        let index = bytes.get_u64();
        let len = bytes.get_u32() as usize;
        if bytes.remaining() < len {
            return Err(WireError::Truncated(at));
        }
        if let Some(previous) = entries.last().map(|e| e.index) {
            if index <= previous {
                return Err(WireError::OutOfOrder { previous, index });
            }
        }
        entries.push(Entry {
            index,
            records: bytes.split_to(len),
        });
    }
    Ok(entries)
}

/// The one partition a request must name: `__cluster_metadata`-0.
fn names_the_metadata_partition<'a>(
    mut topics: impl Iterator<Item = (&'a str, usize, Option<i32>)>,
) -> bool {
    matches!(
        (topics.next(), topics.next()),
        (Some((METADATA_TOPIC, 1, Some(0))), None)
    )
}

fn leader_of(voter: &Voter) -> LeaderIdAndEpoch {
    let status = voter.status();
    let mut leader = LeaderIdAndEpoch::default();
    leader.leader_id = BrokerId(voter.leader().unwrap_or(-1));
    leader.leader_epoch = i32::try_from(status.term).unwrap_or(i32::MAX);
    leader
}

/// Answers an observer's Fetch: entries from `fetch_offset` on, waiting up to the request's
/// `max_wait_ms` (at most [`MAX_WAIT`]) when there are none yet.
pub async fn answer_fetch(voter: &Voter, request: &FetchRequest) -> FetchResponse {
    let named = request.topics.iter().map(|t| {
        (
            t.topic.0.as_str(),
            t.partitions.len(),
            t.partitions.first().map(|p| p.partition),
        )
    });
    let mut partition = PartitionData::default();
    partition.partition_index = 0;
    if !names_the_metadata_partition(named) {
        partition.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
        return fetch_response(partition);
    }
    let from = u64::try_from(request.topics[0].partitions[0].fetch_offset)
        .unwrap_or(0)
        .max(1);
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = std::time::Instant::now() + wait;
    loop {
        partition.current_leader = leader_of(voter);
        if voter.status().role != Role::Leader {
            partition.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
            return fetch_response(partition);
        }
        match voter.committed_since(from, MAX_BYTES) {
            CommittedSince::Compacted => {
                let applied = i64::try_from(voter.applied()).unwrap_or(i64::MAX);
                partition.snapshot_id = SnapshotId::default()
                    .with_end_offset(applied)
                    .with_epoch(partition.current_leader.leader_epoch);
                partition.high_watermark = applied;
                return fetch_response(partition);
            }
            CommittedSince::Entries { entries, through } => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if through >= from || left.is_zero() {
                    partition.high_watermark = i64::try_from(through).unwrap_or(i64::MAX);
                    partition.records = Some(encode_entries(&entries));
                    set_leader_applied(&mut partition, voter.applied());
                    return fetch_response(partition);
                }
                let _ = rt::timeout(left, voter.progressed()).await;
            }
        }
    }
}

fn fetch_response(partition: PartitionData) -> FetchResponse {
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut response = FetchResponse::default();
    response.responses = vec![topic];
    response
}

/// Answers an observer's FetchSnapshot with this voter's image, whole, at its applied index
/// (which may be past the snapshot id the observer was given: it is the newer).
pub fn answer_fetch_snapshot(
    voter: &Voter,
    request: &FetchSnapshotRequest,
) -> FetchSnapshotResponse {
    let named = request.topics.iter().map(|t| {
        (
            t.name.0.as_str(),
            t.partitions.len(),
            t.partitions.first().map(|p| p.partition),
        )
    });
    let mut partition = PartitionSnapshot::default();
    let mut current_leader = fetch_snapshot_response::LeaderIdAndEpoch::default();
    let leader = leader_of(voter);
    current_leader.leader_id = leader.leader_id;
    current_leader.leader_epoch = leader.leader_epoch;
    partition.current_leader = current_leader;
    if !names_the_metadata_partition(named) {
        partition.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
    } else if voter.status().role != Role::Leader {
        partition.error_code = error_code::NOT_LEADER_OR_FOLLOWER;
    } else if request.topics[0].partitions[0].position != 0 {
        // The image is sent whole: nobody asks for a later chunk.
        partition.error_code = error_code::POSITION_OUT_OF_RANGE;
    } else {
        let image = voter.with_image(|image| image.snapshot_bytes());
        partition.snapshot_id.end_offset = i64::try_from(voter.applied()).unwrap_or(i64::MAX);
        partition.snapshot_id.epoch = leader.leader_epoch;
        partition.size = image.len() as i64;
        partition.unaligned_records = Bytes::from(image);
    }
    let mut topic = TopicSnapshot::default();
    topic.name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut response = FetchSnapshotResponse::default();
    response.topics = vec![topic];
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            (3, Bytes::from_static(b"abc")),
            (7, Bytes::new()),
            (8, Bytes::from_static(b"z")),
        ];
        let decoded = decode_entries(encode_entries(&entries)).unwrap();
        let back: Vec<(u64, Bytes)> = decoded.into_iter().map(|e| (e.index, e.records)).collect();
        assert_eq!(back, entries);
        assert_eq!(decode_entries(Bytes::new()).unwrap(), vec![]);
    }

    #[test]
    fn truncated_and_unordered_answers_are_refused() {
        let good = encode_entries(&[(3, Bytes::from_static(b"abc")), (4, Bytes::new())]);
        for cut in [1, 11, 14, good.len() - 1] {
            assert!(
                matches!(
                    decode_entries(good.slice(..cut)),
                    Err(WireError::Truncated(_))
                ),
                "cut at {cut}"
            );
        }
        // A length claiming more than the answer holds is refused without allocating it.
        let mut huge = BytesMut::new();
        huge.put_u64(1);
        huge.put_u32(u32::MAX);
        assert_eq!(decode_entries(huge.freeze()), Err(WireError::Truncated(0)));
        let backwards = encode_entries(&[(4, Bytes::new()), (4, Bytes::new())]);
        assert_eq!(
            decode_entries(backwards),
            Err(WireError::OutOfOrder {
                previous: 4,
                index: 4
            })
        );
    }

    /// The leader's applied index crosses the wire in the version observers speak, and an
    /// answer without it (or with a malformed one) says nothing.
    #[test]
    fn the_leaders_applied_index_survives_the_wire() {
        use kafka_protocol::protocol::{Decodable, Encodable};
        let mut partition = PartitionData::default();
        assert_eq!(leader_applied(&partition), None);
        set_leader_applied(&mut partition, 123_456);
        let mut bytes = BytesMut::new();
        partition.encode(&mut bytes, FETCH_VERSION).unwrap();
        let decoded = PartitionData::decode(&mut bytes.freeze(), FETCH_VERSION).unwrap();
        assert_eq!(leader_applied(&decoded), Some(123_456));
        let mut odd = PartitionData::default();
        odd.unknown_tagged_fields
            .insert(LEADER_APPLIED_TAG, Bytes::from_static(b"abc"));
        assert_eq!(leader_applied(&odd), None);
    }

    #[test]
    fn only_the_metadata_partition_is_served() {
        let one = |topic, partitions, first| vec![(topic, partitions, first)];
        assert!(names_the_metadata_partition(
            one(METADATA_TOPIC, 1, Some(0)).into_iter()
        ));
        assert!(!names_the_metadata_partition(
            one(METADATA_TOPIC, 1, Some(1)).into_iter()
        ));
        assert!(!names_the_metadata_partition(
            one(METADATA_TOPIC, 2, Some(0)).into_iter()
        ));
        assert!(!names_the_metadata_partition(
            one("other", 1, Some(0)).into_iter()
        ));
        assert!(!names_the_metadata_partition(std::iter::empty()));
        let two = vec![(METADATA_TOPIC, 1, Some(0)), (METADATA_TOPIC, 1, Some(0))];
        assert!(!names_the_metadata_partition(two.into_iter()));
    }
}
