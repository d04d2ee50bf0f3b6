//! Record batch validation on arbitrary produce payloads: it must refuse what it can't accept
//! without panicking, allocating without bound or looping, and what it accepts must be whole
//! batches that cover the payload exactly.
//!
//! Half the inputs are first made into one batch with a consistent length, magic and CRC, so
//! the fuzzer gets past the checksum into the records and their compression.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_engine::log::batch;

/// Where the v2 header keeps its length, magic and CRC (see `engine/src/log/batch.rs`).
const LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

fn as_one_batch(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    if bytes.len() < batch::HEADER_LEN {
        return bytes;
    }
    let length = (bytes.len() - batch::LOG_OVERHEAD) as i32;
    bytes[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    bytes[MAGIC_AT] = 2;
    let crc = crc32c::crc32c(&bytes[CRC_FROM..]);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fuzz_target!(|data: &[u8]| {
    let payload = match data.first() {
        Some(pick) if pick & 1 == 1 => as_one_batch(&data[1..]),
        _ => data.to_vec(),
    };
    if let Ok(batches) = batch::split_and_validate(&payload, 1 << 20) {
        let mut end = 0;
        for (at, header) in &batches {
            assert_eq!(*at, end, "batches are contiguous");
            end += header.total_len().expect("a validated batch has a length");
        }
        assert_eq!(end, payload.len(), "the batches cover the payload");
    }
});
