//! Transaction markers: the control batches that end a transaction on a partition, in Kafka's
//! exact format (its `EndTransactionMarker` and `ControlRecordType`). Pure: encoding and
//! decoding only, shared by the log (which writes and replays markers) and the broker (the
//! group coordinator applies TxnOffsetCommit on COMMIT markers in `__consumer_offsets`).
//!
//! A marker is a batch with the transactional and control attributes set, no compression,
//! the producer's id and epoch, base sequence -1, and one record:
//!
//! ```text
//! key:   version i16 = 0 | type i16 (0 = ABORT, 1 = COMMIT)
//! value: version i16 = 0 | coordinator_epoch i32
//! ```
//!
//! Other control types exist (KRaft's LEADER_CHANGE, snapshot headers): they are control
//! batches but not transaction markers, and decode as [`ControlType::Other`].

use crate::log::batch::{BatchError, BatchHeader, Compression, HEADER_LEN};
use crate::log::builder::{BatchBuilder, Record};
use crate::log::records;

/// The version of the key and value Kafka writes (and the only one it defines).
const CURRENT_VERSION: i16 = 0;
const KEY_LEN: usize = 4;
const VALUE_LEN: usize = 6;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    fn type_id(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// What a control record's key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Marker(MarkerKind),
    /// Not a transaction marker (Kafka's LEADER_CHANGE = 2, snapshot records, ...).
    Other(i16),
}

/// A transaction marker as the transaction coordinator sends it (WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub kind: MarkerKind,
    pub coordinator_epoch: i32,
}

/// Why bytes are not a readable control record or marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control record: {0}")]
pub struct MarkerError(&'static str);

/// The control record key of a marker.
pub fn encode_key(kind: MarkerKind) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    key[..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&kind.type_id().to_be_bytes());
    key
}

/// Reads a control record's key. As Kafka, a newer key version is read by its first two
/// fields (versions only ever add fields).
pub fn decode_key(key: &[u8]) -> Result<ControlType, MarkerError> {
    let (version, kind) = match key {
        [v0, v1, t0, t1, ..] => (
            i16::from_be_bytes([*v0, *v1]),
            i16::from_be_bytes([*t0, *t1]),
        ),
        _ => return Err(MarkerError("key shorter than 4 bytes")),
    };
    if version < 0 {
        return Err(MarkerError("negative key version"));
    }
    Ok(match kind {
        0 => ControlType::Marker(MarkerKind::Abort),
        1 => ControlType::Marker(MarkerKind::Commit),
        other => ControlType::Other(other),
    })
}

/// A marker record's value.
pub fn encode_value(coordinator_epoch: i32) -> [u8; VALUE_LEN] {
    let mut value = [0; VALUE_LEN];
    value[..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    value
}

/// Reads a marker record's value: the coordinator epoch. Kafka refuses versions other than 0
/// here (its `EndTransactionMarker.deserializeValue`); so do we.
pub fn decode_value(value: &[u8]) -> Result<i32, MarkerError> {
    match value {
        [0, 0, e0, e1, e2, e3, ..] => Ok(i32::from_be_bytes([*e0, *e1, *e2, *e3])),
        [_, _, _, _, _, _, ..] => Err(MarkerError("unknown marker value version")),
        _ => Err(MarkerError("value shorter than 6 bytes")),
    }
}

/// The marker batch (base offset 0, to be placed by the log) for `producer_id` at `epoch`,
/// stamped `timestamp_ms` (the broker's clock, as Kafka does).
pub fn marker_batch(
    producer_id: i64,
    epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new()
        .producer(producer_id, epoch, -1)
        .transactional()
        .control();
    builder.push(&Record {
        key: Some(encode_key(marker.kind).to_vec()),
        value: Some(encode_value(marker.coordinator_epoch).to_vec()),
        headers: vec![],
        timestamp: timestamp_ms,
    });
    builder.build()
}

/// The control type of the control batch `batch` (its whole bytes, `header` parsed from
/// them), read from its first record, and the coordinator epoch when it is a marker. Never
/// panics on damaged input.
pub fn decode_control_batch(
    batch: &[u8],
    header: &BatchHeader,
) -> Result<(ControlType, Option<i32>), MarkerError> {
    if !header.is_control() {
        return Err(MarkerError("not a control batch"));
    }
    if header.compression() != Some(Compression::None) {
        return Err(MarkerError("a compressed control batch"));
    }
    let body = batch
        .get(HEADER_LEN..)
        .ok_or(MarkerError("shorter than a batch header"))?;
    let record = records::walk(body)
        .next()
        .ok_or(MarkerError("a control batch without records"))?
        .map_err(|_: BatchError| MarkerError("a control record that doesn't decode"))?;
    let key = record
        .key
        .ok_or(MarkerError("a control record without a key"))?;
    let kind = decode_key(key)?;
    let epoch = match kind {
        ControlType::Marker(_) => Some(decode_value(
            record
                .value
                .ok_or(MarkerError("a marker without a value"))?,
        )?),
        ControlType::Other(_) => None,
    };
    Ok((kind, epoch))
}

/// The marker in the control batch `batch`, if it is one.
pub fn decode_marker(
    batch: &[u8],
    header: &BatchHeader,
) -> Result<Option<EndTxnMarker>, MarkerError> {
    Ok(match decode_control_batch(batch, header)? {
        (ControlType::Marker(kind), Some(coordinator_epoch)) => Some(EndTxnMarker {
            kind,
            coordinator_epoch,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;

    #[test]
    fn keys_and_values_are_kafkas_bytes() {
        assert_eq!(encode_key(MarkerKind::Abort), [0, 0, 0, 0]);
        assert_eq!(encode_key(MarkerKind::Commit), [0, 0, 0, 1]);
        assert_eq!(encode_value(7), [0, 0, 0, 0, 0, 7]);
        assert_eq!(
            decode_key(&[0, 0, 0, 1]),
            Ok(ControlType::Marker(MarkerKind::Commit))
        );
        assert_eq!(decode_key(&[0, 0, 0, 2]), Ok(ControlType::Other(2)));
        assert_eq!(
            decode_key(&[0, 1, 0, 0, 9]),
            Ok(ControlType::Marker(MarkerKind::Abort)),
            "a newer key version is read by its first fields"
        );
        assert!(decode_key(&[0xff, 0xff, 0, 0]).is_err());
        assert!(decode_key(&[0, 0, 0]).is_err());
        assert_eq!(decode_value(&[0, 0, 0xff, 0xff, 0xff, 0xfe]), Ok(-2));
        assert!(decode_value(&[0, 1, 0, 0, 0, 0]).is_err());
        assert!(decode_value(&[0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_marker_batch_is_a_valid_control_batch_that_decodes_back() {
        let marker = EndTxnMarker {
            kind: MarkerKind::Abort,
            coordinator_epoch: 42,
        };
        let bytes = marker_batch(77, 3, marker, 1_234);
        let header = batch::validate_for_append(&bytes, 1 << 20).expect("valid");
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(header.compression(), Some(Compression::None));
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (77, 3, -1)
        );
        assert_eq!((header.records_count, header.max_timestamp), (1, 1_234));
        assert_eq!(decode_marker(&bytes, &header), Ok(Some(marker)));
    }

    #[test]
    fn damaged_control_batches_are_errors_never_panics() {
        let marker = EndTxnMarker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 1,
        };
        let bytes = marker_batch(1, 0, marker, 0);
        let header = BatchHeader::parse(&bytes).unwrap();
        for len in 0..bytes.len() {
            let _ = decode_control_batch(&bytes[..len], &header);
        }
        for at in HEADER_LEN..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            let _ = decode_control_batch(&bad, &header);
        }
        let mut plain = header;
        plain.attributes = 0;
        assert!(decode_control_batch(&bytes, &plain).is_err());
    }
}
