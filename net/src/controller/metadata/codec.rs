//! The byte-level primitives of the metadata record encoding: LEB128 varints (zigzag for
//! signed values), length-prefixed strings and lists.
//!
//! The reader trusts nothing: every length or count is checked against the bytes that remain
//! before anything is allocated, so a hostile or corrupt entry costs at most its own size.

/// Why bytes could not be decoded as metadata records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the input ends inside a field")]
    Truncated,
    #[error("a varint is longer than 10 bytes or overflows 64 bits")]
    VarintOverflow,
    #[error("a value is out of range for its field")]
    OutOfRange,
    #[error("a string is not UTF-8")]
    InvalidUtf8,
    #[error("a flag byte is neither 0 nor 1")]
    InvalidFlag,
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("record type {kind} has unsupported version {version}")]
    UnsupportedVersion { kind: u8, version: u8 },
    #[error("a length or count claims more than the remaining input")]
    LengthTooLarge,
    #[error("bytes remain after the last field")]
    TrailingBytes,
    #[error("not a metadata snapshot (bad magic)")]
    BadMagic,
}

/// Appends fields to a buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            // Truncation is the point: the low seven bits, with the continuation bit set.
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn varint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn len(&mut self, n: usize) {
        self.uvarint(n as u64);
    }

    pub fn uuid(&mut self, id: &[u8; 16]) {
        self.buf.extend_from_slice(id);
    }

    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn opt_str(&mut self, s: Option<&str>) {
        self.bool(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }

    pub fn ids(&mut self, ids: &[i32]) {
        self.len(ids.len());
        for &id in ids {
            self.varint(i64::from(id));
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
}

/// Reads fields from a slice, refusing anything malformed.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(first)
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidFlag),
        }
    }

    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the 64th bit.
            if i == 9 && bits > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        let v = self.uvarint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.varint()?).map_err(|_| DecodeError::OutOfRange)
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.uvarint()?).map_err(|_| DecodeError::OutOfRange)
    }

    /// A length or count of items that take at least `min_item_bytes` each: refused if the
    /// remaining input cannot hold that many, so callers may allocate it.
    pub fn len(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::LengthTooLarge)?;
        match n.checked_mul(min_item_bytes.max(1)) {
            Some(bytes) if bytes <= self.remaining() => Ok(n),
            _ => Err(DecodeError::LengthTooLarge),
        }
    }

    pub fn uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        let bytes = self.take(16)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(bytes);
        Ok(id)
    }

    pub fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        if self.bool()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn ids(&mut self) -> Result<Vec<i32>, DecodeError> {
        // Every varint is at least one byte.
        let n = self.len(1)?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(self.i32()?);
        }
        Ok(ids)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut w = Writer::default();
            w.varint(v);
            let mut r = Reader::new(&w.buf);
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.finish(), Ok(()));
        }
        let mut w = Writer::default();
        w.uvarint(u64::MAX);
        assert_eq!(w.buf.len(), 10);
        assert_eq!(Reader::new(&w.buf).uvarint(), Ok(u64::MAX));
    }

    #[test]
    fn overlong_and_overflowing_varints_are_refused() {
        assert_eq!(
            Reader::new(&[0xff; 11]).uvarint(),
            Err(DecodeError::VarintOverflow)
        );
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(
            Reader::new(&too_big).uvarint(),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(Reader::new(&[0x80]).uvarint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn a_count_larger_than_the_input_is_refused_before_allocating() {
        let mut w = Writer::default();
        w.uvarint(u64::MAX);
        assert_eq!(Reader::new(&w.buf).ids(), Err(DecodeError::LengthTooLarge));
        let mut w = Writer::default();
        w.uvarint(3);
        w.u8(1);
        w.u8(2);
        assert_eq!(Reader::new(&w.buf).str(), Err(DecodeError::LengthTooLarge));
    }
}
