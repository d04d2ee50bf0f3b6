//! Reading a stopped broker's partition directories with the engine's own format code: which
//! partitions and segments a path names, a segment's batches read through a bounded window,
//! and its two indexes checked against the batches they point at.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use runnel_engine::log::batch::{self, BatchHeader, LOG_OVERHEAD};
use runnel_engine::log::index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};
use runnel_engine::log::{
    parse_segment_name, segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Bytes read from a segment at a time (a window grows only to hold one larger batch).
pub const WINDOW: usize = 1 << 20;
/// Index files larger than this are not read (Kafka's default `segment.index.bytes` is 10 MiB).
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// A partition directory and the base offsets of its segments, in order.
#[derive(Debug, Clone)]
pub struct Partition {
    pub dir: PathBuf,
    pub name: String,
    pub segments: Vec<i64>,
}

impl Partition {
    pub fn log_path(&self, base: i64) -> PathBuf {
        segment_path(&self.dir, base, LOG_SUFFIX)
    }
}

fn segments_in(dir: &Path) -> Result<Vec<i64>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut bases: Vec<i64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| parse_segment_name(e.file_name().to_str()?, LOG_SUFFIX))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// What `target` names: one segment file, one partition directory, or a data directory (every
/// subdirectory holding segments, by name).
pub fn resolve(target: &Path) -> Result<Vec<Partition>, String> {
    let meta =
        std::fs::metadata(target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    if meta.is_file() {
        let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let base = parse_segment_name(file_name, LOG_SUFFIX).ok_or_else(|| {
            format!(
                "{} is not a segment file (<20-digit base offset>.log)",
                target.display()
            )
        })?;
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        return Ok(vec![Partition {
            name: name_of(&dir),
            dir,
            segments: vec![base],
        }]);
    }
    let segments = segments_in(target)?;
    if !segments.is_empty() {
        return Ok(vec![Partition {
            dir: target.to_path_buf(),
            name: name_of(target),
            segments,
        }]);
    }
    let entries =
        std::fs::read_dir(target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let mut partitions = Vec::new();
    for dir in dirs {
        let segments = segments_in(&dir)?;
        if !segments.is_empty() {
            partitions.push(Partition {
                name: name_of(&dir),
                dir,
                segments,
            });
        }
    }
    if partitions.is_empty() {
        return Err(format!(
            "no segments (<20-digit base offset>.log) in {} or its subdirectories",
            target.display()
        ));
    }
    Ok(partitions)
}

/// One batch whose framing holds (its length fits the file); its contents may still be bad.
#[derive(Debug)]
pub struct Batch<'a> {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: &'a [u8],
    pub crc_ok: bool,
    /// What the engine's validation (magic, CRC, lengths, record framing) refuses.
    pub problem: Option<String>,
}

/// The next thing in a segment.
#[derive(Debug)]
pub enum Next<'a> {
    Batch(Batch<'a>),
    /// The framing is broken at `position` (a torn write, or a damaged length): nothing after
    /// it can be read as batches.
    Stop {
        position: u64,
        reason: String,
    },
    End,
}

/// A segment file read batch by batch through a window of about [`WINDOW`] bytes.
#[derive(Debug)]
pub struct SegmentReader {
    file: File,
    len: u64,
    pos: u64,
    window_start: u64,
    window: Vec<u8>,
    max_batch: usize,
}

impl SegmentReader {
    pub fn open(path: &Path, max_batch: usize) -> Result<SegmentReader, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        Ok(SegmentReader {
            file,
            len,
            pos: 0,
            window_start: 0,
            window: Vec::new(),
            max_batch,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// `n` bytes at `pos` (which the caller made sure the file holds).
    fn slice(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let end = pos + n as u64;
        let window_end = self.window_start + self.window.len() as u64;
        if pos < self.window_start || end > window_end {
            let want = n.max(WINDOW).min((self.len - pos) as usize);
            if self.window.capacity() > 4 * WINDOW && want <= WINDOW {
                self.window = Vec::new();
            }
            self.window.resize(want, 0);
            self.file.read_exact_at(&mut self.window, pos)?;
            self.window_start = pos;
        }
        let at = (pos - self.window_start) as usize;
        Ok(&self.window[at..at + n])
    }

    fn stop(&mut self, position: u64, reason: String) -> Next<'static> {
        self.pos = self.len;
        Next::Stop { position, reason }
    }

    pub fn next(&mut self) -> Result<Next<'_>, String> {
        if self.pos >= self.len {
            return Ok(Next::End);
        }
        let position = self.pos;
        let left = self.len - position;
        if left < LOG_OVERHEAD as u64 {
            return Ok(self.stop(
                position,
                format!("{left} trailing bytes are too short for a batch (a torn write?)"),
            ));
        }
        let max_batch = self.max_batch;
        let head = self.slice(position, LOG_OVERHEAD).map_err(read_error)?;
        let total = match batch::declared_total_len(head) {
            Some(total) if total <= max_batch => total,
            _ => {
                let field = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
                return Ok(self.stop(
                    position,
                    format!("batch length {field} is out of range (framing broken)"),
                ));
            }
        };
        if total as u64 > left {
            return Ok(self.stop(
                position,
                format!("batch of {total} bytes runs past the end of the file ({left} bytes left; a torn write?)"),
            ));
        }
        self.pos = position + total as u64;
        let bytes = self.slice(position, total).map_err(read_error)?;
        let header = BatchHeader::parse(bytes).map_err(|e| e.to_string())?;
        let crc_ok = batch::compute_crc(bytes) == header.crc;
        let problem = batch::validate(bytes, max_batch)
            .err()
            .map(|e| e.to_string());
        Ok(Next::Batch(Batch {
            position,
            header,
            bytes,
            crc_ok,
            problem,
        }))
    }
}

fn read_error(e: io::Error) -> String {
    format!("read failed: {e}")
}

/// An index file as read: its entries (absolute offsets), or why it is unusable.
#[derive(Debug, Default)]
pub struct IndexRead<T> {
    pub path: PathBuf,
    pub present: bool,
    pub entries: Vec<T>,
    /// What the engine's decoder refuses (entries not increasing, a partial entry).
    pub error: Option<String>,
}

fn read_index_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_INDEX_BYTES => Err(format!(
            "{} is {} bytes, larger than any index this broker writes",
            path.display(),
            meta.len()
        )),
        Ok(_) => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Entries of an index file, up to Kafka's zero padding (a zero entry after the first).
fn raw_entries(bytes: &[u8], len: usize) -> impl Iterator<Item = &[u8]> {
    bytes
        .chunks_exact(len)
        .enumerate()
        .take_while(|(i, c)| *i == 0 || c.iter().any(|&b| b != 0))
        .map(|(_, c)| c)
}

/// `(offset, position)` entries of a segment's `.index`.
pub fn offset_index(dir: &Path, base: i64) -> Result<IndexRead<(i64, u32)>, String> {
    let path = segment_path(dir, base, INDEX_SUFFIX);
    let Some(bytes) = read_index_file(&path)? else {
        return Ok(IndexRead {
            path,
            ..IndexRead::default()
        });
    };
    let error = OffsetIndex::decode(base, &bytes)
        .err()
        .map(|e| e.to_string());
    let entries = raw_entries(&bytes, OFFSET_ENTRY_LEN)
        .map(|c| {
            let rel = u32::from_be_bytes(c[..4].try_into().expect("4 bytes"));
            let pos = u32::from_be_bytes(c[4..].try_into().expect("4 bytes"));
            (base.saturating_add(i64::from(rel)), pos)
        })
        .collect();
    Ok(IndexRead {
        path,
        present: true,
        entries,
        error,
    })
}

/// `(timestamp, offset)` entries of a segment's `.timeindex`.
pub fn time_index(dir: &Path, base: i64) -> Result<IndexRead<(i64, i64)>, String> {
    let path = segment_path(dir, base, TIME_INDEX_SUFFIX);
    let Some(bytes) = read_index_file(&path)? else {
        return Ok(IndexRead {
            path,
            ..IndexRead::default()
        });
    };
    let error = TimeIndex::decode(base, &bytes).err().map(|e| e.to_string());
    let entries = raw_entries(&bytes, TIME_ENTRY_LEN)
        .map(|c| {
            let ts = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            let rel = u32::from_be_bytes(c[8..].try_into().expect("4 bytes"));
            (ts, base.saturating_add(i64::from(rel)))
        })
        .collect();
    Ok(IndexRead {
        path,
        present: true,
        entries,
        error,
    })
}

/// Checks a segment's index entries against its batches as the walk passes them, in one pass
/// (entries and batches both increase): an offset index entry `(offset, position)` must point
/// at the start of the batch holding `offset`; a time index entry `(timestamp, offset)` at the
/// batch holding `offset`, whose largest timestamp is `timestamp` (how the engine writes them).
#[derive(Debug)]
pub struct IndexCheck {
    offsets: Vec<(i64, u32)>,
    times: Vec<(i64, i64)>,
    next_offset: usize,
    next_time: usize,
    /// Per entry: `None` when it checks out.
    pub offset_status: Vec<Option<String>>,
    pub time_status: Vec<Option<String>>,
}

impl IndexCheck {
    pub fn new(offsets: Vec<(i64, u32)>, times: Vec<(i64, i64)>) -> IndexCheck {
        IndexCheck {
            offset_status: vec![None; offsets.len()],
            time_status: vec![None; times.len()],
            offsets,
            times,
            next_offset: 0,
            next_time: 0,
        }
    }

    pub fn offsets(&self) -> &[(i64, u32)] {
        &self.offsets
    }

    pub fn times(&self) -> &[(i64, i64)] {
        &self.times
    }

    /// A batch with intact framing at `position`.
    pub fn batch(&mut self, position: u64, header: &BatchHeader) {
        let (base, last) = (header.base_offset, header.last_offset());
        while let Some(&(offset, pos)) = self.offsets.get(self.next_offset) {
            if u64::from(pos) > position {
                break;
            }
            if u64::from(pos) < position {
                self.offset_status[self.next_offset] = Some(format!(
                    "position {pos} is not the start of a batch (offset {offset})"
                ));
            } else if offset < base || offset > last {
                self.offset_status[self.next_offset] = Some(format!(
                    "offset {offset} -> position {pos}, but the batch there holds offsets {base}..={last}"
                ));
            }
            self.next_offset += 1;
        }
        while let Some(&(ts, offset)) = self.times.get(self.next_time) {
            if offset > last {
                break;
            }
            if offset < base {
                self.time_status[self.next_time] =
                    Some(format!("offset {offset} is in no batch of this segment"));
            } else if ts != header.max_timestamp {
                self.time_status[self.next_time] = Some(format!(
                    "timestamp {ts} at offset {offset}, but that batch's largest timestamp is {}",
                    header.max_timestamp
                ));
            }
            self.next_time += 1;
        }
    }

    /// The walk ended at `end` (bytes of intact batches): entries not yet matched point past it.
    pub fn finish(&mut self, end: u64) {
        for i in self.next_offset..self.offsets.len() {
            let (offset, pos) = self.offsets[i];
            self.offset_status[i] = Some(format!(
                "offset {offset} -> position {pos}, past the last batch (log data ends at {end})"
            ));
        }
        for i in self.next_time..self.times.len() {
            let (ts, offset) = self.times[i];
            self.time_status[i] = Some(format!(
                "timestamp {ts} -> offset {offset}, past the last batch"
            ));
        }
        self.next_offset = self.offsets.len();
        self.next_time = self.times.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_engine::log::batch::set_base_offset;
    use runnel_engine::log::builder::{BatchBuilder, Record};

    fn batch(base: i64, records: usize, value_len: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        for i in 0..records {
            builder.push(&Record {
                key: None,
                value: Some(vec![b'a' + (i % 26) as u8; value_len]),
                headers: Vec::new(),
                timestamp: 1000 + i as i64,
            });
        }
        let mut bytes = builder.build();
        set_base_offset(&mut bytes, base);
        bytes
    }

    /// Batches straddling window boundaries, one batch larger than a window: every batch is
    /// read whole and valid, and the window never holds more than a window or that one batch.
    #[test]
    fn segments_larger_than_the_window_read_in_bounded_windows() {
        let path = std::env::temp_dir().join(format!(
            "runnelctl-walk-{}-{:020}.log",
            std::process::id(),
            0
        ));
        let mut file = Vec::new();
        let mut expected = Vec::new();
        let mut offset = 0i64;
        for i in 0..400 {
            // Mostly ~10 KiB batches (odd sizes), one of 3 MiB in the middle.
            let (records, len) = if i == 200 {
                (3, 1 << 20)
            } else {
                (5, 2000 + i)
            };
            let bytes = batch(offset, records, len);
            expected.push((file.len() as u64, offset, bytes.len()));
            offset += records as i64;
            file.extend_from_slice(&bytes);
        }
        std::fs::write(&path, &file).unwrap();
        let mut reader = SegmentReader::open(&path, 64 << 20).unwrap();
        let mut seen = Vec::new();
        let mut largest_window = 0;
        loop {
            match reader.next().unwrap() {
                Next::End => break,
                Next::Stop { position, reason } => panic!("stopped at {position}: {reason}"),
                Next::Batch(b) => {
                    assert!(b.crc_ok && b.problem.is_none(), "{:?}", b.problem);
                    seen.push((b.position, b.header.base_offset, b.bytes.len()));
                }
            }
            largest_window = largest_window.max(reader.window.len());
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(seen, expected);
        let biggest_batch = expected.iter().map(|e| e.2).max().unwrap();
        assert!(
            largest_window <= WINDOW.max(biggest_batch),
            "{largest_window}"
        );
        assert!(file.len() > 3 * WINDOW);
    }
}
