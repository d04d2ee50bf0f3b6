//! Record batch validation on arbitrary produce payloads: it must refuse what it can't accept
//! without panicking, allocating without bound or looping, and what it accepts must be whole
//! batches that cover the payload exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_engine::log::batch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = batch::split_and_validate(data, 1 << 20) {
        let mut end = 0;
        for (at, header) in &batches {
            assert_eq!(*at, end, "batches are contiguous");
            end += header.total_len().expect("a validated batch has a length");
        }
        assert_eq!(end, data.len(), "the batches cover the payload");
    }
});
