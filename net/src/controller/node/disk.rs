//! The quorum's files in `<data_dir>/cluster-metadata/`: the snapshot and the write-ahead
//! log, in the format of [`super::super::quorum::wal`], which also explains the rotation this
//! carries out. Not Kafka's `__cluster_metadata-0`: a directory shaped like a partition's
//! could be taken for one (by topic deletion, or the start-up sweep of orphan partitions).

use std::io;
use std::path::{Path, PathBuf};

use runnel_engine::rt::{self, fs};

use crate::controller::quorum::wal::{self, Recovered, SNAPSHOT_FILE};
use crate::controller::quorum::Persist;

/// The metadata log's directory under the data directory.
pub const METADATA_DIR: &str = "cluster-metadata";

/// What start-up found on disk.
#[derive(Debug)]
pub struct Found {
    pub recovered: Recovered,
    /// The state machine's bytes in the snapshot, and the index they stand at.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// The WAL file appends go to, and its sound length.
    wal_path: PathBuf,
    wal_len: u64,
}

/// Reads the snapshot and the newest WAL, cutting a torn or damaged tail off the WAL (on the
/// main thread, before the shards start: the files are small and nothing is served yet).
pub fn recover(data_dir: &Path) -> io::Result<Found> {
    let dir = data_dir.join(METADATA_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut wals: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            // A rotation or snapshot cut short by a crash: never renamed, so never used.
            std::fs::remove_file(entry.path())?;
        } else if let Some(first) = wal_first_index(&name) {
            wals.push((first, entry.path()));
        }
    }
    wals.sort();
    let newest_wal = wals.pop();
    for (_, older) in wals {
        // A rotation finished (the newer WAL exists only once complete) but the crash came
        // before it removed the one it replaced.
        std::fs::remove_file(older)?;
    }
    let snapshot_bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let wal_path = newest_wal.map_or_else(|| dir.join(wal::wal_file_name(1)), |(_, path)| path);
    let wal_bytes = match std::fs::read(&wal_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let recovered = wal::recover(snapshot_bytes.as_deref(), &wal_bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", dir.display()),
        )
    })?;
    if recovered.valid_len < wal_bytes.len() {
        tracing::warn!(
            wal = %wal_path.display(),
            cut = wal_bytes.len() - recovered.valid_len,
            "metadata log: cut a torn or damaged tail"
        );
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&wal_path)?;
    file.set_len(recovered.valid_len as u64)?;
    file.sync_all()?;
    std::fs::File::open(&dir)?.sync_all()?;
    let snapshot = {
        let snap = recovered.storage.latest_snapshot();
        let index = snap.metadata.as_ref().map_or(0, |m| m.index);
        (index > 0).then(|| (index, snap.data.to_vec()))
    };
    Ok(Found {
        wal_len: recovered.valid_len as u64,
        recovered,
        snapshot,
        wal_path,
    })
}

/// The first index in a WAL file's name (`wal-` and exactly 20 digits), or `None` for any
/// other file.
fn wal_first_index(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The open WAL, appended to by the controller's loop.
#[derive(Debug)]
pub struct QuorumFiles {
    dir: PathBuf,
    wal: rt::File,
    wal_path: PathBuf,
    wal_len: u64,
}

impl QuorumFiles {
    /// Opens the WAL that [`recover`] found (on its shard).
    pub async fn open(found: &Found) -> io::Result<QuorumFiles> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        let wal = fs::open_file(&found.wal_path, options).await?;
        Ok(QuorumFiles {
            dir: found
                .wal_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            wal,
            wal_path: found.wal_path.clone(),
            wal_len: found.wal_len,
        })
    }

    /// Bytes in the current WAL (which a snapshot resets).
    pub fn wal_len(&self) -> u64 {
        self.wal_len
    }

    /// Makes `persist` durable (as far as it asks).
    pub async fn write(&mut self, persist: Persist) -> io::Result<()> {
        if let Some(rotation) = persist.rotation {
            return self
                .rotate(rotation.snapshot_index, rotation.snapshot_file, persist.wal)
                .await;
        }
        if persist.wal.is_empty() {
            return Ok(());
        }
        let len = persist.wal.len() as u64;
        let (written, _) = self.wal.write_all_at(persist.wal, self.wal_len).await;
        written?;
        self.wal_len += len;
        if persist.must_sync {
            self.wal.fdatasync().await?;
        }
        Ok(())
    }

    /// A snapshot, then a new WAL starting with `head`, then the old WALs removed.
    async fn rotate(&mut self, index: u64, snapshot: Vec<u8>, head: Vec<u8>) -> io::Result<()> {
        fs::replace_atomically(&self.dir, SNAPSHOT_FILE, snapshot).await?;
        let name = wal::wal_file_name(index + 1);
        let head_len = head.len() as u64;
        fs::replace_atomically(&self.dir, &name, head).await?;
        let path = self.dir.join(&name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        let wal = fs::open_file(&path, options).await?;
        let old = std::mem::replace(&mut self.wal, wal);
        let _ = old.close().await;
        let old_path = std::mem::replace(&mut self.wal_path, path);
        self.wal_len = head_len;
        if old_path != self.wal_path {
            fs::remove_file(&old_path).await?;
            fs::open_dir(&self.dir).await?.fsync().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wal_files_named_as_written_count() {
        assert_eq!(wal_first_index(&wal::wal_file_name(17)), Some(17));
        assert_eq!(wal_first_index("wal-00000000000000000017.bak"), None);
        assert_eq!(wal_first_index("wal-17"), None);
        assert_eq!(wal_first_index("wal-0000000000000000001x"), None);
        assert_eq!(wal_first_index("snapshot"), None);
    }

    #[test]
    fn recovery_keeps_the_newest_wal_and_drops_leftovers() {
        let data = std::env::temp_dir().join(format!("runnel-qdisk-{}", std::process::id()));
        let dir = data.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(wal::wal_file_name(1)), b"").unwrap();
        std::fs::write(dir.join(wal::wal_file_name(9)), b"").unwrap();
        std::fs::write(dir.join("snapshot.tmp"), b"half").unwrap();
        let found = recover(&data).unwrap();
        assert_eq!(found.wal_path, dir.join(wal::wal_file_name(9)));
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![wal::wal_file_name(9)]);
        std::fs::remove_dir_all(&data).unwrap();
    }
}
