//! Builds RecordBatch v2 bytes: what producers send. Used by tests, the load generator and the
//! broker's own writes (control and offset-commit batches).

use super::batch::{
    compute_crc, Compression, CONTROL_BIT, HEADER_LEN, LOG_OVERHEAD, TRANSACTIONAL_BIT,
};
use super::codec;

/// One record to put in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch (CreateTime).
    pub timestamp: i64,
}

/// Accumulates records into an uncompressed RecordBatch v2.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    records: Vec<u8>,
    count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// The transactional and control bits.
    flags: i16,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            records: Vec::new(),
            count: 0,
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            flags: 0,
        }
    }
}

/// Appends a zig-zag varint (Kafka's record framing).
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        (self.producer_id, self.producer_epoch, self.base_sequence) = (id, epoch, base_sequence);
        self
    }

    /// Marks the batch as part of a transaction (attributes bit 4).
    pub fn transactional(mut self) -> Self {
        self.flags |= TRANSACTIONAL_BIT;
        self
    }

    /// Marks the batch as a control batch (attributes bit 5): what only the broker writes
    /// (transaction markers, see [`crate::log::txn::marker`]).
    pub fn control(mut self) -> Self {
        self.flags |= CONTROL_BIT;
        self
    }

    /// Appends a record.
    pub fn push(&mut self, record: &Record) {
        let base_timestamp = *self.base_timestamp.get_or_insert(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        let mut body = Vec::with_capacity(32);
        body.push(0); // record attributes: unused
        put_varint(&mut body, record.timestamp - base_timestamp);
        put_varint(&mut body, i64::from(self.count));
        put_bytes(&mut body, record.key.as_deref());
        put_bytes(&mut body, record.value.as_deref());
        put_varint(&mut body, record.headers.len() as i64);
        for (name, value) in &record.headers {
            put_bytes(&mut body, Some(name.as_bytes()));
            put_bytes(&mut body, value.as_deref());
        }
        put_varint(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
        self.count += 1;
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished batch with base offset 0 and a valid CRC.
    pub fn build(&self) -> Vec<u8> {
        self.assemble(0, &self.records)
    }

    /// The finished batch with its records compressed by `codec`, as a producer would send it.
    pub fn build_compressed(&self, codec: Compression) -> std::io::Result<Vec<u8>> {
        let payload = codec::compress(codec, &self.records)?;
        Ok(self.assemble(codec_attribute(codec), &payload))
    }

    fn assemble(&self, attributes: i16, payload: &[u8]) -> Vec<u8> {
        let total = HEADER_LEN + payload.len();
        let mut batch = Vec::with_capacity(total);
        batch.extend_from_slice(&0i64.to_be_bytes());
        batch.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        batch.push(2); // magic
        batch.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
        batch.extend_from_slice(&(attributes | self.flags).to_be_bytes()); // codec; CreateTime
        batch.extend_from_slice(&(self.count - 1).to_be_bytes());
        batch.extend_from_slice(&self.base_timestamp.unwrap_or(-1).to_be_bytes());
        batch.extend_from_slice(&self.max_timestamp.to_be_bytes());
        batch.extend_from_slice(&self.producer_id.to_be_bytes());
        batch.extend_from_slice(&self.producer_epoch.to_be_bytes());
        batch.extend_from_slice(&self.base_sequence.to_be_bytes());
        batch.extend_from_slice(&self.count.to_be_bytes());
        batch.extend_from_slice(payload);
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }
}

/// The attributes bits that name a codec.
fn codec_attribute(codec: Compression) -> i16 {
    codec.attribute_bits()
}

/// A batch of `count` records with `value_len`-byte values, timestamps from `timestamp`.
pub fn sample_batch(count: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    sample_builder(count, value_len, timestamp).build()
}

/// The records of [`sample_batch`], not yet built (to build them compressed).
pub fn sample_builder(count: usize, value_len: usize, timestamp: i64) -> BatchBuilder {
    let mut builder = BatchBuilder::new();
    for i in 0..count {
        builder.push(&Record {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![(i % 251) as u8; value_len]),
            headers: vec![("h".into(), Some(b"v".to_vec()))],
            timestamp: timestamp + i as i64,
        });
    }
    builder
}

/// A batch of `codec` whose records section is `payload` as given (not compressed here),
/// claiming `count` records: length and CRC are right, so whatever is wrong is in `payload`.
/// For tests of what validation refuses.
pub fn raw_batch(codec: Compression, payload: &[u8], count: i32) -> Vec<u8> {
    let builder = BatchBuilder {
        count,
        ..BatchBuilder::default()
    };
    builder.assemble(codec_attribute(codec), payload)
}

/// `total` zeros (a multiple of 1 MiB) compressed by gzip or zstd, made without compressing
/// them all: a zip bomb for tests. gzip: deflate blocks after a full flush stand alone, so one
/// flushed MiB repeated, an empty final block and the trailer make one gzip member. zstd: one
/// frame per MiB, concatenated (a zstd stream may hold several frames).
pub fn compressed_zeros(codec: Compression, total: usize) -> std::io::Result<Vec<u8>> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    match codec {
        Compression::Gzip => gzip_repeated(&zeros, total / CHUNK),
        Compression::Zstd => Ok(zstd::bulk::compress(&zeros, 3)?.repeat(total / CHUNK)),
        _ => Err(std::io::Error::other("compressed_zeros: gzip or zstd only")),
    }
}

/// One gzip member holding `chunk` `times` over.
fn gzip_repeated(chunk: &[u8], times: usize) -> std::io::Result<Vec<u8>> {
    use flate2::{Compress, Crc, FlushCompress};
    // Deflate of a run of one byte is about 1/1000 of it; the margin covers other data.
    let mut block = Vec::with_capacity(chunk.len() + 1024);
    let mut end = Vec::with_capacity(64);
    let best = flate2::Compression::best();
    Compress::new(best, false)
        .compress_vec(chunk, &mut block, FlushCompress::Full)
        .map_err(std::io::Error::other)?;
    Compress::new(best, false)
        .compress_vec(&[], &mut end, FlushCompress::Finish)
        .map_err(std::io::Error::other)?;
    let mut chunk_crc = Crc::new();
    chunk_crc.update(chunk);
    let mut crc = Crc::new();
    // Header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..times {
        out.extend_from_slice(&block);
        crc.combine(&chunk_crc);
    }
    out.extend_from_slice(&end);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes()); // ISIZE: length mod 2^32
    Ok(out)
}
