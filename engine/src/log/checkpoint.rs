//! The per-partition checkpoint, and the name of the data directory's clean-shutdown marker.
//!
//! The checkpoint records the recovery point (every offset below it was synced with its
//! indexes, so recovery never rescans those segments) and the log start offset (moved by
//! retention and DeleteRecords, which must survive a restart). It is replaced atomically
//! ([`rt::fs::replace_atomically`]), so a crash leaves the old one or the new one.
//!
//! The broker owns the marker (it knows when every log is closed); a log only learns of it
//! through [`OpenOptions::clean_shutdown`](super::OpenOptions::clean_shutdown).

use std::io;
use std::path::Path;

use super::exclusive::Exclusive;
use crate::rt;

/// The checkpoint's file name in a partition directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_MAGIC: &str = "runnel-partition-checkpoint 1";
/// Written into the data directory after every log closed cleanly; removed at start-up.
pub const CLEAN_SHUTDOWN_FILE: &str = ".runnel-clean-shutdown";

/// What a partition's checkpoint file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    /// The log was closed cleanly and not opened since. Recovery is skipped only when this
    /// and the data directory's clean-shutdown marker agree: a log that was not opened in
    /// the run that ended cleanly keeps whatever state it crashed in.
    pub closed_cleanly: bool,
}

impl Checkpoint {
    fn encode(&self) -> String {
        format!(
            "{CHECKPOINT_MAGIC}\nrecovery_point {}\nlog_start_offset {}\nclosed_cleanly {}\n",
            self.recovery_point,
            self.log_start_offset,
            u8::from(self.closed_cleanly)
        )
    }

    /// Parses a checkpoint file's text; `None` when it is not one (offline tools read it too).
    pub fn decode(text: &str) -> Option<Checkpoint> {
        let mut lines = text.lines();
        if lines.next()? != CHECKPOINT_MAGIC {
            return None;
        }
        let mut field = |name: &str| -> Option<i64> {
            let (key, value) = lines.next()?.split_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        };
        let recovery_point = field("recovery_point")?;
        let log_start_offset = field("log_start_offset")?;
        let closed_cleanly = match field("closed_cleanly")? {
            0 => false,
            1 => true,
            _ => return None,
        };
        (recovery_point >= 0 && log_start_offset >= 0).then_some(Checkpoint {
            recovery_point,
            log_start_offset,
            closed_cleanly,
        })
    }

    /// Reads `dir`'s checkpoint. `Ok(None)` when there is none or it is unreadable (then
    /// recovery scans everything, which is always safe).
    pub async fn read(dir: &Path) -> io::Result<Option<Checkpoint>> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = rt::unblock(move || std::fs::read_to_string(path)).await;
        match text {
            Ok(text) => {
                let checkpoint = Checkpoint::decode(&text);
                if checkpoint.is_none() {
                    tracing::warn!(dir = %dir.display(), "unreadable checkpoint; recovering the whole log");
                }
                Ok(checkpoint)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `dir`'s checkpoint atomically and durably.
    pub async fn write(&self, dir: &Path) -> io::Result<()> {
        rt::fs::replace_atomically(dir, CHECKPOINT_FILE, self.encode().into_bytes()).await
    }
}

/// Lets one checkpoint write run at a time, each recording the log's state when its turn
/// comes: two writes racing through the temporary file would be torn, and an older state
/// must never land after a newer one.
#[derive(Debug, Default)]
pub(crate) struct CheckpointWriter {
    turn: Exclusive,
}

impl CheckpointWriter {
    /// Waits for the turn, then writes what `current` says the checkpoint is now.
    pub(crate) async fn write(
        &self,
        dir: &Path,
        current: impl FnOnce() -> Checkpoint,
    ) -> io::Result<()> {
        let _turn = self.turn.acquire().await;
        current().write(dir).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        for closed_cleanly in [false, true] {
            let checkpoint = Checkpoint {
                recovery_point: 1234,
                log_start_offset: 17,
                closed_cleanly,
            };
            assert_eq!(Checkpoint::decode(&checkpoint.encode()), Some(checkpoint));
        }
        assert_eq!(Checkpoint::decode(""), None);
        assert_eq!(
            Checkpoint::decode("runnel-partition-checkpoint 1\nrecovery_point x\n"),
            None
        );
        assert_eq!(
            Checkpoint::decode(
                "runnel-partition-checkpoint 1\nlog_start_offset 1\nrecovery_point 2\n"
            ),
            None
        );
        assert_eq!(
            Checkpoint::decode(
                "runnel-partition-checkpoint 1\nrecovery_point -5\nlog_start_offset 0\nclosed_cleanly 0\n"
            ),
            None
        );
    }
}
