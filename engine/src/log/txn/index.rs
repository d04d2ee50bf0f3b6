//! The aborted transaction index, `<20-digit base>.txnindex` beside each segment, in Kafka's
//! exact on-disk format (its `TransactionIndex`): one 34-byte big-endian entry per aborted
//! transaction whose ABORT marker lies in the segment, in marker order:
//!
//! ```text
//! version i16 = 0 | producer_id i64 | first_offset i64 | last_offset i64 | last_stable_offset i64
//! ```
//!
//! `last_offset` is the marker's offset; `last_stable_offset` the partition's LSO right after
//! the marker, which lets a search stop early: no transaction still undecided then can start
//! below it. Kafka creates the file lazily, on the first entry; so does Runnel (a segment
//! without aborts has no `.txnindex`, which reads as empty).
//!
//! Pure: encoding, decoding (damage never panics: a torn tail is cut to whole entries, and
//! an entry of another version ends what is trusted) and the search fetches make.

/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxnEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// What a fetch in read_committed needs of an aborted transaction (Kafka's
/// `FetchResponse.AbortedTransaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

impl AbortedTxnEntry {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }
}

/// A whole index file's bytes.
pub fn encode(entries: &[AbortedTxnEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for entry in entries {
        entry.encode_into(&mut out);
    }
    out
}

/// What reading an index file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    pub entries: Vec<AbortedTxnEntry>,
    /// Bytes past the trusted entries (a torn write, or entries of an unknown version), which
    /// the caller cuts off or rewrites.
    pub damaged_bytes: usize,
}

/// Reads an index file. Entries are trusted up to the first one that can't be ours: a torn
/// tail, an unknown version, or offsets that can't describe a transaction.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for chunk in bytes.chunks(ENTRY_LEN) {
        let Ok(raw) = <[u8; ENTRY_LEN]>::try_from(chunk) else {
            break;
        };
        let i64_at = |at: usize| i64::from_be_bytes(raw[at..at + 8].try_into().expect("8"));
        let version = i16::from_be_bytes([raw[0], raw[1]]);
        let entry = AbortedTxnEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if version != VERSION || entry.first_offset < 0 || entry.last_offset < entry.first_offset {
            break;
        }
        entries.push(entry);
    }
    let damaged_bytes = bytes.len() - entries.len() * ENTRY_LEN;
    Decoded {
        entries,
        damaged_bytes,
    }
}

/// Adds to `out` the entries of one segment's index a fetch from `from` up to `upper` must
/// report (the transaction ends at or after `from` and starts before `upper`), as Kafka's
/// `TransactionIndex.collectAbortedTxns`. Returns true when the search is complete: an entry's
/// last stable offset reached `upper`, so no transaction aborted in a later segment can have
/// started below `upper`.
pub fn collect(
    entries: &[AbortedTxnEntry],
    from: i64,
    upper: i64,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for entry in entries {
        if entry.last_offset >= from && entry.first_offset < upper {
            out.push(AbortedTxn {
                producer_id: entry.producer_id,
                first_offset: entry.first_offset,
            });
        }
        if entry.last_stable_offset >= upper {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes() {
        let bytes = encode(&[entry(0x0102, 3, 9, 10)]);
        assert_eq!(bytes.len(), ENTRY_LEN);
        let mut expected = vec![0, 0];
        for v in [0x0102i64, 3, 9, 10] {
            expected.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(bytes, expected);
        let entries = vec![entry(1, 0, 5, 6), entry(2, 3, 8, 9)];
        assert_eq!(
            decode(&encode(&entries)),
            Decoded {
                entries,
                damaged_bytes: 0
            }
        );
    }

    #[test]
    fn torn_and_foreign_entries_end_what_is_trusted() {
        let entries = vec![entry(1, 0, 5, 6), entry(2, 3, 8, 9)];
        let bytes = encode(&entries);
        for len in 0..=bytes.len() {
            let decoded = decode(&bytes[..len]);
            assert_eq!(decoded.entries, entries[..len / ENTRY_LEN]);
            assert_eq!(decoded.damaged_bytes, len % ENTRY_LEN);
        }
        let mut other_version = bytes.clone();
        other_version[ENTRY_LEN + 1] = 1;
        let decoded = decode(&other_version);
        assert_eq!(decoded.entries, entries[..1]);
        assert_eq!(decoded.damaged_bytes, ENTRY_LEN);
        let backwards = encode(&[entry(1, 9, 5, 10)]);
        assert_eq!(decode(&backwards).entries, vec![]);
        // Any bytes at all: no panic.
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x80;
            let _ = decode(&bad);
        }
    }

    #[test]
    fn collect_reports_overlapping_transactions_and_stops_at_the_upper_bound() {
        let entries = [entry(1, 0, 4, 5), entry(2, 3, 10, 11), entry(3, 12, 20, 30)];
        let mut out = Vec::new();
        // The first ended before 5; the second's LSO (11) reaches the bound, so the third
        // (which starts past it anyway) is not even looked at.
        assert!(collect(&entries, 5, 11, &mut out));
        assert_eq!(
            out,
            vec![AbortedTxn {
                producer_id: 2,
                first_offset: 3
            }]
        );
        let mut out = Vec::new();
        assert!(
            collect(&entries, 0, 5, &mut out),
            "the first entry's LSO is 5"
        );
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        assert!(
            !collect(&entries, 0, 40, &mut out),
            "may continue in later segments"
        );
        assert_eq!(out.len(), 3);
    }
}
