//! The cleaner's checkpoint in a partition directory:
//! - the first dirty offset: where the next pass starts mapping (Kafka's
//!   `cleaner-offset-checkpoint`). Moved only after every segment of a pass was swapped in: a
//!   pass cut short (a crash, a shutdown, a group retention changed under it) maps its
//!   section again, or a superseded value could outlive the key's tombstone;
//! - the compacted bound: every segment that starts below it may have been compacted, so
//!   recovery and `runnelctl log verify` accept gaps between its batches. Raised before a
//!   pass replaces any segment, and never lowered (a checkpoint reset for the first dirty
//!   offset leaves compacted segments above it);
//! - the earliest delete horizon among the tombstones passes kept, so a restart knows when a
//!   pass is due for them.

use std::io;
use std::path::Path;

use crate::rt;

pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
const MAGIC: &str = "runnel-cleaner-checkpoint 1";

/// What the cleaner checkpoint says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    pub first_dirty: i64,
    /// Segments starting below this may have gaps between batches.
    pub compacted_below: i64,
    pub earliest_tombstone_horizon: Option<i64>,
}

impl CleanerCheckpoint {
    fn encode(&self) -> String {
        format!(
            "{MAGIC}\nfirst_dirty {}\ncompacted_below {}\ntombstone_horizon {}\n",
            self.first_dirty,
            self.compacted_below,
            self.earliest_tombstone_horizon.unwrap_or(-1)
        )
    }

    /// Parses the file's text; `None` when it is not a cleaner checkpoint.
    pub fn decode(text: &str) -> Option<CleanerCheckpoint> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field = |name: &str| -> Option<i64> {
            let (key, value) = lines.next()?.split_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        };
        let first_dirty = field("first_dirty").filter(|&o| o >= 0)?;
        let compacted_below = field("compacted_below").filter(|&o| o >= 0)?;
        let horizon = field("tombstone_horizon")?;
        Some(CleanerCheckpoint {
            first_dirty,
            compacted_below,
            earliest_tombstone_horizon: (horizon >= 0).then_some(horizon),
        })
    }

    /// Reads `dir`'s cleaner checkpoint, blocking: the default (nothing cleaned) when there
    /// is none, an `InvalidData` error when it is unreadable (the caller decides: recovery
    /// then accepts gaps everywhere).
    pub fn read_blocking(dir: &Path) -> io::Result<CleanerCheckpoint> {
        match std::fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)) {
            Ok(text) => Self::decode(&text).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "unreadable cleaner checkpoint")
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CleanerCheckpoint::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces `dir`'s cleaner checkpoint atomically and durably.
    pub async fn write(&self, dir: &Path) -> io::Result<()> {
        rt::fs::replace_atomically(dir, CLEANER_CHECKPOINT_FILE, self.encode().into_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        for horizon in [None, Some(0), Some(1_700_000_000_000)] {
            let c = CleanerCheckpoint {
                first_dirty: 1234,
                compacted_below: 2000,
                earliest_tombstone_horizon: horizon,
            };
            assert_eq!(CleanerCheckpoint::decode(&c.encode()), Some(c));
        }
        assert_eq!(CleanerCheckpoint::decode(""), None);
        assert_eq!(
            CleanerCheckpoint::decode(
                "runnel-cleaner-checkpoint 1\nfirst_dirty -1\ntombstone_horizon -1\n"
            ),
            None
        );
        assert_eq!(
            CleanerCheckpoint::decode(
                "runnel-cleaner-checkpoint 1\ntombstone_horizon 5\nfirst_dirty 1\n"
            ),
            None
        );
    }
}
