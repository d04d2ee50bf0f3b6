//! The data directory and the lock that keeps two brokers from sharing it.

use std::fs::File;

use runnel_engine::rt;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use runnel_engine::log::CLEAN_SHUTDOWN_FILE;

/// The data directory, locked for this process until dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates the directory if needed and takes an exclusive lock on `<dir>/.lock`.
    pub fn open(path: &Path) -> io::Result<DataDir> {
        std::fs::create_dir_all(path)?;
        let lock_path = path.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another broker", path.display()),
                )
            } else {
                io::Error::from(errno)
            }
        })?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the clean-shutdown marker (durably); returns whether it was there, i.e.
    /// whether the previous run closed every log cleanly.
    pub fn take_clean_shutdown_marker(&self) -> io::Result<bool> {
        match std::fs::remove_file(self.path.join(CLEAN_SHUTDOWN_FILE)) {
            Ok(()) => {
                File::open(&self.path)?.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the clean-shutdown marker (durably), once every log is closed.
    pub fn write_clean_shutdown_marker(&self) -> io::Result<()> {
        File::create(self.path.join(CLEAN_SHUTDOWN_FILE))?.sync_all()?;
        File::open(&self.path)?.sync_all()
    }

    /// The cluster id recorded in `meta.properties` (Kafka's file and key), created on first
    /// start as a random base64url UUID like Kafka's.
    pub fn cluster_id(&self) -> io::Result<String> {
        let path = self.path.join("meta.properties");
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .find_map(|line| line.strip_prefix("cluster.id="))
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} has no cluster.id", path.display()),
                    )
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = random_cluster_id()?;
                let text = format!("version=1\ncluster.id={id}\n");
                rt::fs::replace_atomically_blocking(
                    &self.path,
                    "meta.properties",
                    text.as_bytes(),
                )?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }
}

/// 16 random bytes in unpadded base64url (22 characters), the shape of Kafka's cluster ids.
fn random_cluster_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut bytes)?;
    Ok(cluster_id_text(bytes))
}

/// A cluster id's 16 bytes as Kafka writes them: unpadded base64url, 22 characters.
pub fn cluster_id_text(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = u128::from_be_bytes(bytes);
    (0..22)
        .map(|i| {
            let shift = 128i32 - 6 * (i + 1);
            let index = if shift >= 0 {
                (bits >> shift) & 63
            } else {
                (bits << -shift) & 63
            };
            char::from(ALPHABET[index as usize])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("runnel-clusterid-{}", std::process::id()));
        let data = DataDir::open(&dir).unwrap();
        let id = data.cluster_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(data.cluster_id().unwrap(), id);
        drop(data);
        let other = DataDir::open(&dir).unwrap();
        assert_eq!(other.cluster_id().unwrap(), id);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = std::env::temp_dir().join(format!("runnel-datadir-{}", std::process::id()));
        let first = DataDir::open(&dir).unwrap();
        let err = DataDir::open(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        DataDir::open(&dir).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
