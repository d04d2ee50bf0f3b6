//! Files on the shard's backend (io_uring operations, or the blocking pool under epoll), and
//! the file-system calls a shard needs now and then.
//!
//! Reads, writes and syncs of an open [`File`] are backend operations. Creating, opening,
//! renaming and removing go to the blocking pool on both backends (see
//! [`unblock`](super::blocking::unblock)): each is one quick call most of the time, but one
//! that waits on the file system's journal now and then, and a shard that waits stalls every
//! connection and partition it owns. The free functions here are those calls, for shard code;
//! they mirror `std::fs` so their errors are the ones `std::fs` would return.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::buf::{IoBuf, IoBufMut};
use super::context;
use super::fault::{self, FaultOp};
use super::fd::IoFd;
use super::op::{Op, OpSpec};
use super::ops::{self, FdKind};

/// An open file. Positional reads and writes only; there is no shared cursor.
#[derive(Debug)]
pub struct File {
    fd: IoFd,
    /// The path it was opened at, kept only while storage faults are injected (tests), so
    /// writes and syncs can be failed by path.
    fault_path: Option<std::sync::Arc<Path>>,
}

impl File {
    /// Opens an existing file read-only.
    pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
        Self::with_options(path, OpenOptions::new().read(true))
    }

    /// Opens a directory, to [`fsync`](File::fsync) its entries.
    pub fn open_dir(path: impl AsRef<Path>) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        Self::with_options(
            path,
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY),
        )
    }

    /// Creates (or truncates) a file for reading and writing.
    pub fn create(path: impl AsRef<Path>) -> io::Result<File> {
        Self::with_options(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
    }

    /// Opens with the given std options, synchronously: off a shard, or where a stall is
    /// acceptable. Shard code uses [`open_file`] or [`create_file`].
    pub fn with_options(path: impl AsRef<Path>, options: &OpenOptions) -> io::Result<File> {
        let path = path.as_ref();
        fault::check(FaultOp::Open, path)?;
        Ok(Self::from_std(options.open(path)?).remember_path(path))
    }

    /// Adopts a std file.
    pub fn from_std(file: std::fs::File) -> File {
        File {
            fd: IoFd::new(OwnedFd::from(file)),
            fault_path: None,
        }
    }

    /// Keeps `path` for injected faults, when there are any.
    fn remember_path(mut self, path: &Path) -> File {
        if fault::active() {
            if fault::power_cut_armed() {
                fault::opened(path, self.len().unwrap_or(0));
            }
            self.fault_path = Some(path.into());
        }
        self
    }

    /// Before a write: the injected error, if any (a power cut armed for it never returns).
    fn injected_write(&self) -> io::Result<()> {
        if let Some(path) = &self.fault_path {
            fault::before_write(path);
        }
        self.injected(FaultOp::Write)
    }

    /// Before a sync, for power cuts: the length it will make durable (what was written when
    /// it started; a write that lands while it runs may not be covered).
    fn syncing_len(&self) -> Option<u64> {
        self.fault_path
            .as_ref()
            .filter(|_| fault::power_cut_armed())
            .map(|_| self.len().unwrap_or(0))
    }

    /// After a successful sync that started at `len` bytes: they are durable.
    fn note_synced(&self, len: Option<u64>) {
        if let (Some(path), Some(len)) = (&self.fault_path, len) {
            fault::synced(path, len);
        }
    }

    /// The injected outcome of `op` on this file (`Ok` unless a test injects faults).
    fn injected(&self, op: FaultOp) -> io::Result<()> {
        match &self.fault_path {
            Some(path) => fault::check(op, path),
            None => Ok(()),
        }
    }

    /// Reads at `offset` into the spare capacity of `buf`; `Ok(0)` means end of file.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        if buf.bytes_total() == buf.bytes_init() {
            let err = io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer has no spare capacity to read into",
            );
            return (Err(err), buf);
        }
        Op::new(ops::ReadAt {
            fd: self.fd.shared(),
            buf,
            offset,
        })
        .await
    }

    /// Reads at `offset` until the buffer is full or the file ends; returns the bytes read.
    pub async fn read_exact_at<B: IoBufMut>(
        &self,
        mut buf: B,
        mut offset: u64,
    ) -> (io::Result<usize>, B) {
        let mut total = 0;
        while buf.bytes_init() < buf.bytes_total() {
            let (result, returned) = Op::new(ops::ReadAt {
                fd: self.fd.shared(),
                buf,
                offset,
            })
            .await;
            buf = returned;
            match result {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(total), buf)
    }

    /// Writes some of the initialized bytes of `buf` at `offset`; returns how many.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        if let Err(e) = self.injected_write() {
            return (Err(e), buf);
        }
        Op::new(ops::WriteAt {
            fd: self.fd.shared(),
            buf,
            buf_offset: 0,
            offset,
        })
        .await
    }

    /// Writes all initialized bytes of `buf` at `offset`.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<()>, B) {
        if let Err(e) = self.injected_write() {
            return (Err(e), buf);
        }
        let fd = self.fd.shared();
        super::buf::write_all(buf, |buf, done| {
            Op::new(ops::WriteAt {
                fd: fd.clone(),
                buf,
                buf_offset: done,
                offset: offset + done as u64,
            })
        })
        .await
    }

    /// Writes the concatenation of `parts` at `offset` with vectored writes (pwritev): a write
    /// gathered from several buffers without first copying them into one.
    pub async fn write_all_vectored_at(
        &self,
        parts: Vec<bytes::Bytes>,
        offset: u64,
    ) -> (io::Result<()>, Vec<bytes::Bytes>) {
        if let Err(e) = self.injected_write() {
            return (Err(e), parts);
        }
        if let Some(delay) = self.fault_path.as_deref().and_then(fault::write_delay) {
            super::time::sleep(delay).await;
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut parts = parts;
        let mut done = 0;
        let inline = context::try_with(|ctx| ctx.inline_file_writes).unwrap_or(false);
        while done < total {
            let write = ops::WritevAt::new(self.fd.shared(), parts, done, offset + done as u64);
            let (result, returned) = if inline {
                let mut write = Box::new(write);
                let result = write.run_sync();
                write.complete(result)
            } else {
                Op::new(write).await
            };
            parts = returned;
            match result {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), parts),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), parts),
            }
        }
        (Ok(()), parts)
    }

    /// Flushes the file's data (and the metadata needed to read it back) to stable storage.
    pub async fn fdatasync(&self) -> io::Result<()> {
        self.injected(FaultOp::Sync)?;
        let syncing = self.syncing_len();
        Op::new(ops::Fsync {
            fd: self.fd.shared(),
            data_only: true,
        })
        .await?;
        self.note_synced(syncing);
        Ok(())
    }

    /// Flushes the file's data and all its metadata; on a directory opened with
    /// [`File::open_dir`], makes the creation, renaming and removal of its entries durable.
    pub async fn fsync(&self) -> io::Result<()> {
        self.injected(FaultOp::Sync)?;
        let syncing = self.syncing_len();
        Op::new(ops::Fsync {
            fd: self.fd.shared(),
            data_only: false,
        })
        .await?;
        self.note_synced(syncing);
        Ok(())
    }

    /// fallocate(2): reserves (mode 0) or, with flags such as FALLOC_FL_KEEP_SIZE, manipulates
    /// the byte range `offset..offset + len`.
    pub async fn fallocate(&self, mode: i32, offset: u64, len: u64) -> io::Result<()> {
        Op::new(ops::Fallocate {
            fd: self.fd.shared(),
            mode,
            offset,
            len,
        })
        .await
    }

    /// The file's current size (a quick metadata call, made synchronously).
    pub fn len(&self) -> io::Result<u64> {
        let fd = std::os::fd::AsFd::as_fd(self);
        Ok(std::fs::File::from(fd.try_clone_to_owned()?)
            .metadata()?
            .len())
    }

    /// Sets the file's size (ftruncate(2); a quick metadata call, made synchronously).
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        let fd = std::os::fd::AsFd::as_fd(self);
        std::fs::File::from(fd.try_clone_to_owned()?).set_len(len)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Closes the file through the backend, reporting errors close(2) returns.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

impl super::pipe::SpliceEnd for File {
    fn splice_end(&self) -> (super::fd::SharedFd, FdKind) {
        (self.fd.shared(), FdKind::File)
    }
}

super::fd::impl_as_fd!(File);

/// Runs a `std::fs` call on `path` on the blocking pool.
async fn on_pool<T: Send + 'static>(
    path: &Path,
    call: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = path.to_path_buf();
    super::blocking::unblock(move || call(&path)).await
}

/// Opens `path` with `options` without blocking the shard.
pub async fn open_file(path: impl AsRef<Path>, options: OpenOptions) -> io::Result<File> {
    let path = path.as_ref();
    fault::check(FaultOp::Open, path)?;
    let file = on_pool(path, move |path| options.open(path)).await?;
    Ok(File::from_std(file).remember_path(path))
}

/// Creates (or truncates) a file for reading and writing, like [`File::create`], without
/// blocking the shard.
pub async fn create_file(path: impl AsRef<Path>) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    open_file(path, options).await
}

/// Opens a directory to [`fsync`](File::fsync) its entries, like [`File::open_dir`], without
/// blocking the shard.
pub async fn open_dir(path: impl AsRef<Path>) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(libc::O_DIRECTORY);
    open_file(path, options).await
}

/// Whether `path` exists, like [`Path::try_exists`].
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    on_pool(path.as_ref(), |path| path.try_exists()).await
}

/// Creates a directory and any missing parents, like [`std::fs::create_dir_all`]. Not durable
/// by itself: sync the parent of the first directory created.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), |path| std::fs::create_dir_all(path)).await
}

/// Removes a file, like [`std::fs::remove_file`] (a missing file is an error). Not durable by
/// itself: sync the directory.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), |path| std::fs::remove_file(path)).await
}

/// Renames a file, replacing `to` if it exists, like [`std::fs::rename`]. Not durable by
/// itself: sync the directory.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let to = to.as_ref().to_path_buf();
    fault::check(FaultOp::Replace, &to)?;
    on_pool(from.as_ref(), move |from| std::fs::rename(from, &to)).await
}

/// Removes a directory and everything in it, like [`std::fs::remove_dir_all`]. Not durable by
/// itself: sync the parent directory.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), |path| std::fs::remove_dir_all(path)).await
}

/// Replaces `dir/name` with `contents` so that a crash leaves the old file or the new one,
/// never a mix, and the new one is durable when this returns: writes `dir/name.tmp`, syncs it,
/// renames it over `name` and syncs `dir`.
///
/// A `name.tmp` left by a crash is garbage the next replace truncates; callers that list their
/// directory may remove it. The steps run as one job on the blocking pool: they are a handful
/// of metadata calls and two syncs that only make sense in order.
pub async fn replace_atomically(dir: &Path, name: &str, contents: Vec<u8>) -> io::Result<()> {
    let dir = dir.to_path_buf();
    let name = name.to_owned();
    super::blocking::unblock(move || replace_atomically_blocking(&dir, &name, &contents)).await
}

/// [`replace_atomically`] for threads that are not shards (start-up and shutdown on the main
/// thread), where blocking is what the caller wants.
pub fn replace_atomically_blocking(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    fault::check(FaultOp::Replace, &dir.join(name))?;
    let tmp: PathBuf = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_data()?;
    // close(2) reports what write-back found on some file systems (NFS): don't drop it.
    super::sys::close(OwnedFd::from(file))?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}
