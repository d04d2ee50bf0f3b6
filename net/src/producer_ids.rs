//! Producer ids for InitProducerId: unique for the life of the data directory, across restarts
//! and crashes.
//!
//! Ids are handed out from a reservation recorded in `<data>/producer_ids`: the file holds the
//! first id not yet reserved, and an id is handed out only below it. The broker reserves
//! [`BLOCK`] ids at start-up (before serving) and another block, in the background, once half
//! of the current one is used, so a crash at any moment loses at most unused ids and never
//! repeats one. The cluster replaces the file with blocks the controller allocates (Kafka's
//! AllocateProducerIds): [`ProducerIds`] is the one place that changes.
//!
//! A reused id would be harmful, not just untidy: partitions still holding the old producer's
//! state would fence or refuse the new one's first batches.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::OnceLock;

use runnel_engine::rt;

/// Ids reserved per write of the file (Kafka's controller hands out blocks of 1000 too).
pub const BLOCK: i64 = 1000;
const FILE: &str = "producer_ids";

/// The broker's producer id allocator.
#[derive(Debug)]
pub struct ProducerIds {
    dir: PathBuf,
    next: AtomicI64,
    /// Ids below this are reserved on disk.
    reserved: AtomicI64,
    extending: AtomicBool,
}

/// Why no id can be handed out right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The reservation is being extended: retry shortly (COORDINATOR_LOAD_IN_PROGRESS).
    Extending,
    /// Extending the reservation failed (the data directory can't be written).
    Failed,
}

static GLOBAL: OnceLock<ProducerIds> = OnceLock::new();

/// Loads the reservation and reserves the first block; call once, before serving.
pub fn init(data_dir: &Path) -> io::Result<()> {
    let ids = ProducerIds::open(data_dir)?;
    GLOBAL
        .set(ids)
        .map_err(|_| io::Error::other("producer ids initialised twice"))
}

/// The broker's allocator, once [`init`] has run.
pub fn global() -> Option<&'static ProducerIds> {
    GLOBAL.get()
}

fn parse(contents: &str) -> Option<i64> {
    contents.trim().parse::<i64>().ok().filter(|&n| n >= 0)
}

impl ProducerIds {
    /// Reads `<dir>/producer_ids` (none: start at 0) and durably reserves a block past it.
    /// Blocks; for start-up.
    pub fn open(dir: &Path) -> io::Result<ProducerIds> {
        let path = dir.join(FILE);
        let start = match std::fs::read_to_string(&path) {
            Ok(contents) => parse(&contents).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged ({contents:?}); it must hold the next unused producer id, \
                         or be removed if no idempotent producer ever used this broker",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let reserved = start + BLOCK;
        rt::fs::replace_atomically_blocking(dir, FILE, format!("{reserved}\n").as_bytes())?;
        Ok(ProducerIds {
            dir: dir.to_path_buf(),
            next: AtomicI64::new(start),
            reserved: AtomicI64::new(reserved),
            extending: AtomicBool::new(false),
        })
    }

    /// A new producer id. Runs on a shard; may start extending the reservation there.
    pub fn next(&'static self) -> Result<i64, Unavailable> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let reserved = self.reserved.load(Ordering::Acquire);
        if id >= reserved - BLOCK / 2 {
            self.extend();
        }
        if id < reserved {
            Ok(id)
        } else if self.extending.load(Ordering::Acquire) {
            // Skipped ids are never handed out: gaps are harmless, repeats are not.
            Err(Unavailable::Extending)
        } else {
            Err(Unavailable::Failed)
        }
    }

    /// Reserves the next block in the background, unless that is already under way.
    fn extend(&'static self) {
        if self.extending.swap(true, Ordering::AcqRel) {
            return;
        }
        rt::spawn_local(async move {
            let from = self
                .reserved
                .load(Ordering::Acquire)
                .max(self.next.load(Ordering::Relaxed));
            let reserved = from + BLOCK;
            let written =
                rt::fs::replace_atomically(&self.dir, FILE, format!("{reserved}\n").into_bytes())
                    .await;
            match written {
                Ok(()) => self.reserved.store(reserved, Ordering::Release),
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "reserving producer ids failed")
                }
            }
            self.extending.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_repeated_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIds::open(dir.path()).unwrap();
        let handed: Vec<i64> = (0..10)
            .map(|_| first.next.fetch_add(1, Ordering::Relaxed))
            .collect();
        assert_eq!(handed, (0..10).collect::<Vec<_>>());
        // A restart (or crash) starts past everything reserved.
        drop(first);
        let second = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(second.next.load(Ordering::Relaxed), BLOCK);
        assert_eq!(second.reserved.load(Ordering::Relaxed), 2 * BLOCK);
    }

    #[test]
    fn a_damaged_file_stops_start_up_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "12x").unwrap();
        let err = ProducerIds::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("producer_ids"), "{err}");
        std::fs::write(dir.path().join(FILE), "-5").unwrap();
        assert!(ProducerIds::open(dir.path()).is_err());
    }
}
