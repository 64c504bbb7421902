//! Where the bytes live. The catalog says what exists; a blob store only
//! holds bytes under opaque keys that vaultplus itself generates (never a
//! client string), so no request can steer a path.

pub mod cached;
mod dir_sync;
mod intake;
pub mod local;
pub mod metered;
mod probe_cache;
pub mod s3;
pub mod s3_ranged;
pub mod small_cache;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use cached::CachedBlobStore;
pub use local::LocalBlobStore;
pub use metered::MeteredBlobStore;
pub use s3::{S3BlobStore, S3Options};

/// Deletions at once in the default [`BlobStore::delete_many`].
const DELETES_IN_FLIGHT: usize = 16;

/// A body to store, as it arrives.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What a completed write produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    pub size_bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body ended early or could not be read: {0}")]
    Body(String),
    /// The store ran out of space mid-write.
    #[error("no space left in the blob store")]
    NoSpace,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl PutError {
    /// A failed read of the body being stored. A body may itself say that
    /// the store has no room ([`std::io::ErrorKind::StorageFull`]: the
    /// free-space floor refused its next chunk), which is no fault of the
    /// body.
    pub fn from_body(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            Self::NoSpace
        } else {
            Self::Body(e.to_string())
        }
    }
}

/// An open blob: its length and a stream of the requested bytes.
pub struct BlobRead {
    pub len: u64,
    pub body: ByteStream,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Proves the store is reachable and writable (health checks).
    async fn ping(&self) -> anyhow::Result<()>;
    /// Streams `body` under `key`, at most `limit` bytes, hashing as it goes.
    /// The blob becomes visible under `key` only once complete and durable;
    /// on any error nothing is left behind under `key`.
    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<PutOutcome, PutError>;
    /// [`BlobStore::put`] in two steps: this one streams and hashes the
    /// body, [`BlobStore::settle`] then makes it durable and visible under
    /// `key`. Until it is settled the blob may be neither. The storing
    /// pipeline gives its fetch slot back in between, so an upstream
    /// connection never waits for a disk sync, and the syncs of concurrent
    /// writes run together. A blob written but never settled is removed by
    /// [`BlobStore::delete`] of its key (and, after a crash, by whatever
    /// cleans interrupted writes). The default is `put`: a store whose
    /// writes are durable when they return has nothing left to settle.
    async fn put_unsettled(
        &self,
        key: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        self.put(key, body, limit).await
    }
    /// Makes the blob [`BlobStore::put_unsettled`] wrote under `key`
    /// durable and visible; on error nothing is left under `key`.
    async fn settle(&self, key: &str) -> Result<(), PutError> {
        let _ = key;
        Ok(())
    }
    /// Opens `len` bytes from `offset` (the whole blob when `range` is None).
    /// None when the blob does not exist.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>>;
    /// Deletes the blob; deleting a missing blob succeeds.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Deletes many blobs (reclaim's batches); missing ones count as deleted.
    /// On error some of them may be gone and some not: deleting again is
    /// safe. The default deletes one by one, a few at a time; a store with
    /// a batch API overrides it.
    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for batch in keys.chunks(DELETES_IN_FLIGHT) {
            let deletes: Vec<_> = batch.iter().map(|k| self.delete(k)).collect();
            for r in futures::future::join_all(deletes).await {
                failures.extend(r.err());
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e.context(format!("cannot delete {failed} of {} blobs", keys.len()))),
        }
    }
    /// Bytes still free for new blobs, when the store can tell (a local
    /// filesystem can; an object store has no such figure).
    async fn free_bytes(&self) -> anyhow::Result<Option<u64>>;
    /// The size of one blob, None when it does not exist.
    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>>;
    /// Every key held, with its size in bytes (consistency checks).
    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>>;
}
