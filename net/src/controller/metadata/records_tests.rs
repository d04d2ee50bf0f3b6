//! Round trips, and hostile input: truncated, mutated and random bytes must give `Err`, never a
//! panic or a large allocation.

use super::super::test_support::{arbitrary_record, Rng};
use super::*;

fn samples() -> Vec<MetadataRecord> {
    let topic_id = [7u8; 16];
    vec![
        MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 3,
            incarnation_id: [0xab; 16],
            epoch: EPOCH_FROM_OFFSET,
            listeners: vec![
                Listener {
                    name: "PLAINTEXT".into(),
                    host: "broker-3.example".into(),
                    port: 9092,
                },
                Listener {
                    name: "INTERNAL".into(),
                    host: "10.0.0.3".into(),
                    port: u16::MAX,
                },
            ],
            rack: Some("eu-1a".into()),
            fenced: true,
        }),
        MetadataRecord::UnregisterBroker {
            broker_id: 0,
            epoch: i64::MAX,
        },
        MetadataRecord::FenceBroker {
            broker_id: i32::MAX,
            epoch: 12,
        },
        MetadataRecord::UnfenceBroker {
            broker_id: 1,
            epoch: 0,
        },
        MetadataRecord::BrokerShutdown {
            broker_id: 2,
            epoch: 99,
        },
        MetadataRecord::Topic {
            name: "orders".into(),
            id: topic_id,
        },
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 5,
            replicas: vec![1, 2, 3],
            isr: vec![2, 1],
            leader: 2,
            leader_epoch: 7,
            partition_epoch: i32::MAX,
            reassigning: Reassigning::default(),
        }),
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id,
            partition: 0,
            base_partition_epoch: 3,
            leader: Some(NO_LEADER),
            isr: None,
            replicas: Some(vec![]),
            reassigning: None,
        }),
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id,
            partition: 1,
            base_partition_epoch: 0,
            leader: None,
            isr: Some(vec![i32::MIN, 0]),
            replicas: None,
            reassigning: None,
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 6,
            replicas: vec![4, 5, 1, 2],
            isr: vec![1, 2, 4],
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 9,
            reassigning: Reassigning {
                adding: vec![4, 5],
                removing: vec![1, 2],
            },
        }),
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id,
            partition: 6,
            base_partition_epoch: 9,
            leader: Some(4),
            isr: Some(vec![4, 5]),
            replicas: Some(vec![4, 5]),
            reassigning: Some(Reassigning::default()),
        }),
        MetadataRecord::RemoveTopic { id: topic_id },
        MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("-1".into()),
        },
        MetadataRecord::Config {
            resource: ConfigResource::Broker(4),
            name: "log.retention.hours".into(),
            value: None,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Cluster,
            name: "ünïcode".into(),
            value: Some(String::new()),
        },
        MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 40,
            next_block_start: 3000,
        },
    ]
}

#[test]
fn every_record_kind_round_trips() {
    for record in samples() {
        let bytes = record.encode();
        assert_eq!(
            MetadataRecord::decode(&bytes),
            Ok(record.clone()),
            "{record:?}"
        );
    }
}

#[test]
fn random_records_round_trip_alone_and_in_batches() {
    let mut rng = Rng::new(42);
    for _ in 0..200 {
        let batch: Vec<_> = (0..rng.below(6))
            .map(|_| arbitrary_record(&mut rng))
            .collect();
        for record in &batch {
            assert_eq!(
                MetadataRecord::decode(&record.encode()).as_ref(),
                Ok(record)
            );
        }
        assert_eq!(decode_batch(&encode_batch(&batch)), Ok(batch));
    }
}

#[test]
fn every_truncation_is_an_error() {
    let batch = samples();
    let bytes = encode_batch(&batch);
    for cut in 0..bytes.len() {
        assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for record in batch {
        let bytes = record.encode();
        for cut in 0..bytes.len() {
            assert!(MetadataRecord::decode(&bytes[..cut]).is_err());
        }
    }
}

#[test]
fn trailing_bytes_unknown_types_and_versions_are_refused() {
    let mut bytes = samples()[0].encode();
    bytes.push(0);
    assert_eq!(
        MetadataRecord::decode(&bytes),
        Err(DecodeError::TrailingBytes)
    );
    assert_eq!(
        MetadataRecord::decode(&[0, 0]),
        Err(DecodeError::UnknownType(0))
    );
    assert_eq!(
        MetadataRecord::decode(&[200, 0]),
        Err(DecodeError::UnknownType(200))
    );
    let mut bytes = samples()[5].encode();
    bytes[1] = 1;
    assert_eq!(
        MetadataRecord::decode(&bytes),
        Err(DecodeError::UnsupportedVersion {
            kind: bytes[0],
            version: 1
        })
    );
    assert!(matches!(
        decode_batch(&[9, 0]),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
}

#[test]
fn partition_records_are_version_0_unless_a_reassignment_is_under_way() {
    let version = |r: &MetadataRecord| r.encode()[1];
    let samples = samples();
    let plain: Vec<_> = samples
        .iter()
        .filter(|r| match r {
            MetadataRecord::Partition(p) => !p.reassigning.in_progress(),
            MetadataRecord::PartitionChange(c) => c.reassigning.is_none(),
            _ => false,
        })
        .collect();
    assert_eq!(plain.len(), 3);
    assert!(plain.iter().all(|r| version(r) == 0));
    let reassigning: Vec<_> = samples
        .iter()
        .filter(|r| {
            matches!(
                r,
                MetadataRecord::Partition(_) | MetadataRecord::PartitionChange(_)
            ) && version(r) == 1
        })
        .collect();
    assert_eq!(reassigning.len(), 2);
    // Read as version 0, the reassignment's fields are bytes left over.
    for record in reassigning {
        let mut bytes = record.encode();
        bytes[1] = 0;
        assert_eq!(
            MetadataRecord::decode(&bytes),
            Err(DecodeError::TrailingBytes)
        );
    }
}

#[test]
fn huge_claimed_counts_fail_before_allocating() {
    // A batch claiming 2^62 records, and a partition claiming 2^62 replicas.
    let mut w = Writer::default();
    w.u8(0);
    w.uvarint(1 << 62);
    assert_eq!(decode_batch(&w.buf), Err(DecodeError::LengthTooLarge));

    let mut w = Writer::default();
    w.u8(kind::PARTITION);
    w.u8(0);
    w.uuid(&[1; 16]);
    w.varint(0);
    w.uvarint(1 << 62);
    w.buf.extend_from_slice(&[0; 32]);
    assert_eq!(
        MetadataRecord::decode(&w.buf),
        Err(DecodeError::LengthTooLarge)
    );
}

#[test]
fn mutated_and_random_bytes_never_panic() {
    let mut rng = Rng::new(7);
    let valid: Vec<Vec<u8>> = samples().iter().map(MetadataRecord::encode).collect();
    let mut errors = 0;
    for round in 0..20_000 {
        let mut bytes = if round % 2 == 0 {
            let len = rng.below(64) as usize;
            rng.bytes(len)
        } else {
            valid[rng.below(valid.len() as u64) as usize].clone()
        };
        if !bytes.is_empty() {
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
            }
        }
        // Whatever decodes must re-encode to something that decodes to the same record.
        match MetadataRecord::decode(&bytes) {
            Ok(record) => assert_eq!(MetadataRecord::decode(&record.encode()), Ok(record)),
            Err(_) => errors += 1,
        }
        let mut batch = vec![0u8, 1];
        batch.extend_from_slice(&bytes);
        let _ = decode_batch(&batch);
    }
    // The generator must actually produce invalid input for this test to mean anything.
    assert!(errors > 10_000, "only {errors} errors");
}
