//! Recovery's view of a damaged segment: scanning arbitrary bytes as a segment must not panic,
//! and scanning it in windows (as recovery does, in bounded memory) must find exactly what one
//! scan of the whole finds. The index files' decoders get the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_engine::log::index::{OffsetIndex, TimeIndex};
use runnel_engine::log::scan::{scan_segment, Feed, SegmentScanner};

const INDEX_INTERVAL: usize = 4096;
const MAX_BATCH: usize = 1 << 20;

fuzz_target!(|input: (u16, &[u8])| {
    let (window, bytes) = input;
    let base_offset = 0;
    let whole = scan_segment(base_offset, bytes, INDEX_INTERVAL, MAX_BATCH);

    let window = usize::from(window).max(1);
    let mut scanner = SegmentScanner::new(base_offset, INDEX_INTERVAL, MAX_BATCH);
    let mut wanted = window;
    loop {
        let from = usize::try_from(scanner.position()).expect("position fits");
        let from = from.min(bytes.len());
        let to = bytes.len().min(from.saturating_add(wanted.max(window)));
        let at_eof = to == bytes.len();
        match scanner.feed(&bytes[from..to], at_eof) {
            Feed::Done => break,
            Feed::NeedMore(_) if at_eof => panic!("the scanner wants more past the end"),
            Feed::NeedMore(more) => wanted = more,
        }
    }
    assert_eq!(
        whole,
        scanner.finish(),
        "windowed scan differs from a whole scan"
    );

    if let Ok(index) = OffsetIndex::decode(base_offset, bytes) {
        let _ = index.lookup(window as i64);
    }
    if let Ok(index) = TimeIndex::decode(base_offset, bytes) {
        let _ = index.lookup(window as i64);
    }
});
