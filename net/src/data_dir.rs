//! The data directory and the lock that keeps two brokers from sharing it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
