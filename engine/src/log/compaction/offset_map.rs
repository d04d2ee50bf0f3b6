//! The cleaner's offset map: for each key in the dirty section, the offset of its newest
//! record. Keys are stored as 128-bit hashes (as Kafka stores 16-byte MD5 digests), so the
//! memory per key is fixed and a pass's memory is bounded by `log.cleaner.dedupe.buffer.size`
//! whatever the keys' sizes. Two keys colliding on 128 bits is as unlikely as a disk error.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Memory one entry takes in the table: the hash and the offset (with their alignment) and
/// hashbrown's control byte.
const ENTRY_BYTES: usize = std::mem::size_of::<(KeyHash, i64)>() + 1;

/// A key's identity in the map.
pub(crate) type KeyHash = u128;

/// Hashes a record key. Two SipHash-1-3 passes with different prefixes give 128 bits; the
/// hash only lives for one pass, so the standard library's hasher (whose output may change
/// between Rust releases) is fine.
pub(crate) fn key_hash(key: &[u8]) -> KeyHash {
    let half = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(salt);
        key.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0x5a)) << 64) | u128::from(half(0xa5))
}

/// The keys are hashes already: use their low bits as the table's hash.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// Newest offset per key hash, holding at most [`capacity`](OffsetMap::capacity) keys.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    offsets: HashMap<KeyHash, i64, BuildHasherDefault<PassThrough>>,
    capacity: usize,
}

impl OffsetMap {
    /// A map that stays within `buffer_bytes`: the largest power-of-two table that fits,
    /// filled to its load limit (7/8), never grown past it. The table grows by doubling as
    /// keys come (a small log's pass works in a small, cache-friendly table); at the last
    /// doubling the old table (half the size) is alive beside the new one, so the final table
    /// may take two thirds of the budget.
    pub fn new(buffer_bytes: usize) -> Self {
        let buckets = (buffer_bytes / (ENTRY_BYTES + ENTRY_BYTES / 2)).max(16);
        let buckets = if buckets.is_power_of_two() {
            buckets
        } else {
            buckets.next_power_of_two() / 2
        };
        OffsetMap {
            offsets: HashMap::default(),
            capacity: buckets / 8 * 7,
        }
    }

    /// Most keys the map holds.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether `more` new keys would still fit.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.len().saturating_add(more) <= self.capacity
    }

    /// Forgets every key, keeping the table's memory for the next pass.
    pub fn clear(&mut self) {
        self.offsets.clear();
    }

    /// Records `offset` as the newest for `key` (offsets come in increasing order). False,
    /// recording nothing, when `key` is new and the map is full.
    pub fn put(&mut self, key: KeyHash, offset: i64) -> bool {
        if self.offsets.len() >= self.capacity && !self.offsets.contains_key(&key) {
            return false;
        }
        self.offsets.insert(key, offset);
        true
    }

    /// The newest offset of `key` in the mapped section.
    pub fn get(&self, key: KeyHash) -> Option<i64> {
        self.offsets.get(&key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_offset_per_key() {
        let mut map = OffsetMap::new(1 << 16);
        map.put(key_hash(b"a"), 1);
        map.put(key_hash(b"b"), 2);
        map.put(key_hash(b"a"), 3);
        assert_eq!(map.get(key_hash(b"a")), Some(3));
        assert_eq!(map.get(key_hash(b"b")), Some(2));
        assert_eq!(map.get(key_hash(b"c")), None);
        assert_eq!(map.len(), 2);
        map.clear();
        assert_eq!(map.get(key_hash(b"a")), None);
    }

    #[test]
    fn memory_bounds_the_number_of_keys() {
        let map = OffsetMap::new(1 << 20);
        // 1 MiB / (33 x 1.5) bytes → 21183 buckets → 16384 (a power of two) → 14336 keys
        // at 7/8; the table then takes 16384 x 33 bytes and its predecessor half that.
        assert_eq!(map.capacity(), 14336);
        const { assert!(16384 * ENTRY_BYTES * 3 / 2 <= 1 << 20) };
        let mut map = OffsetMap::new(0);
        assert_eq!(map.capacity(), 14);
        let fitted = (0..100u32)
            .filter(|&i| map.put(key_hash(&i.to_be_bytes()), i64::from(i)))
            .count();
        assert_eq!(
            (fitted, map.len()),
            (14, 14),
            "a full map takes no new keys"
        );
        assert!(!map.has_room_for(1));
        assert!(map.put(key_hash(&0u32.to_be_bytes()), 500));
        assert_eq!(
            map.get(key_hash(&0u32.to_be_bytes())),
            Some(500),
            "known keys update"
        );
    }

    #[test]
    fn distinct_keys_hash_apart() {
        let hashes: std::collections::HashSet<_> =
            (0..10_000u32).map(|i| key_hash(&i.to_le_bytes())).collect();
        assert_eq!(hashes.len(), 10_000);
        assert_ne!(key_hash(b""), key_hash(b"\0"));
    }
}
