//! What the controller quorum reads from peers and from its own files: raft messages off the
//! controller listener, metadata record batches (raft entries), metadata image snapshots, the
//! quorum's WAL and snapshot files. Each decoder must refuse what it can't read without
//! panicking or allocating by a length it read; what it accepts must survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_net::controller::metadata::{decode_batch, encode_batch, MetadataImage};
use runnel_net::controller::quorum::{wal, wire};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 5 {
        0 => {
            if let Ok(Some((message, _))) = wire::decode(bytes, 1 << 20) {
                let mut again = Vec::new();
                wire::encode(&message, &mut again);
                assert!(matches!(wire::decode(&again, 1 << 20), Ok(Some(_))));
            }
        }
        1 => {
            if let Ok(records) = decode_batch(bytes) {
                assert_eq!(decode_batch(&encode_batch(&records)).ok(), Some(records));
            }
        }
        2 => {
            if let Ok(image) = MetadataImage::from_snapshot_bytes(bytes) {
                let again = MetadataImage::from_snapshot_bytes(&image.snapshot_bytes());
                assert_eq!(again.ok(), Some(image));
            }
        }
        3 => {
            let _ = wal::recover(None, bytes);
        }
        _ => {
            let _ = wal::decode_snapshot(bytes);
        }
    }
});
