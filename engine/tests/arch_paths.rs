//! Paths whose behaviour depends on the CPU or the kernel's configuration, checked on every
//! architecture the test suite runs on (x86_64 natively, aarch64 under qemu-user):
//! - CRC-32C: the `crc32c` crate uses SSE 4.2 on x86_64 and the ARMv8 CRC instructions on
//!   aarch64 (falling back to tables without them); every path must agree with the bitwise
//!   definition, for any length and alignment.
//! - the page size: 4 KiB on x86_64, 4, 16 or 64 KiB on aarch64 kernels; pipe buffers (zero-copy
//!   fetch) are sized in pages.

use runnel_engine::log::batch;
use runnel_engine::log::builder::{BatchBuilder, Record};
use runnel_engine::rt;

/// CRC-32C (Castagnoli) one bit at a time: the definition, nothing to share with any fast path.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// xorshift64*: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn crc32c_matches_the_bitwise_definition() {
    assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283, "the check value");
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Every length up to a few cache lines (the SIMD paths' head/body/tail splits), then
    // random lengths; each at every alignment within 16 bytes.
    let lengths: Vec<usize> = (0..=300)
        .chain((0..50).map(|_| (rng.next() % 70_000) as usize))
        .collect();
    for len in lengths {
        let data = rng.bytes(len + 16);
        for align in [0, 1, 3, 7, 8, 15] {
            let slice = &data[align..align + len];
            assert_eq!(
                crc32c::crc32c(slice),
                crc32c_bitwise(slice),
                "length {len}, alignment {align}"
            );
        }
        // Incremental (crc32c_append) equals one pass, split anywhere.
        let split = if len == 0 {
            0
        } else {
            (rng.next() as usize) % len
        };
        let slice = &data[..len];
        let first = crc32c::crc32c(&slice[..split]);
        assert_eq!(
            crc32c::crc32c_append(first, &slice[split..]),
            crc32c_bitwise(slice)
        );
    }
}

#[test]
fn batch_crcs_are_the_bitwise_crc_of_attributes_to_end() {
    let mut rng = Rng(42);
    for n in 1..20 {
        let mut builder = BatchBuilder::new();
        for i in 0..n {
            let len = (rng.next() % 3000) as usize;
            builder.push(&Record {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(rng.bytes(len)),
                headers: Vec::new(),
                timestamp: 1_700_000_000_000 + i as i64,
            });
        }
        let bytes = builder.build();
        let header = batch::BatchHeader::parse(&bytes).unwrap();
        assert_eq!(header.crc, crc32c_bitwise(&bytes[21..]));
        assert_eq!(batch::compute_crc(&bytes), header.crc);
        batch::validate(&bytes, 1 << 24).unwrap();
    }
}

#[test]
fn page_size_is_the_kernels() {
    let size = rt::page_size();
    // SAFETY: sysconf takes no pointers.
    let sysconf = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    assert_eq!(size as libc::c_long, sysconf);
    assert!(size.is_power_of_two() && size >= 4096, "{size}");
}

#[test]
fn pipes_are_sized_in_pages() {
    let page = rt::page_size();
    // The default (capacity 0) is what the kernel gave, not an assumed 64 KiB.
    let pipe = rt::Pipe::new(0).unwrap();
    assert!(pipe.capacity() >= page && pipe.capacity() % page == 0);
    // A request is rounded up to whole pages.
    let pipe = rt::Pipe::new(page + 1).unwrap();
    assert_eq!(pipe.capacity() % page, 0);
    assert!(pipe.capacity() >= 2 * page, "{}", pipe.capacity());
}
