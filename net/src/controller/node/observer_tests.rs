//! [`Following`] driven by hand-made answers of the kind `metadata_fetch` gives.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData, SnapshotId};
use kafka_protocol::messages::fetch_snapshot_response;
use kafka_protocol::messages::{BrokerId, FetchResponse, FetchSnapshotResponse};

use super::*;
use crate::controller::metadata::{encode_batch, MetadataRecord};
use crate::controller::node::metadata_fetch::{encode_entries, set_leader_applied};

fn topic(name: &str) -> MetadataRecord {
    let mut id = [0x5a; 16];
    for (slot, b) in id.iter_mut().zip(name.bytes()) {
        *slot = b;
    }
    MetadataRecord::Topic {
        name: name.to_owned(),
        id,
    }
}

fn answer(
    leader: i32,
    error: i16,
    through: i64,
    entries: &[(u64, Vec<MetadataRecord>)],
) -> FetchResponse {
    let encoded: Vec<(u64, Bytes)> = entries
        .iter()
        .map(|(index, records)| (*index, Bytes::from(encode_batch(records))))
        .collect();
    let mut partition = PartitionData::default();
    partition.error_code = error;
    partition.high_watermark = through;
    partition.current_leader.leader_id = BrokerId(leader);
    partition.records = Some(encode_entries(&encoded));
    let mut topic = FetchableTopicResponse::default();
    topic.partitions = vec![partition];
    let mut response = FetchResponse::default();
    response.responses = vec![topic];
    response
}

fn snapshot_answer(leader: i32, index: i64, image: &MetadataImage) -> FetchSnapshotResponse {
    let bytes = image.snapshot_bytes();
    let mut partition = fetch_snapshot_response::PartitionSnapshot::default();
    partition.current_leader.leader_id = BrokerId(leader);
    partition.snapshot_id.end_offset = index;
    partition.size = bytes.len() as i64;
    partition.unaligned_records = Bytes::from(bytes);
    let mut topic = fetch_snapshot_response::TopicSnapshot::default();
    topic.partitions = vec![partition];
    let mut response = FetchSnapshotResponse::default();
    response.topics = vec![topic];
    response
}

fn names(following: &Following) -> Vec<String> {
    let mut names: Vec<String> = following.image.topics().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

#[test]
fn entries_are_applied_in_order_and_the_image_moves_to_the_answers_end() {
    let mut following = Following::default();
    assert_eq!(
        following.fetch_request(4).topics[0].partitions[0].fetch_offset,
        1
    );
    let next = following
        .on_fetch(answer(
            1,
            0,
            5,
            &[(2, vec![topic("a")]), (4, vec![topic("b")])],
        ))
        .unwrap();
    assert_eq!(next, Next::Fetch);
    assert_eq!(following.applied, 5, "entries without records still count");
    assert_eq!(following.leader, Some(1));
    assert_eq!(names(&following), ["a", "b"]);
    let request = following.fetch_request(4);
    assert_eq!(request.replica_id, BrokerId(4));
    assert_eq!(request.topics[0].partitions[0].fetch_offset, 6);
    // An answer repeating entries already applied (a retried call) applies nothing twice.
    following
        .on_fetch(answer(
            1,
            0,
            6,
            &[(4, vec![topic("b")]), (6, vec![topic("c")])],
        ))
        .unwrap();
    assert_eq!(following.applied, 6);
    assert_eq!(names(&following), ["a", "b", "c"]);
}

/// A node that starts following reads from the first entry on: until its image is as new as
/// the leader's was at the first answer, it is an older cluster's (whose broker configs must
/// not be taken), however many answers it has applied.
#[test]
fn the_image_is_caught_up_once_it_reaches_the_leaders_index_at_the_first_answer() {
    let mut following = Following::default();
    assert_eq!(
        following.caught_up_at(),
        0,
        "nothing to wait for without an image"
    );
    let with_leader_at = |through, applied, entries: &[(u64, Vec<MetadataRecord>)]| {
        let mut response = answer(1, 0, through, entries);
        set_leader_applied(&mut response.responses[0].partitions[0], applied);
        response
    };
    following
        .on_fetch(with_leader_at(3, 9, &[(2, vec![topic("a")])]))
        .unwrap();
    assert_eq!((following.applied, following.caught_up_at()), (3, 9));
    // Later answers, whose leader has moved on, do not move the mark.
    following
        .on_fetch(with_leader_at(7, 12, &[(5, vec![topic("b")])]))
        .unwrap();
    assert_eq!((following.applied, following.caught_up_at()), (7, 9));
    following.on_fetch(with_leader_at(10, 12, &[])).unwrap();
    assert!(following.applied >= following.caught_up_at());
    // A leader that does not say: the first answer's end.
    let mut old = Following::default();
    old.on_fetch(answer(1, 0, 4, &[(2, vec![topic("a")])]))
        .unwrap();
    assert_eq!(old.caught_up_at(), 4);
    // A node that starts from the leader's image is caught up with it.
    let mut from_image = Following::default();
    let mut image = MetadataImage::default();
    image.apply_batch(1, &[topic("a")]).unwrap();
    from_image
        .on_snapshot(snapshot_answer(1, 20, &image))
        .unwrap();
    assert_eq!((from_image.applied, from_image.caught_up_at()), (20, 20));
}

#[test]
fn an_empty_answer_below_the_image_never_moves_it_back() {
    let mut following = Following::default();
    following.on_fetch(answer(2, 0, 9, &[])).unwrap();
    assert_eq!(following.applied, 9);
    // A leader behind this observer (it was the leader a moment ago on another voter).
    following.on_fetch(answer(3, 0, 4, &[])).unwrap();
    assert_eq!(following.applied, 9);
}

#[test]
fn a_voter_that_does_not_lead_points_elsewhere() {
    let mut following = Following::default();
    let next = following
        .on_fetch(answer(3, error_code::NOT_LEADER_OR_FOLLOWER, 0, &[]))
        .unwrap();
    assert_eq!(next, Next::Elsewhere { leader: Some(3) });
    let next = following
        .on_fetch(answer(-1, error_code::NOT_LEADER_OR_FOLLOWER, 0, &[]))
        .unwrap();
    assert_eq!(next, Next::Elsewhere { leader: None });
    assert_eq!(following.leader, None);
    assert_eq!(following.applied, 0);
}

#[test]
fn compacted_entries_are_replaced_by_the_leaders_image() {
    let mut following = Following::default();
    following
        .on_fetch(answer(1, 0, 3, &[(3, vec![topic("old")])]))
        .unwrap();
    let mut response = answer(1, 0, 40, &[]);
    response.responses[0].partitions[0].snapshot_id =
        SnapshotId::default().with_end_offset(40).with_epoch(7);
    let next = following.on_fetch(response).unwrap();
    assert_eq!(
        next,
        Next::Snapshot {
            index: 40,
            epoch: 7
        }
    );
    assert_eq!(following.applied, 3, "nothing taken before the image");
    let request = following.snapshot_request(4, 40, 7);
    let asked = &request.topics[0].partitions[0];
    assert_eq!(
        (asked.snapshot_id.end_offset, asked.snapshot_id.epoch),
        (40, 7)
    );

    let mut leaders = MetadataImage::default();
    leaders.apply_batch(10, &[topic("new")]).unwrap();
    // The leader may send a newer image than the one it named.
    let next = following
        .on_snapshot(snapshot_answer(1, 42, &leaders))
        .unwrap();
    assert_eq!(next, Next::Fetch);
    assert_eq!(following.applied, 42);
    assert_eq!(names(&following), ["new"]);
    // An older image than this observer's is not taken.
    following
        .on_snapshot(snapshot_answer(1, 41, &MetadataImage::default()))
        .unwrap();
    assert_eq!(
        (following.applied, names(&following)),
        (42, vec!["new".to_owned()])
    );
}

#[test]
fn unreadable_answers_stop_the_observer() {
    let mut following = Following::default();
    let mut garbled = answer(1, 0, 2, &[]);
    garbled.responses[0].partitions[0].records = Some(encode_entries(&[(
        2,
        Bytes::from_static(b"\xffnot a batch"),
    )]));
    assert!(matches!(
        following.on_fetch(garbled),
        Err(Unfollowable::UnreadableEntry { index: 2, .. })
    ));
    let past_the_end = answer(1, 0, 2, &[(3, vec![topic("a")])]);
    assert!(matches!(
        following.on_fetch(past_the_end),
        Err(Unfollowable::BadAnswer(_))
    ));
    let mut two_topics = answer(1, 0, 2, &[]);
    two_topics.responses.push(FetchableTopicResponse::default());
    assert!(matches!(
        following.on_fetch(two_topics),
        Err(Unfollowable::BadAnswer(_))
    ));
    let mut bad_image = snapshot_answer(1, 5, &MetadataImage::default());
    bad_image.topics[0].partitions[0].unaligned_records = Bytes::from_static(b"junk");
    bad_image.topics[0].partitions[0].size = 4;
    assert!(matches!(
        following.on_snapshot(bad_image),
        Err(Unfollowable::UnreadableImage { index: 5, .. })
    ));
    let mut chunk = snapshot_answer(1, 5, &MetadataImage::default());
    chunk.topics[0].partitions[0].size += 10;
    assert!(matches!(
        following.on_snapshot(chunk),
        Err(Unfollowable::BadAnswer(_))
    ));
    assert_eq!(following.applied, 0);
}
