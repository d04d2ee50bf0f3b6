//! Applying records: epochs, refusals that change nothing, batch atomicity, queries, snapshots.

use super::super::test_support::{arbitrary_record, Rng};
use super::super::{DecodeError, SnapshotError};
use super::*;

const T: TopicId = [9; 16];

fn register(id: BrokerId, incarnation: u8) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: id,
        incarnation_id: [incarnation; 16],
        epoch: EPOCH_FROM_OFFSET,
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
        }],
        rack: None,
        fenced: true,
    })
}

fn partition(index: i32, replicas: &[BrokerId], leader: BrokerId) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id: T,
        partition: index,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        reassigning: Reassigning::default(),
    })
}

fn change(index: i32, base: i32, leader: Option<BrokerId>, isr: Option<&[i32]>) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChange {
        topic_id: T,
        partition: index,
        base_partition_epoch: base,
        leader,
        isr: isr.map(<[i32]>::to_vec),
        replicas: None,
        reassigning: None,
    })
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        id: T,
    }
}

/// Three brokers registered at offsets 1..=3 (epochs 1..=3) and unfenced at offset 4; topic
/// "t" with partitions 0 (replicas 1,2,3, leader 1) and 1 (replicas 2,3, leader 2) at offset 5.
fn cluster() -> MetadataImage {
    let mut image = MetadataImage::new();
    for id in 1..=3 {
        image.apply(id as u64, &register(id, 1)).unwrap();
    }
    let unfence: Vec<_> = (1..=3)
        .map(|id| MetadataRecord::UnfenceBroker {
            broker_id: id,
            epoch: id as i64,
        })
        .collect();
    image.apply_batch(4, &unfence).unwrap();
    let batch = [
        topic("t"),
        partition(0, &[1, 2, 3], 1),
        partition(1, &[2, 3], 2),
    ];
    image.apply_batch(5, &batch).unwrap();
    image
}

/// Applies and expects a refusal that leaves everything but the offset as it was.
fn refused(image: &mut MetadataImage, offset: u64, batch: &[MetadataRecord]) -> ApplyError {
    let before = image.clone();
    let err = image.apply_batch(offset, batch).unwrap_err();
    let mut after = image.clone();
    after.last_offset = before.last_offset;
    assert_eq!(after, before, "a refused batch changed the image");
    assert_eq!(image.last_offset(), Some(offset));
    err
}

#[test]
fn registration_epoch_is_the_offset_and_a_new_incarnation_supersedes() {
    let mut image = MetadataImage::new();
    image.apply(17, &register(4, 1)).unwrap();
    let b = image.broker(4).unwrap();
    assert_eq!(
        (b.epoch, b.fenced, b.in_controlled_shutdown),
        (17, true, false)
    );
    assert!(image.live_brokers().is_empty());

    let err = refused(&mut image, 18, &[register(4, 1)]);
    assert_eq!(err, ApplyError::SameIncarnation(4));

    image.apply(20, &register(4, 2)).unwrap();
    assert_eq!(image.broker(4).unwrap().epoch, 20);
    assert_eq!(image.broker(4).unwrap().incarnation_id, [2; 16]);
    // A snapshot's explicit epoch may not go backwards either.
    let MetadataRecord::RegisterBroker(mut old) = register(4, 3) else {
        unreachable!()
    };
    old.epoch = 19;
    let err = refused(&mut image, 21, &[MetadataRecord::RegisterBroker(old)]);
    assert!(matches!(
        err,
        ApplyError::StaleBrokerEpoch { current: 20, .. }
    ));
}

#[test]
fn fencing_records_check_epoch_and_state() {
    let mut image = cluster();
    assert_eq!(image.live_brokers(), vec![1, 2, 3]);
    let fence = |epoch| MetadataRecord::FenceBroker {
        broker_id: 2,
        epoch,
    };
    let err = refused(&mut image, 6, &[fence(1)]);
    assert!(matches!(
        err,
        ApplyError::StaleBrokerEpoch { current: 2, .. }
    ));
    image.apply(7, &fence(2)).unwrap();
    assert_eq!(image.live_brokers(), vec![1, 3]);
    assert!(matches!(
        refused(&mut image, 8, &[fence(2)]),
        ApplyError::Redundant(..)
    ));

    let shutdown = MetadataRecord::BrokerShutdown {
        broker_id: 3,
        epoch: 3,
    };
    image.apply(9, &shutdown).unwrap();
    assert!(!image.is_live(3) && !image.broker(3).unwrap().fenced);
    assert!(matches!(
        refused(&mut image, 10, &[shutdown]),
        ApplyError::Redundant(..)
    ));
    image
        .apply(
            11,
            &MetadataRecord::FenceBroker {
                broker_id: 3,
                epoch: 3,
            },
        )
        .unwrap();
    let unfence = MetadataRecord::UnfenceBroker {
        broker_id: 3,
        epoch: 3,
    };
    assert!(matches!(
        refused(&mut image, 12, &[unfence]),
        ApplyError::Invalid(_)
    ));
    let unknown = MetadataRecord::UnfenceBroker {
        broker_id: 9,
        epoch: 3,
    };
    assert_eq!(
        refused(&mut image, 13, &[unknown]),
        ApplyError::UnknownBroker(9)
    );

    let unregister = MetadataRecord::UnregisterBroker {
        broker_id: 1,
        epoch: 1,
    };
    image.apply(14, &unregister).unwrap();
    assert!(image.broker(1).is_none());
}

#[test]
fn partitions_are_added_in_order_and_keep_their_invariants() {
    let mut image = cluster();
    assert_eq!(
        refused(&mut image, 6, &[partition(1, &[1], 1)]),
        ApplyError::PartitionPresent(1)
    );
    assert!(matches!(
        refused(&mut image, 6, &[partition(3, &[1], 1)]),
        ApplyError::PartitionGap {
            partition: 3,
            count: 2
        }
    ));
    assert!(matches!(
        refused(&mut image, 6, &[partition(2, &[1, 1], 1)]),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        refused(&mut image, 6, &[partition(2, &[1], 2)]),
        ApplyError::Invalid(_)
    ));
    let mut other = partition(0, &[1], 1);
    if let MetadataRecord::Partition(p) = &mut other {
        p.topic_id = [1; 16];
    }
    assert_eq!(
        refused(&mut image, 6, &[other]),
        ApplyError::UnknownTopicId([1; 16])
    );
    assert_eq!(
        refused(&mut image, 6, &[topic("u")]),
        ApplyError::TopicExists
    );
    image.apply(6, &partition(2, &[3], 3)).unwrap();
    assert_eq!(image.topic("t").unwrap().partitions.len(), 3);
}

#[test]
fn partition_changes_bump_epochs_like_kafka_and_refuse_stale_bases() {
    let mut image = cluster();
    // ISR shrink only: partition epoch +1, leader epoch unchanged.
    image.apply(6, &change(0, 0, None, Some(&[1, 2]))).unwrap();
    let p = image.partition(&T, 0).unwrap().clone();
    assert_eq!(
        (p.isr.as_slice(), p.leader_epoch, p.partition_epoch),
        (&[1, 2][..], 0, 1)
    );
    // A change derived from the old state is refused.
    let stale = change(0, 0, Some(2), None);
    assert_eq!(
        refused(&mut image, 7, &[stale]),
        ApplyError::StalePartitionEpoch {
            base: 0,
            current: 1
        }
    );
    // Leader change: both epochs bump.
    image.apply(8, &change(0, 1, Some(2), None)).unwrap();
    let p = image.partition(&T, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    // Leaderless: still a leader change.
    image
        .apply(9, &change(0, 2, Some(NO_LEADER), Some(&[2])))
        .unwrap();
    assert_eq!(image.leader_of("t", 0), None);
    assert_eq!(image.partition(&T, 0).unwrap().leader_epoch, 2);
    // A leader outside the ISR, or an ISR outside the replicas, is refused.
    assert!(matches!(
        refused(&mut image, 10, &[change(0, 3, Some(1), None)]),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        refused(&mut image, 10, &[change(0, 3, None, Some(&[4]))]),
        ApplyError::Invalid(_)
    ));
    assert_eq!(
        refused(&mut image, 10, &[change(5, 3, None, None)]),
        ApplyError::UnknownPartition(5)
    );
}

#[test]
fn a_batch_is_applied_whole_or_not_at_all() {
    let mut image = cluster();
    let set = MetadataRecord::Config {
        resource: ConfigResource::Topic("t".into()),
        name: "retention.ms".into(),
        value: Some("1000".into()),
    };
    image.apply(6, &set).unwrap();
    // Every kind of step is undone: a config, a removal (with its configs), a new topic and
    // partition, a partition change, a registration, producer ids.
    let batch = [
        change(0, 0, Some(2), None),
        MetadataRecord::RemoveTopic { id: T },
        MetadataRecord::Topic {
            name: "t".into(),
            id: [5; 16],
        },
        register(7, 1),
        MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 1,
            next_block_start: 1000,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Cluster,
            name: "x".into(),
            value: Some("y".into()),
        },
        MetadataRecord::RemoveTopic { id: [6; 16] },
    ];
    assert_eq!(
        refused(&mut image, 7, &batch),
        ApplyError::UnknownTopicId([6; 16])
    );
    assert_eq!(
        image
            .configs(&ConfigResource::Topic("t".into()))
            .unwrap()
            .len(),
        1
    );
    // The same batch without its bad last record applies.
    image.apply_batch(8, &batch[..batch.len() - 1]).unwrap();
    assert_eq!(image.topic("t").unwrap().id, [5; 16]);
    assert!(image.configs(&ConfigResource::Topic("t".into())).is_none());
    assert_eq!(image.next_producer_id(), 1000);
}

#[test]
fn configs_deletions_and_producer_ids() {
    let mut image = cluster();
    let before = image.clone();
    let cfg = |value: Option<&str>| MetadataRecord::Config {
        resource: ConfigResource::Broker(2),
        name: "a".into(),
        value: value.map(str::to_owned),
    };
    image.apply(5, &cfg(Some("1"))).unwrap();
    assert_eq!(image.configs(&ConfigResource::Broker(2)).unwrap()["a"], "1");
    image.apply(5, &cfg(None)).unwrap();
    assert_eq!(image, before, "a deleted entry leaves no trace");
    let unknown = MetadataRecord::Config {
        resource: ConfigResource::Topic("nope".into()),
        name: "a".into(),
        value: None,
    };
    assert_eq!(
        refused(&mut image, 6, &[unknown]),
        ApplyError::UnknownTopic("nope".into())
    );

    let ids = |next| MetadataRecord::ProducerIds {
        broker_id: 1,
        broker_epoch: 1,
        next_block_start: next,
    };
    image.apply(7, &ids(1000)).unwrap();
    assert!(matches!(
        refused(&mut image, 8, &[ids(1000)]),
        ApplyError::ProducerIdsNotIncreasing { .. }
    ));
    // An offset below the last is refused and leaves even the offset alone.
    let before = image.clone();
    assert_eq!(
        image.apply(2, &ids(2000)),
        Err(ApplyError::OffsetRegressed { offset: 2, last: 8 })
    );
    assert_eq!(image, before);
}

#[test]
fn queries_answer_from_the_image() {
    let image = cluster();
    assert_eq!(image.leader_of("t", 0), Some(1));
    assert_eq!(image.leader_of("t", 1), Some(2));
    assert_eq!(image.leader_of("t", 2), None);
    assert_eq!(image.leader_of("u", 0), None);
    assert_eq!(image.partitions_led_by(2), vec![(T, 1)]);
    assert_eq!(image.replicas_on(1), vec![(T, 0)]);
    assert_eq!(image.replicas_on(3), vec![(T, 0), (T, 1)]);
    assert_eq!(image.partition(&T, -1), None);
}

/// Applies random batches (most are refused: the point is that what applies is consistent).
fn random_image(seed: u64) -> (MetadataImage, usize) {
    let mut rng = Rng::new(seed);
    let mut image = MetadataImage::new();
    let mut applied = 0;
    for offset in 1..300 {
        let size = if rng.below(4) == 0 { 2 } else { 1 };
        let batch: Vec<_> = (0..size).map(|_| arbitrary_record(&mut rng)).collect();
        let before = image.clone();
        match image.apply_batch(offset, &batch) {
            Ok(()) => applied += 1,
            Err(_) => {
                let mut after = image.clone();
                after.last_offset = before.last_offset;
                assert_eq!(after, before, "refused batch {batch:?} changed the image");
            }
        }
    }
    (image, applied)
}

#[test]
fn random_histories_survive_snapshot_and_restore() {
    let mut nonempty = 0;
    for seed in 1..=40 {
        let (image, applied) = random_image(seed);
        assert!(applied > 25, "seed {seed}: only {applied} batches applied");
        if image.topics().any(|t| !t.partitions.is_empty()) && image.brokers().count() > 1 {
            nonempty += 1;
        }
        let mut rebuilt = MetadataImage::new();
        rebuilt
            .apply_batch(image.last_offset().unwrap(), &image.to_records())
            .unwrap();
        assert_eq!(rebuilt, image, "seed {seed}: to_records");
        let restored = MetadataImage::from_snapshot_bytes(&image.snapshot_bytes()).unwrap();
        assert_eq!(restored, image, "seed {seed}: snapshot bytes");
    }
    assert!(nonempty > 20, "random histories too thin: {nonempty}");
    assert_eq!(
        MetadataImage::from_snapshot_bytes(&MetadataImage::new().snapshot_bytes()),
        Ok(MetadataImage::new())
    );
}

#[test]
fn corrupt_snapshots_are_errors() {
    let (image, _) = random_image(3);
    let bytes = image.snapshot_bytes();
    for cut in 0..bytes.len() {
        assert!(
            MetadataImage::from_snapshot_bytes(&bytes[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let mut rng = Rng::new(11);
    for _ in 0..2000 {
        let mut b = bytes.clone();
        let at = rng.below(b.len() as u64) as usize;
        b[at] = rng.next() as u8;
        let _ = MetadataImage::from_snapshot_bytes(&b);
    }
    assert_eq!(
        MetadataImage::from_snapshot_bytes(b"XXXX"),
        Err(SnapshotError::Decode(DecodeError::BadMagic))
    );
}
