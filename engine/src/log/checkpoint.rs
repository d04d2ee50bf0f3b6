//! The per-partition checkpoint, and the name of the data directory's clean-shutdown marker
//! (the broker writes and removes the marker; see `runnel-net`'s data directory).
//!
//! The checkpoint records the recovery point (every offset below it was synced with its
//! indexes, so recovery never rescans those segments) and the log start offset (moved by
//! retention and DeleteRecords, which must survive a restart). It is replaced atomically:
//! written to a temporary file, synced, renamed over the old one, directory synced.

use std::io;
use std::path::Path;

use crate::rt::File;

const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
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

    fn decode(text: &str) -> Option<Checkpoint> {
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
    pub fn read(dir: &Path) -> io::Result<Option<Checkpoint>> {
        match std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) {
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

    /// Replaces `dir`'s checkpoint atomically and durably; `dir_file` is `dir` opened with
    /// [`File::open_dir`].
    pub async fn write(&self, dir: &Path, dir_file: &File) -> io::Result<()> {
        let tmp = dir.join(CHECKPOINT_TMP);
        let file = File::create(&tmp)?;
        let (result, _) = file.write_all_at(self.encode().into_bytes(), 0).await;
        result?;
        file.fdatasync().await?;
        file.close().await?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
        dir_file.fsync().await
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
