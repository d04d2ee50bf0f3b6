//! Request decoding on arbitrary frames, exactly as a connection decodes them (header, the
//! dispatch table's version check, the body under the decode budget): every API and version
//! the broker serves must refuse what it can't decode without panicking or allocating without
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_net::handlers::APIS;
use runnel_net::kafka::connection::decode_request;

fuzz_target!(|data: &[u8]| {
    // Point the first bytes at a served API and version half of the time, so the fuzzer
    // spends its effort in message bodies rather than on unknown keys.
    let mut frame = data.to_vec();
    if let (Some(&pick), true) = (data.first(), frame.len() >= 4) {
        if pick & 1 == 0 {
            let api = &APIS.0[usize::from(pick >> 1) % APIS.0.len()];
            let span = (api.max_version - api.min_version + 1) as u8;
            let version = api.min_version + i16::from(data[1] % span);
            frame[..2].copy_from_slice(&(api.key as i16).to_be_bytes());
            frame[2..4].copy_from_slice(&version.to_be_bytes());
        }
    }
    let _ = decode_request(bytes::Bytes::from(frame), APIS);
});
