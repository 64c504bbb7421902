//! Blobs as files in a local directory.
//!
//! object_store's LocalFileSystem would do the job but does not fsync, and
//! invariant 3 of docs/DESIGN.md (nothing is `stored` before it is durable)
//! needs the file and its directory entry on disk before the catalog commit. Writes go to a
//! temporary file, are synced, then renamed into place. A write in two
//! steps ([`BlobStore::put_unsettled`]) stays an unsynced file in `tmp/`
//! until its [`BlobStore::settle`] does the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::StreamExt;
use std::io::{Read, Seek, Write};
use tokio::fs;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::dir_sync::DirSyncs;
use super::intake::Intake;
use super::{BlobRead, BlobStore, ByteStream, PutError, PutOutcome};
use crate::private_files;

const WRITE_BUFFER: usize = 256 * 1024;
/// Chunk size when streaming a blob: big enough that the blocking pool
/// round trip per chunk is small beside the copy, small enough that a
/// client reading slowly holds little memory (one chunk at a time).
const READ_CHUNK: usize = 128 * 1024;
/// Reads up to this size are answered from one buffer (one chunk).
const WHOLE_READ: u64 = READ_CHUNK as u64;

enum Opened {
    Whole(Bytes),
    File(std::fs::File, u64),
}

pub struct LocalBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    dir_syncs: Arc<DirSyncs>,
    /// Writes of [`BlobStore::put_unsettled`] waiting for their
    /// [`BlobStore::settle`], by key.
    unsettled: Mutex<HashMap<String, Unsettled>>,
}

/// A blob written to a temporary file, not yet synced nor renamed.
struct Unsettled {
    tmp: PathBuf,
    file: std::fs::File,
}

impl LocalBlobStore {
    /// Uses `dir/blobs` for blobs and `dir/tmp` for writes in progress.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let root = dir.join("blobs");
        let tmp = dir.join("tmp");
        for d in [&root, &tmp] {
            private_files::create_dir_all(d)
                .await
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let dir_syncs = Arc::new(DirSyncs::default());
        Ok(Self {
            root,
            tmp,
            dir_syncs,
            unsettled: Mutex::default(),
        })
    }

    /// Deletes leftovers of writes that a crash interrupted: never referenced
    /// by the catalog, since only complete files are renamed into `blobs`.
    /// Only the process that owns the data directory (the server, holding
    /// its lock) may call this: anyone else would delete live writes.
    pub async fn clean_tmp(&self) -> anyhow::Result<u64> {
        let mut removed = 0;
        let mut entries = fs::read_dir(&self.tmp).await?;
        while let Some(e) = entries.next_entry().await? {
            if fs::remove_file(e.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn path_of(&self, key: &str) -> anyhow::Result<PathBuf> {
        key_path(&self.root, key)
    }

    /// Streams `body` into the new file `tmp`, hashing as it goes, and
    /// answers the file unsynced. Bytes are gathered up to
    /// [`WRITE_BUFFER`] and written with one trip to the blocking pool
    /// each (a small blob is created and written in one trip); a block is
    /// written while the next one is received, so at most two are held.
    /// `eager` creates the file at once rather than with the first block:
    /// an upload arrives at its client's pace, and its write in progress
    /// shows in `tmp/` from its first byte.
    async fn write_tmp(
        &self,
        tmp: &Path,
        mut body: ByteStream,
        limit: u64,
        eager: bool,
    ) -> Result<(PutOutcome, std::fs::File), PutError> {
        let mut writing: Option<Writing> = eager.then(|| write_out(None, tmp, Vec::new()));
        let mut buf = Vec::new();
        let mut intake = Intake::new(limit);
        let received = async {
            while let Some(chunk) = intake.next(&mut body).await? {
                // Written before it would grow past one block (growing
                // would copy it into a buffer twice the size).
                if !buf.is_empty() && buf.len() + chunk.len() > WRITE_BUFFER {
                    // Two buffers take turns: a fresh one per block would
                    // be faulted in anew each time.
                    let (file, spare) = match writing.take() {
                        Some(w) => {
                            let (f, spare) = written(w).await?;
                            (Some(f), spare)
                        }
                        None => (None, Vec::with_capacity(WRITE_BUFFER)),
                    };
                    let full = std::mem::replace(&mut buf, spare);
                    writing = Some(write_out(file, tmp, full));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok::<(), PutError>(())
        }
        .await;
        let file = match writing.take() {
            Some(w) => Some(written(w).await.map(|(f, _)| f)),
            None => None,
        };
        // A write still running when the body failed has ended: the caller
        // may remove `tmp` without racing it.
        received?;
        let (file, _) = written(write_out(file.transpose()?, tmp, buf)).await?;
        Ok((intake.outcome(), file))
    }

    /// Removes a blob's file (none is fine) and its scope directory once
    /// empty; answers the directory whose sync makes that durable.
    async fn unlink(&self, key: &str) -> anyhow::Result<PathBuf> {
        let path = self.path_of(key)?;
        self.drop_unsettled(key).await;
        match fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete blob {key}")),
        }
        // Scope directories go when empty; failing here only leaves a
        // directory behind, never bytes.
        match path.parent() {
            Some(p) if p != self.root => {
                if fs::remove_dir(p).await.is_ok() {
                    return Ok(self.root.clone());
                }
                Ok(p.to_path_buf())
            }
            _ => Ok(self.root.clone()),
        }
    }

    /// An unlink is durable only once its directory is synced, and an
    /// erasure receipt says `bytes_gone` on the strength of a deletion's
    /// answer: after a power loss the file must not come back. A directory
    /// gone meanwhile (another deletion emptied it) is the root's to make
    /// durable. Concurrent syncs of one directory are shared (`DirSyncs`).
    async fn sync_dirs(&self, dirs: Vec<PathBuf>) -> anyhow::Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        let (syncs, root) = (self.dir_syncs.clone(), self.root.clone());
        tokio::task::spawn_blocking(move || {
            for dir in &dirs {
                match syncs.sync(dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => syncs.sync(&root)?,
                    other => other?,
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await??;
        Ok(())
    }

    /// Makes the written file `tmp` durable and renames it to `key`, then
    /// makes the rename durable, all in one trip to the blocking pool. On
    /// error nothing is left under `key`; the caller removes `tmp`.
    async fn place(&self, key: &str, tmp: PathBuf, file: std::fs::File) -> Result<(), PutError> {
        let dest = self.path_of(key)?;
        let root = self.root.clone();
        let dir_syncs = self.dir_syncs.clone();
        let placed = tokio::task::spawn_blocking(move || {
            // For a new file, its data and the size that reads it back.
            file.sync_data()?;
            drop(file);
            let parent = dest.parent().unwrap_or(&root);
            // A concurrent delete may remove the scope directory between
            // creating it and renaming into it; try again then.
            let mut attempt = 0;
            let mut created = false;
            loop {
                if !parent.exists() {
                    private_files::create_dir_all_blocking(parent)?;
                    created = true;
                }
                match std::fs::rename(&tmp, &dest) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {
                        attempt += 1;
                    }
                    other => break other,
                }
            }?;
            // The rename is durable only once the directory is synced, and a
            // new scope directory only once its parent is.
            dir_syncs.sync(parent)?;
            if created {
                dir_syncs.sync(&root)?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        placed.map_err(|e| {
            PutError::Store(anyhow::Error::new(e).context(format!("cannot place blob {key}")))
        })
    }

    /// Forgets an unsettled write of `key`, removing its file.
    async fn drop_unsettled(&self, key: &str) {
        let gone = self
            .unsettled
            .lock()
            .expect("no panics under this lock")
            .remove(key);
        if let Some(u) = gone {
            drop(u.file);
            let _ = fs::remove_file(&u.tmp).await;
        }
    }
}

/// Creates `tmp` if `file` is None, then appends `buf` to it, in one trip
/// to the blocking pool; answers the file and the emptied buffer.
fn write_out(file: Option<std::fs::File>, tmp: &Path, mut buf: Vec<u8>) -> Writing {
    let path = tmp.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = match file {
            Some(f) => f,
            None => private_files::create_file(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::StorageFull {
                    PutError::NoSpace
                } else {
                    PutError::Store(
                        anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
                    )
                }
            })?,
        };
        file.write_all(&buf).map_err(write_error)?;
        buf.clear();
        Ok((file, buf))
    })
}

/// A block being written by [`write_out`].
type Writing = JoinHandle<Result<(std::fs::File, Vec<u8>), PutError>>;

async fn written(w: Writing) -> Result<(std::fs::File, Vec<u8>), PutError> {
    w.await
        .map_err(|e| PutError::Store(anyhow::Error::new(e).context("blob write task failed")))?
}

/// Where the blob `key` lives under `root` (a store's `blobs/`, or a
/// backup's). Keys are generated by vaultplus ("<scope>/<uuid>"); anything
/// else is refused rather than trusted as a path.
pub fn key_path(root: &Path, key: &str) -> anyhow::Result<PathBuf> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key.split('/').count() <= 2
        && key
            .split('/')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !ok {
        bail!("invalid blob key {key:?}");
    }
    Ok(root.join(key))
}

/// Streams `len` bytes from the file's current position, one blocking-pool
/// trip per chunk, each read straight into the buffer that goes to the
/// socket (tokio's own File would read into its buffer and copy again).
fn chunks(file: std::fs::File, len: u64) -> ByteStream {
    futures::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(READ_CHUNK as u64);
        let (file, buf) = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        if buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "blob shorter than its size",
            ));
        }
        let left = left - buf.len() as u64;
        Ok(Some((Bytes::from(buf), (file, left))))
    })
    .boxed()
}

fn write_error(e: std::io::Error) -> PutError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        PutError::NoSpace
    } else {
        PutError::Store(anyhow::Error::new(e).context("cannot write blob"))
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
        let root = self.root.clone();
        let st = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&root)).await??;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let probe = self
            .tmp
            .join(format!("health-{}", uuid::Uuid::new_v4().simple()));
        let not_writable = || format!("blob directory {} is not writable", self.tmp.display());
        private_files::create_file_async(&probe)
            .await
            .with_context(not_writable)?
            .write_all(b"ok")
            .await
            .with_context(not_writable)?;
        fs::remove_file(&probe).await?;
        fs::metadata(&self.root)
            .await
            .with_context(|| format!("blob directory {} is missing", self.root.display()))?;
        Ok(())
    }

    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<PutOutcome, PutError> {
        self.path_of(key)?;
        let tmp = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        let result = match self.write_tmp(&tmp, body, limit, true).await {
            Ok((outcome, file)) => self.place(key, tmp.clone(), file).await.map(|()| outcome),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = fs::remove_file(&tmp).await;
        }
        result
    }

    /// Writes to a temporary file and leaves it there, unsynced, until
    /// [`BlobStore::settle`]: nothing is visible under `key` before then.
    async fn put_unsettled(
        &self,
        key: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        self.path_of(key)?;
        let tmp = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        match self.write_tmp(&tmp, body, limit, false).await {
            Ok((outcome, file)) => {
                // A second unsettled write of the key replaces the first.
                self.drop_unsettled(key).await;
                self.unsettled
                    .lock()
                    .expect("no panics under this lock")
                    .insert(key.to_owned(), Unsettled { tmp, file });
                Ok(outcome)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn settle(&self, key: &str) -> Result<(), PutError> {
        let taken = self
            .unsettled
            .lock()
            .expect("no panics under this lock")
            .remove(key);
        let Some(Unsettled { tmp, file }) = taken else {
            return Err(PutError::Store(anyhow::anyhow!(
                "blob {key} has no write waiting to be settled"
            )));
        };
        let placed = self.place(key, tmp.clone(), file).await;
        if placed.is_err() {
            let _ = fs::remove_file(&tmp).await;
        }
        placed
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        // One trip to the blocking pool opens, sizes and, for a small read,
        // reads the whole answer: each trip costs more than reading 1 MiB
        // from the page cache.
        let opened = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Opened>> {
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("cannot open blob {key}")),
            };
            let total = file.metadata()?.len();
            let (offset, len) = range.unwrap_or((0, total));
            if offset > 0 {
                file.seek(std::io::SeekFrom::Start(offset))?;
            }
            if len <= WHOLE_READ {
                let mut buf = vec![0u8; len as usize];
                file.read_exact(&mut buf)
                    .with_context(|| format!("cannot read blob {key}"))?;
                return Ok(Some(Opened::Whole(Bytes::from(buf))));
            }
            Ok(Some(Opened::File(file, len)))
        })
        .await??;
        Ok(opened.map(|o| match o {
            Opened::Whole(bytes) => BlobRead {
                len: bytes.len() as u64,
                body: futures::stream::once(async move { Ok(bytes) }).boxed(),
            },
            Opened::File(file, len) => BlobRead {
                len,
                body: chunks(file, len),
            },
        }))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let dir = self.unlink(key).await?;
        self.sync_dirs(vec![dir])
            .await
            .with_context(|| format!("cannot sync the directory of deleted blob {key}"))
    }

    /// Unlinks every blob (a few at a time), then syncs each directory
    /// they were in once: one sync serves a whole batch of a scope.
    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        let mut dirs = Vec::new();
        let mut failures = Vec::new();
        for batch in keys.chunks(super::DELETES_IN_FLIGHT) {
            let unlinks: Vec<_> = batch.iter().map(|k| self.unlink(k)).collect();
            for r in futures::future::join_all(unlinks).await {
                match r {
                    Ok(dir) => dirs.push(dir),
                    Err(e) => failures.push(e),
                }
            }
        }
        // Before any answer, even a failure: the keys deleted are then
        // durably so, whichever the caller retries.
        dirs.sort();
        dirs.dedup();
        self.sync_dirs(dirs)
            .await
            .context("cannot sync the directories of deleted blobs")?;
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e.context(format!("cannot delete {failed} of {} blobs", keys.len()))),
        }
    }

    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match fs::metadata(self.path_of(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat blob {key}")),
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut keys = Vec::new();
        let mut dirs = fs::read_dir(&self.root).await?;
        while let Some(dir) = dirs.next_entry().await? {
            let name = dir.file_name().to_string_lossy().into_owned();
            if !dir.file_type().await?.is_dir() {
                keys.push((name, dir.metadata().await?.len()));
                continue;
            }
            let mut files = fs::read_dir(dir.path()).await?;
            while let Some(f) = files.next_entry().await? {
                let size = f.metadata().await?.len();
                keys.push((format!("{name}/{}", f.file_name().to_string_lossy()), size));
            }
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &'static [u8]) -> ByteStream {
        futures::stream::once(async move { Ok(Bytes::from_static(data)) }).boxed()
    }

    fn tmp_count(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("tmp")).unwrap().count()
    }

    /// Until settled, an unsettled write is only a file in `tmp/`: a crash
    /// then leaves nothing under its key, and the start's clean-up removes
    /// the file.
    #[tokio::test]
    async fn an_unsettled_write_is_visible_only_once_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        let (a, b) = ("s1/aaaa", "s1/bbbb");
        store.put_unsettled(a, body(b"first"), 100).await.unwrap();
        store.put_unsettled(b, body(b"second"), 100).await.unwrap();
        assert!(store.get(a, None).await.unwrap().is_none());
        assert_eq!(store.size(a).await.unwrap(), None);
        assert!(store.list().await.unwrap().is_empty());
        assert_eq!(tmp_count(dir.path()), 2);

        store.settle(a).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec![(a.to_owned(), 5)]);
        assert_eq!(tmp_count(dir.path()), 1);
        assert!(store.settle(a).await.is_err(), "settled once only");

        // The server dies before settling b: nothing of it is a blob, and
        // the next start removes its file.
        drop(store);
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        assert_eq!(store.clean_tmp().await.unwrap(), 1);
        assert_eq!(store.list().await.unwrap(), vec![(a.to_owned(), 5)]);
        assert!(store.settle(b).await.is_err());

        // Deleting an unsettled key removes its file at once.
        store.put_unsettled(b, body(b"again"), 100).await.unwrap();
        store.delete(b).await.unwrap();
        assert_eq!(tmp_count(dir.path()), 0);
        assert!(store.settle(b).await.is_err());
        assert_eq!(store.list().await.unwrap(), vec![(a.to_owned(), 5)]);
    }
}
