//! `runnelctl log dump|verify`: offline tools for a stopped broker's data directory, with the
//! engine's own format code (batch parsing and validation, CRC-32C, index decoding, segment
//! names). Segments are read through a window of about 1 MiB (one batch at most beyond it), so
//! memory stays bounded whatever the segment size; index files (8 or 12 bytes per ~4 KiB of
//! log) are read whole.
//!
//! Run them on a stopped broker: a running one appends while the tool reads (a batch half
//! written shows as a torn tail) and recovery may rewrite what the tool reports.

mod records;
mod walk;

use std::path::{Path, PathBuf};

use runnel_engine::log::batch::{BatchHeader, TimestampType};
use runnel_engine::log::compaction::CleanerCheckpoint;
use runnel_engine::log::{Checkpoint, CHECKPOINT_FILE};
use serde_json::{json, Value};

use crate::output::{Format, Report};
use crate::Global;
use walk::{IndexCheck, Next, Partition, SegmentReader};

/// Largest batch believed by default: a length field beyond it is damage, not a batch.
const DEFAULT_MAX_BATCH: usize = 64 << 20;
/// Problems kept per partition for the report (the count goes on).
const MAX_PROBLEMS_KEPT: usize = 100;

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Print every batch of a stopped broker's segments: position, offsets, record count,
    /// timestamps, producer id/epoch/sequence, codec, size and whether its CRC holds.
    /// `--output json` prints one JSON object per line (batch, record, index entry, stop).
    Dump {
        /// A data directory, a partition directory (`<topic>-<partition>`) or one `.log` file.
        path: PathBuf,
        /// Also print the `.index` and `.timeindex` entries, each checked against the batch
        /// it points at.
        #[arg(long)]
        indexes: bool,
        /// Also print every record (offset, timestamp, key, value, headers; compressed batches
        /// decompressed).
        #[arg(long)]
        records: bool,
        /// Characters of each key and value printed with --records.
        #[arg(long, value_name = "N", default_value_t = 80)]
        max_chars: usize,
        /// Largest batch to believe; a length field beyond it counts as damage.
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BATCH)]
        max_batch_bytes: usize,
    },
    /// Check every segment of a stopped broker: batch framing and CRC, offsets increasing and
    /// contiguous (within a segment and into the next one), index entries pointing at batch
    /// boundaries. Prints a summary per partition and each problem with its file and
    /// position; exits with 1 when anything is corrupt.
    Verify {
        /// A data directory, a partition directory (`<topic>-<partition>`) or one `.log` file.
        path: PathBuf,
        /// Largest batch to believe; a length field beyond it counts as damage.
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BATCH)]
        max_batch_bytes: usize,
    },
}

pub fn run(command: LogCommand, global: &Global) -> Result<(), String> {
    match command {
        LogCommand::Dump {
            path,
            indexes,
            records,
            max_chars,
            max_batch_bytes,
        } => {
            // Dump output is long and often piped into `head` or `less`: end quietly when the
            // reader goes away, as other Unix tools do, instead of failing on EPIPE.
            // SAFETY: restoring a signal's default disposition has no memory-safety
            // preconditions; no handler of ours is installed for SIGPIPE.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let options = DumpOptions {
                indexes,
                records,
                max_chars,
                max_batch: max_batch_bytes.max(1),
                json: global.output == Format::Json,
            };
            dump(&path, &options)
        }
        LogCommand::Verify {
            path,
            max_batch_bytes,
        } => verify(&path, max_batch_bytes.max(1), global.output),
    }
}

fn codec_name(header: &BatchHeader) -> &'static str {
    use runnel_engine::log::batch::Compression::*;
    match header.compression() {
        Some(None) => "none",
        Some(Gzip) => "gzip",
        Some(Snappy) => "snappy",
        Some(Lz4) => "lz4",
        Some(Zstd) => "zstd",
        Option::None => "unknown",
    }
}

fn timestamp_type(header: &BatchHeader) -> &'static str {
    match header.timestamp_type() {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

#[derive(Debug)]
struct DumpOptions {
    indexes: bool,
    records: bool,
    max_chars: usize,
    max_batch: usize,
    json: bool,
}

fn dump(target: &Path, options: &DumpOptions) -> Result<(), String> {
    let partitions = walk::resolve(target)?;
    for partition in &partitions {
        for &base in &partition.segments {
            dump_segment(partition, base, options)?;
        }
    }
    Ok(())
}

fn dump_segment(partition: &Partition, base: i64, options: &DumpOptions) -> Result<(), String> {
    let path = partition.log_path(base);
    let file = path.display().to_string();
    let mut reader = SegmentReader::open(&path, options.max_batch)?;
    let mut check = if options.indexes {
        let offsets = walk::offset_index(&partition.dir, base)?;
        let times = walk::time_index(&partition.dir, base)?;
        for (path, present, error) in [
            (&offsets.path, offsets.present, &offsets.error),
            (&times.path, times.present, &times.error),
        ] {
            if options.json {
                println!(
                    "{}",
                    json!({"type": "index_file", "file": path.display().to_string(),
                           "present": present, "error": error})
                );
            } else {
                match (present, error) {
                    (false, _) => println!("# {}: missing", path.display()),
                    (true, Some(e)) => println!("# {}: INVALID: {e}", path.display()),
                    (true, None) => {}
                }
            }
        }
        Some((
            IndexCheck::new(offsets.entries, times.entries),
            offsets.path.display().to_string(),
            times.path.display().to_string(),
        ))
    } else {
        None
    };
    if options.json {
        println!(
            "{}",
            json!({"type": "segment", "file": file, "base_offset": base, "size": reader.len()})
        );
    } else {
        println!(
            "segment {file} (base offset {base}, {} bytes)",
            reader.len()
        );
    }
    let mut end = 0u64;
    loop {
        match reader.next()? {
            Next::End => break,
            Next::Stop { position, reason } => {
                if options.json {
                    println!(
                        "{}",
                        json!({"type": "stop", "file": file, "position": position, "reason": reason})
                    );
                } else {
                    println!("position: {position} STOP: {reason}");
                }
                break;
            }
            Next::Batch(batch) => {
                let h = &batch.header;
                end = batch.position + batch.bytes.len() as u64;
                if let Some((check, _, _)) = check.as_mut() {
                    check.batch(batch.position, h);
                }
                if options.json {
                    println!(
                        "{}",
                        json!({
                            "type": "batch", "file": file, "position": batch.position,
                            "base_offset": h.base_offset, "last_offset": h.last_offset(),
                            "count": h.records_count, "base_timestamp": h.base_timestamp,
                            "max_timestamp": h.max_timestamp, "timestamp_type": timestamp_type(h),
                            "producer_id": h.producer_id, "producer_epoch": h.producer_epoch,
                            "base_sequence": h.base_sequence, "leader_epoch": h.partition_leader_epoch,
                            "codec": codec_name(h), "transactional": h.is_transactional(),
                            "control": h.is_control(), "size": batch.bytes.len(),
                            "crc": format!("{:08x}", h.crc), "crc_ok": batch.crc_ok,
                            "problem": batch.problem,
                        })
                    );
                } else {
                    let mut flags = String::new();
                    if h.is_transactional() {
                        flags.push_str(" transactional");
                    }
                    if h.is_control() {
                        flags.push_str(" control");
                    }
                    let crc = if batch.crc_ok { "ok" } else { "BAD" };
                    println!(
                        "position: {} offsets: {}..{} count: {} size: {} base_ts: {} max_ts: {} ({}) producer: {} epoch: {} seq: {} leader_epoch: {} codec: {}{flags} crc: {:08x} {crc}{}",
                        batch.position, h.base_offset, h.last_offset(), h.records_count,
                        batch.bytes.len(), h.base_timestamp, h.max_timestamp, timestamp_type(h),
                        h.producer_id, h.producer_epoch, h.base_sequence,
                        h.partition_leader_epoch, codec_name(h), h.crc,
                        batch.problem.as_ref().map(|p| format!(" INVALID: {p}")).unwrap_or_default(),
                    );
                }
                if options.records {
                    dump_records(&file, batch.bytes, options);
                }
            }
        }
    }
    if let Some((mut check, index_file, time_file)) = check {
        check.finish(end);
        print_index_entries((&index_file, &time_file), &check, options.json);
    }
    Ok(())
}

fn dump_records(file: &str, bytes: &[u8], options: &DumpOptions) {
    match records::decode(bytes, options.max_batch.saturating_mul(4)) {
        Ok(decoded) => {
            for r in decoded {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(k),
                            records::show(v.as_deref(), options.max_chars)
                        )
                    })
                    .collect();
                if options.json {
                    let text = |b: &Option<Vec<u8>>| {
                        b.as_ref()
                            .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                            .unwrap_or(Value::Null)
                    };
                    println!(
                        "{}",
                        json!({
                            "type": "record", "file": file, "offset": r.offset,
                            "timestamp": r.timestamp, "key": text(&r.key), "value": text(&r.value),
                            "headers": headers,
                        })
                    );
                } else {
                    println!(
                        "  | offset: {} ts: {} key: {} value: {} headers: [{}]",
                        r.offset,
                        r.timestamp,
                        records::show(r.key.as_deref(), options.max_chars),
                        records::show(r.value.as_deref(), options.max_chars),
                        headers.join(", ")
                    );
                }
            }
        }
        Err(e) => {
            if options.json {
                println!(
                    "{}",
                    json!({"type": "records_error", "file": file, "reason": e})
                );
            } else {
                println!("  | records cannot be decoded: {e}");
            }
        }
    }
}

fn print_index_entries(files: (&str, &str), check: &IndexCheck, json_lines: bool) {
    let status = |s: &Option<String>| s.clone().unwrap_or_else(|| "ok".into());
    for (i, ((offset, position), s)) in check.offsets().iter().zip(&check.offset_status).enumerate()
    {
        if json_lines {
            println!(
                "{}",
                json!({"type": "index_entry", "index": "offset", "file": files.0, "entry": i,
                       "offset": offset, "position": position, "ok": s.is_none(), "status": status(s)})
            );
        } else {
            println!(
                "index entry {i}: offset: {offset} position: {position} {}",
                s.as_ref()
                    .map(|p| format!("BAD: {p}"))
                    .unwrap_or_else(|| "ok".into())
            );
        }
    }
    for (i, ((timestamp, offset), s)) in check.times().iter().zip(&check.time_status).enumerate() {
        if json_lines {
            println!(
                "{}",
                json!({"type": "index_entry", "index": "time", "file": files.1, "entry": i,
                       "timestamp": timestamp, "offset": offset, "ok": s.is_none(), "status": status(s)})
            );
        } else {
            println!(
                "timeindex entry {i}: timestamp: {timestamp} offset: {offset} {}",
                s.as_ref()
                    .map(|p| format!("BAD: {p}"))
                    .unwrap_or_else(|| "ok".into())
            );
        }
    }
}

/// One corruption found by `verify`.
#[derive(Debug, Clone)]
struct Problem {
    file: PathBuf,
    /// Byte position in `.log` files, entry number in index files.
    at: String,
    reason: String,
}

impl Problem {
    /// `FILE at WHERE: REASON` (`FILE: REASON` for a whole file).
    fn describe(&self) -> String {
        if self.at.is_empty() {
            format!("{}: {}", self.file.display(), self.reason)
        } else {
            format!("{} at {}: {}", self.file.display(), self.at, self.reason)
        }
    }
}

#[derive(Debug, Default)]
struct PartitionSummary {
    segments: usize,
    batches: u64,
    bytes: u64,
    first_offset: Option<i64>,
    next_offset: Option<i64>,
    checkpoint: String,
    problems: Vec<Problem>,
    problem_count: usize,
}

impl PartitionSummary {
    fn problem(&mut self, file: &Path, at: String, reason: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS_KEPT {
            self.problems.push(Problem {
                file: file.to_path_buf(),
                at,
                reason,
            });
        }
    }
}

fn verify(target: &Path, max_batch: usize, format: Format) -> Result<(), String> {
    let partitions = walk::resolve(target)?;
    let mut summaries = Vec::new();
    for partition in &partitions {
        summaries.push(verify_partition(partition, max_batch)?);
    }
    let mut report = Report::new(&[
        "partition",
        "segments",
        "batches",
        "offsets",
        "bytes",
        "checkpoint",
        "problems",
    ]);
    let mut json_partitions = Vec::new();
    let mut total_problems = 0;
    let mut first: Option<Problem> = None;
    for (partition, s) in partitions.iter().zip(&summaries) {
        let offsets = match (s.first_offset, s.next_offset) {
            (Some(a), Some(b)) if b > a => format!("{a}..{}", b - 1),
            _ => "-".into(),
        };
        report.row(vec![
            partition.name.clone(),
            s.segments.to_string(),
            s.batches.to_string(),
            offsets.clone(),
            s.bytes.to_string(),
            s.checkpoint.clone(),
            s.problem_count.to_string(),
        ]);
        total_problems += s.problem_count;
        if first.is_none() {
            first = s.problems.first().cloned();
        }
        json_partitions.push(json!({
            "partition": partition.name, "dir": partition.dir.display().to_string(),
            "segments": s.segments, "batches": s.batches, "bytes": s.bytes,
            "first_offset": s.first_offset, "next_offset": s.next_offset,
            "checkpoint": s.checkpoint, "problem_count": s.problem_count,
            "problems": s.problems.iter().map(|p| json!({
                "file": p.file.display().to_string(), "at": p.at, "reason": p.reason,
            })).collect::<Vec<_>>(),
        }));
    }
    report.json = Some(json!({"ok": total_problems == 0, "partitions": json_partitions}));
    report.print(format);
    if format == Format::Table {
        for s in &summaries {
            for p in &s.problems {
                println!("CORRUPT {}", p.describe());
            }
            if s.problem_count > s.problems.len() {
                println!("... and {} more", s.problem_count - s.problems.len());
            }
        }
    }
    match first {
        None => Ok(()),
        Some(p) => Err(format!(
            "{total_problems} problem(s) found; first: {}",
            p.describe()
        )),
    }
}

fn verify_partition(partition: &Partition, max_batch: usize) -> Result<PartitionSummary, String> {
    let mut s = PartitionSummary {
        checkpoint: read_checkpoint(&partition.dir),
        ..PartitionSummary::default()
    };
    // Where the previous segment's offsets ended, to check the next one continues there.
    let mut previous_end: Option<i64> = None;
    // Segments below the cleaner's compacted bound may be compacted: batches removed
    // leave gaps there (an unreadable cleaner checkpoint allows them everywhere).
    let gaps_below =
        CleanerCheckpoint::read_blocking(&partition.dir).map_or(i64::MAX, |c| c.compacted_below);
    for &base in &partition.segments {
        let gaps_allowed = base < gaps_below;
        s.segments += 1;
        let path = partition.log_path(base);
        if let Some(end) = previous_end {
            if end != base {
                s.problem(
                    &path,
                    "position 0".into(),
                    format!("segment starts at offset {base}, but the previous segment ends before offset {end}"),
                );
            }
        }
        let offsets = walk::offset_index(&partition.dir, base)?;
        let times = walk::time_index(&partition.dir, base)?;
        for (path, error) in [(&offsets.path, &offsets.error), (&times.path, &times.error)] {
            if let Some(e) = error {
                s.problem(path, String::new(), e.clone());
            }
        }
        let mut check = IndexCheck::new(offsets.entries, times.entries);
        let mut reader = SegmentReader::open(&path, max_batch)?;
        s.bytes += reader.len();
        let mut expected = base;
        let mut end = 0u64;
        let mut segment_has_batches = false;
        // Index entries beyond broken framing can't be checked (and aren't the damage).
        let mut stopped = false;
        loop {
            match reader.next()? {
                Next::End => break,
                Next::Stop { position, reason } => {
                    s.problem(&path, format!("position {position}"), reason);
                    stopped = true;
                    break;
                }
                Next::Batch(batch) => {
                    let h = batch.header;
                    let at = format!("position {}", batch.position);
                    end = batch.position + batch.bytes.len() as u64;
                    s.batches += 1;
                    if let Some(problem) = batch.problem {
                        let reason = if batch.crc_ok {
                            problem
                        } else {
                            format!(
                                "CRC mismatch: stored {:08x}, computed {:08x} (offsets {}..{})",
                                h.crc,
                                runnel_engine::log::batch::compute_crc(batch.bytes),
                                h.base_offset,
                                h.last_offset()
                            )
                        };
                        s.problem(&path, at.clone(), reason);
                    }
                    if h.last_offset() < h.base_offset || h.last_offset() == i64::MAX {
                        s.problem(
                            &path,
                            at,
                            format!(
                                "last offset delta {} is negative or overflows",
                                h.last_offset_delta
                            ),
                        );
                    } else if h.base_offset != expected
                        && !(gaps_allowed && h.base_offset > expected)
                    {
                        let what = if segment_has_batches {
                            "the previous batch ended before offset"
                        } else {
                            "the segment's base offset (its file name) is"
                        };
                        s.problem(
                            &path,
                            at,
                            format!(
                                "batch starts at offset {}, but {what} {expected}",
                                h.base_offset
                            ),
                        );
                    }
                    if s.first_offset.is_none() {
                        s.first_offset = Some(h.base_offset);
                    }
                    segment_has_batches = true;
                    expected = h.last_offset().saturating_add(1);
                    check.batch(batch.position, &h);
                }
            }
        }
        if !stopped {
            check.finish(end);
        }
        let (index_path, time_path) = (offsets.path, times.path);
        for (i, status) in check.offset_status.iter().enumerate() {
            if let Some(reason) = status {
                s.problem(&index_path, format!("entry {i}"), reason.clone());
            }
        }
        for (i, status) in check.time_status.iter().enumerate() {
            if let Some(reason) = status {
                s.problem(&time_path, format!("entry {i}"), reason.clone());
            }
        }
        previous_end = segment_has_batches.then_some(expected);
        s.next_offset = Some(expected);
    }
    Ok(s)
}

/// The checkpoint as a short note: it is advisory (recovery rescans without it), not checked.
fn read_checkpoint(dir: &Path) -> String {
    match std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) {
        Err(_) => "none".into(),
        Ok(text) => match Checkpoint::decode(&text) {
            None => "unreadable".into(),
            Some(c) => format!(
                "start={} recovery={}{}",
                c.log_start_offset,
                c.recovery_point,
                if c.closed_cleanly { " clean" } else { "" }
            ),
        },
    }
}
