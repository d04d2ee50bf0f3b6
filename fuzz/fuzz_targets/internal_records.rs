//! The broker's own records, as read back from disk after a crash or from a damaged data
//! directory: `__transaction_state` keys and values, `__consumer_offsets` keys and values,
//! transaction markers, `.txnindex` files and producer state snapshots. Every decoder must
//! refuse what it can't read without panicking or allocating by a length it read; what it
//! accepts must encode back to something it decodes the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_engine::log::producers::snapshot;
use runnel_engine::log::txn::{index, marker};
use runnel_net::groups::records as group_records;
use runnel_net::txn::records as txn_records;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 7 {
        0 => {
            if let Ok(id) = txn_records::decode_key(bytes) {
                assert_eq!(txn_records::decode_key(&txn_records::encode_key(&id)), Ok(id));
            }
        }
        1 => {
            if let Ok(value) = txn_records::decode_value(bytes) {
                for version in [0, 1] {
                    let again = txn_records::decode_value(&txn_records::encode_value(&value, version));
                    assert!(again.is_ok(), "v{version} of a decoded value decodes");
                }
            }
        }
        2 => {
            if let Ok(key) = group_records::decode_key(bytes) {
                assert_eq!(group_records::decode_key(&group_records::encode_key(&key)), Ok(key));
            }
        }
        3 => {
            let _ = group_records::decode_offset_value(bytes);
            let _ = group_records::decode_group_value(bytes);
        }
        4 => {
            let _ = marker::decode_key(bytes);
            let _ = marker::decode_value(bytes);
        }
        5 => {
            let decoded = index::decode(bytes);
            assert!(decoded.damaged_bytes <= bytes.len());
            assert_eq!(index::decode(&index::encode(&decoded.entries)).entries, decoded.entries);
        }
        _ => {
            if let Ok(states) = snapshot::decode(bytes) {
                assert_eq!(snapshot::decode(&snapshot::encode(&states)), Ok(states));
            }
        }
    }
});
