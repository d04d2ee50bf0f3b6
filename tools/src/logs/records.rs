//! The records of one batch, decoded for `log dump --records` (decompressed with the engine's
//! codecs). Kafka's DefaultRecord layout: see runnel_engine::log::records.

use runnel_engine::log::batch::{self, Compression, HEADER_LEN};
use runnel_engine::log::codec;

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            raw |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("bad varint".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err("field runs past the record".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let len = self.varlong()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| "bad length".to_string())?;
        Ok(Some(self.take(len)?.to_vec()))
    }
}

/// Decodes every record of `bytes` (exactly one batch), decompressing within `limit` bytes.
pub fn decode(bytes: &[u8], limit: usize) -> Result<Vec<Record>, String> {
    let header = batch::BatchHeader::parse(bytes).map_err(|e| e.to_string())?;
    let codec = header
        .compression()
        .ok_or_else(|| "unknown compression codec".to_string())?;
    let payload = &bytes[HEADER_LEN..];
    let decompressed;
    let records = if codec == Compression::None {
        payload
    } else {
        decompressed = codec::decompress(codec, payload, limit).map_err(|e| e.to_string())?;
        &decompressed
    };
    let mut cursor = Cursor(records);
    let mut out = Vec::new();
    while !cursor.0.is_empty() {
        let len = cursor.varlong()?;
        let len = usize::try_from(len).map_err(|_| "bad record length".to_string())?;
        let mut record = Cursor(cursor.take(len)?);
        record.take(1)?; // attributes
        let timestamp_delta = record.varlong()?;
        let offset_delta = record.varlong()?;
        let key = record.bytes()?;
        let value = record.bytes()?;
        let count = record.varlong()?;
        let mut headers = Vec::new();
        for _ in 0..count.max(0) {
            let name = record.bytes()?.unwrap_or_default();
            headers.push((name, record.bytes()?));
        }
        out.push(Record {
            offset: header.base_offset.saturating_add(offset_delta),
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

/// Bytes shown as text, escaped, at most `max` characters.
pub fn show(bytes: Option<&[u8]>, max: usize) -> String {
    let Some(bytes) = bytes else {
        return "null".into();
    };
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_engine::log::builder::{BatchBuilder, Record as BuildRecord};

    #[test]
    fn decodes_what_the_builder_wrote() {
        let mut builder = BatchBuilder::new();
        for i in 0..3 {
            builder.push(&BuildRecord {
                key: (i != 1).then(|| format!("k{i}").into_bytes()),
                value: Some(format!("v{i}").into_bytes()),
                headers: vec![("h".into(), Some(b"x".to_vec()))],
                timestamp: 1000 + i,
            });
        }
        let mut bytes = builder.build();
        batch::set_base_offset(&mut bytes, 40);
        let records = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].offset, 41);
        assert_eq!(records[1].key, None);
        assert_eq!(records[2].value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(records[2].timestamp, 1002);
        assert_eq!(
            records[0].headers,
            vec![(b"h".to_vec(), Some(b"x".to_vec()))]
        );
        assert_eq!(show(Some(b"abcdef"), 3), "\"abc…\"");
    }
}
