//! Producer ids for InitProducerId: unique for the life of the data directory, across restarts
//! and crashes.
//!
//! Ids are handed out from a reservation recorded in `<data>/producer_ids`: the file holds the
//! first id not yet reserved, and an id is handed out only below it. The broker reserves
//! [`BLOCK`] ids at start-up (before serving) and another block, in the background, once half
//! of the current one is used, so a crash at any moment loses at most unused ids and never
//! repeats one.
//!
//! In a cluster two brokers' files would hand out the same ids, so a broker of a cluster takes
//! blocks from the active controller instead (Kafka's AllocateProducerIds; the controller
//! commits each block to the metadata log before handing it out), asking for the next while
//! half of the current one is left ([`ControllerBlocks`]). Without a block, InitProducerId is
//! answered COORDINATOR_LOAD_IN_PROGRESS and the client retries, as Kafka's
//! RPCProducerIdManager does ("Producer ID block is not available yet").
//!
//! A reused id would be harmful, not just untidy: partitions still holding the old producer's
//! state would fence or refuse the new one's first batches.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

use runnel_engine::rt;

use crate::partitions::authority::LocalFuture;

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

/// Where the broker's producer ids come from.
#[derive(Debug)]
pub enum Allocator {
    /// A broker running alone: its data directory's reservation.
    File(ProducerIds),
    /// A broker of a cluster: the controller's blocks.
    Controller(ControllerBlocks),
}

static GLOBAL: OnceLock<Allocator> = OnceLock::new();

/// Loads the reservation and reserves the first block; call once, before serving.
pub fn init(data_dir: &Path) -> io::Result<()> {
    let ids = ProducerIds::open(data_dir)?;
    set(Allocator::File(ids))
}

/// Takes ids from the controller's blocks (a broker of a cluster); call once, before serving.
/// Until [`set_block_source`] runs, InitProducerId is asked to retry.
pub fn init_cluster() -> io::Result<()> {
    set(Allocator::Controller(ControllerBlocks::default()))
}

fn set(allocator: Allocator) -> io::Result<()> {
    GLOBAL
        .set(allocator)
        .map_err(|_| io::Error::other("producer ids initialised twice"))
}

/// The broker's allocator, once [`init`] or [`init_cluster`] has run.
pub fn global() -> Option<&'static Allocator> {
    GLOBAL.get()
}

/// Where a broker of a cluster gets blocks from: the active controller, asked from the shard
/// that calls it; `(first id, count)`.
pub type BlockSource = fn() -> LocalFuture<Result<(i64, i64), String>>;

/// Installs the source of blocks (when the node joins its cluster).
pub fn set_block_source(source: BlockSource) {
    if let Some(Allocator::Controller(blocks)) = GLOBAL.get() {
        let _ = blocks.source.set(source);
    }
}

impl Allocator {
    /// A new producer id. Runs on a shard; may start getting more ids there.
    pub fn next(&'static self) -> Result<i64, Unavailable> {
        match self {
            Allocator::File(ids) => ids.next(),
            Allocator::Controller(blocks) => blocks.next(),
        }
    }
}

/// Blocks of ids the controller allocated: the one ids are taken from, and the next one once
/// it has come.
#[derive(Debug, Default)]
pub struct ControllerBlocks {
    blocks: Mutex<Blocks>,
    fetching: AtomicBool,
    source: OnceLock<BlockSource>,
}

#[derive(Debug, Default)]
struct Blocks {
    current: Range<i64>,
    next: Option<Range<i64>>,
}

impl ControllerBlocks {
    fn next(&'static self) -> Result<i64, Unavailable> {
        let (id, running_low) = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            if blocks.current.is_empty() {
                if let Some(next) = blocks.next.take() {
                    blocks.current = next;
                }
            }
            let id = blocks.current.next();
            let left = blocks.current.end - blocks.current.start;
            (id, blocks.next.is_none() && left < BLOCK / 2)
        };
        if running_low {
            self.fetch();
        }
        id.ok_or(Unavailable::Extending)
    }

    /// Asks the controller for the next block in the background, unless that is under way.
    fn fetch(&'static self) {
        if self.fetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(source) = self.source.get().copied() else {
            // Not joined the cluster yet: the next call asks again.
            self.fetching.store(false, Ordering::Release);
            return;
        };
        rt::spawn_local(async move {
            match source().await {
                Ok((first, count)) => self.receive(first..first.saturating_add(count)),
                Err(e) => tracing::warn!("no producer id block from the controller: {e}"),
            }
            self.fetching.store(false, Ordering::Release);
        });
    }

    fn receive(&self, block: Range<i64>) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if blocks.current.is_empty() {
            blocks.current = block;
        } else {
            blocks.next = Some(block);
        }
    }
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
    fn controller_blocks_are_used_in_order_and_never_repeated() {
        let blocks: &'static ControllerBlocks = Box::leak(Box::default());
        // No block yet: retry (and no source to ask, so nothing is spawned).
        assert_eq!(blocks.next(), Err(Unavailable::Extending));
        blocks.receive(5000..5003);
        blocks.receive(9000..9002);
        let handed: Vec<_> = (0..6).map(|_| blocks.next()).collect();
        assert_eq!(
            handed,
            vec![
                Ok(5000),
                Ok(5001),
                Ok(5002),
                Ok(9000),
                Ok(9001),
                Err(Unavailable::Extending)
            ]
        );
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
