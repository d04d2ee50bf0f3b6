//! The compression codecs of RecordBatch v2, as Kafka clients use them: gzip (one gzip
//! member), snappy (xerial's framing, or raw snappy as xerial's reader falls back to), lz4 (the
//! lz4 *frame* format) and zstd. Decompression accepts what the `kafka-protocol` crate's
//! decoders accept (vendor/kafka-protocol/src/compression), with two differences, both on
//! data those decoders would also fail on later: a truncated lz4 frame is refused here (theirs
//! stops quietly at the cut), and any output beyond a caller's bound is refused here.
//!
//! Compression makes the batches a Kafka producer would send (tests, benchmarks, the load
//! generator), and the batches a topic with a `compression.type` other than `producer` stores
//! (the broker recompresses them, at the topic's `compression.*.level`).

use std::io::{self, Read, Write};

use super::batch::{BatchError, Compression};

/// Output a decoder may write before the bound is reached; the buffer grows from a guess
/// towards the bound so a small batch never pays for a large one.
const MIN_GROWTH: usize = 64 * 1024;

/// xerial snappy-java's stream header: magic, then version 1 and compatible version 1.
const SNAPPY_XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// xerial's block size (SnappyOutputStream's default), so our batches look like Java's.
const SNAPPY_XERIAL_BLOCK: usize = 32 * 1024;

fn corrupt(what: &'static str) -> BatchError {
    BatchError::Corrupt(what)
}

fn too_large() -> BatchError {
    BatchError::Corrupt("decompressed records exceed the broker's bound")
}

/// Decompresses a batch's records section. Never writes more than `limit` bytes: a payload
/// that would inflate beyond it is refused as soon as the decoder passes it.
pub fn decompress(codec: Compression, payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    match codec {
        Compression::None => bounded_copy(payload, limit),
        Compression::Gzip => gunzip(payload, limit),
        Compression::Snappy => unsnappy(payload, limit),
        Compression::Lz4 => unlz4(payload, limit),
        Compression::Zstd => unzstd(payload, limit),
    }
}

fn bounded_copy(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    if payload.len() > limit {
        return Err(too_large());
    }
    Ok(payload.to_vec())
}

/// One gzip member, CRC and size trailer checked, nothing after it (flate2's write-side
/// `GzDecoder`, which kafka-protocol uses, refuses trailing bytes too).
fn gunzip(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut decoder = flate2::bufread::GzDecoder::new(payload);
    let out = read_bounded(&mut decoder, limit, payload.len())
        .map_err(|e| e.unwrap_or_else(|| corrupt("gzip payload does not decode")))?;
    if !decoder.into_inner().is_empty() {
        return Err(corrupt("bytes after the gzip stream"));
    }
    Ok(out)
}

/// A complete lz4 frame; like the lz4 crate's reader, bytes after the frame are not read.
fn unlz4(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut decoder =
        lz4::Decoder::new(payload).map_err(|_| corrupt("lz4 decoder could not start"))?;
    let out = read_bounded(&mut decoder, limit, payload.len())
        .map_err(|e| e.unwrap_or_else(|| corrupt("lz4 payload does not decode")))?;
    // The reader reports a cut-off frame as a clean end; `finish` knows the frame is incomplete.
    decoder
        .finish()
        .1
        .map_err(|_| corrupt("lz4 frame is truncated"))?;
    Ok(out)
}

/// One or more zstd frames (zstd's streaming decoder reads concatenated frames, as
/// `copy_decode` does), every one complete.
fn unzstd(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(|_| corrupt("zstd decoder could not start"))?;
    read_bounded(&mut decoder, limit, payload.len())
        .map_err(|e| e.unwrap_or_else(|| corrupt("zstd payload does not decode")))
}

/// xerial-framed snappy when the payload starts with xerial's magic, raw snappy otherwise
/// (xerial's SnappyInputStream falls back the same way).
fn unsnappy(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    if payload.is_empty() {
        return Err(corrupt("empty snappy payload"));
    }
    match payload.strip_prefix(SNAPPY_XERIAL_MAGIC) {
        Some(blocks) => unsnappy_xerial(blocks, limit),
        None => {
            let mut out = Vec::new();
            unsnappy_block(payload, &mut out, limit)?;
            Ok(out)
        }
    }
}

/// xerial's framing: blocks of a big-endian u32 length and a raw snappy block.
fn unsnappy_xerial(mut blocks: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    while !blocks.is_empty() {
        let (len, rest) = blocks
            .split_first_chunk::<4>()
            .ok_or(corrupt("truncated snappy block length"))?;
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| corrupt("snappy block length out of range"))?;
        let block = rest
            .get(..len)
            .ok_or(corrupt("snappy block runs past the payload"))?;
        unsnappy_block(block, &mut out, limit)?;
        blocks = &rest[len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`. The block states its decompressed length up front,
/// so the bound is checked before anything is allocated.
fn unsnappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BatchError> {
    let len = snap::raw::decompress_len(block).map_err(|_| corrupt("bad snappy block header"))?;
    let start = out.len();
    let end = start
        .checked_add(len)
        .filter(|&end| end <= limit)
        .ok_or_else(too_large)?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|_| corrupt("snappy block does not decode"))?;
    if written != len {
        return Err(corrupt("snappy block shorter than its header says"));
    }
    Ok(())
}

/// Reads `reader` to its end into a buffer that never grows past `limit` bytes. `hint` (the
/// compressed size) sizes the first allocation. `Err(Some(_))` when the bound is passed,
/// `Err(None)` when the decoder fails.
fn read_bounded(
    reader: &mut impl Read,
    limit: usize,
    hint: usize,
) -> Result<Vec<u8>, Option<BatchError>> {
    let mut buf = Vec::new();
    let mut len = 0;
    // Not `clamp`: it panics when `limit` is below MIN_GROWTH.
    let mut next_size = hint.saturating_mul(4).max(MIN_GROWTH).min(limit.max(1));
    loop {
        if len == buf.len() {
            if len >= limit {
                return match probe_end(reader) {
                    Ok(true) => Ok(buf),
                    Ok(false) => Err(Some(too_large())),
                    Err(_) => Err(None),
                };
            }
            let size = next_size.min(limit);
            buf.reserve_exact(size - len);
            buf.resize(size, 0);
            next_size = size.saturating_mul(2);
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Whether the reader is at its end, reading at most one byte to find out.
fn probe_end(reader: &mut impl Read) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Compresses a records section as a Kafka producer does (kafka-protocol's encoders: gzip at
/// the default level, xerial snappy in 32 KiB blocks, lz4 frames with independent blocks at
/// level 4, zstd at level 3).
pub fn compress(codec: Compression, records: &[u8]) -> io::Result<Vec<u8>> {
    compress_at(codec, records, None)
}

/// [`compress`] at a codec's level (Kafka's `compression.gzip.level` 1-9, `compression.lz4.level`
/// 1-17, `compression.zstd.level` -131072-22; snappy has none); `None`, or gzip's -1, is the
/// default level. The caller checks the range (the topic config's validation does).
pub fn compress_at(codec: Compression, records: &[u8], level: Option<i32>) -> io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(records.to_vec()),
        Compression::Gzip => {
            let level = match level {
                Some(l @ 0..=9) => flate2::Compression::new(l as u32),
                _ => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(records)?;
            encoder.finish()
        }
        Compression::Snappy => snappy_xerial(records),
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(level.and_then(|l| u32::try_from(l).ok()).unwrap_or(4))
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())?;
            encoder.write_all(records)?;
            let (out, result) = encoder.finish();
            result.map(|()| out)
        }
        Compression::Zstd => zstd::stream::encode_all(records, level.unwrap_or(3)),
    }
}

fn snappy_xerial(records: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = SNAPPY_XERIAL_MAGIC.to_vec();
    let mut encoder = snap::raw::Encoder::new();
    for chunk in records.chunks(SNAPPY_XERIAL_BLOCK) {
        let block = encoder.compress_vec(chunk).map_err(io::Error::other)?;
        let len = u32::try_from(block.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 97) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for codec in Compression::ALL {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, 1 << 20).unwrap(),
                data,
                "{codec:?}"
            );
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert!(
                decompress(codec, &packed, data.len() - 1).is_err(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn bounds_below_the_growth_step_refuse_rather_than_panic() {
        let data = sample();
        for codec in &Compression::ALL[1..] {
            let packed = compress(*codec, &data).unwrap();
            assert!(decompress(*codec, &packed, 10).is_err(), "{codec:?}");
            assert_eq!(
                decompress(*codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_is_accepted_as_xerial_readers_do() {
        let data = sample();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
            data
        );
    }

    #[test]
    fn truncated_or_garbage_payloads_are_corrupt() {
        let data = sample();
        for codec in &Compression::ALL[1..] {
            let packed = compress(*codec, &data).unwrap();
            for cut in [0, 1, 5, packed.len() / 2, packed.len() - 1] {
                let result = decompress(*codec, &packed[..cut], 1 << 20);
                assert!(
                    matches!(result, Err(BatchError::Corrupt(_))),
                    "{codec:?} cut at {cut}: {:?}",
                    result.map(|v| v.len())
                );
            }
            let garbage = vec![0x5a; 300];
            assert!(decompress(*codec, &garbage, 1 << 20).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn bytes_after_a_gzip_member_are_refused() {
        let mut packed = compress(Compression::Gzip, b"hello").unwrap();
        packed.push(0);
        assert!(decompress(Compression::Gzip, &packed, 1 << 20).is_err());
    }
}
