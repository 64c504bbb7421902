//! Any blob store with a memory cache of small blobs in front (a server's
//! hot thumbnails). Keys name immutable bytes, so a cached copy is never
//! stale and every node may keep its own; whether a URL may still be served
//! is decided by the catalog before the bytes are asked for.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::metrics::Series;
use crate::metrics::names::BLOB_CACHE;

static HIT: Series = Series::new(BLOB_CACHE, "result", "hit");
static MISS: Series = Series::new(BLOB_CACHE, "result", "miss");

use super::small_cache::{MAX_CACHED_BLOB, SmallBlobCache};
use super::{BlobRead, BlobStore, ByteStream, PutError, PutOutcome};

pub struct CachedBlobStore<S> {
    inner: S,
    small: SmallBlobCache,
}

impl<S: BlobStore> CachedBlobStore<S> {
    /// Keeps up to `budget` bytes of small blobs of `inner` in memory.
    pub fn new(inner: S, budget: u64) -> Self {
        Self {
            inner,
            small: SmallBlobCache::new(budget),
        }
    }
}

fn answer(bytes: Bytes, range: Option<(u64, u64)>) -> BlobRead {
    let (offset, len) = range.unwrap_or((0, bytes.len() as u64));
    let end = offset.saturating_add(len).min(bytes.len() as u64);
    let part = bytes.slice(offset.min(end) as usize..end as usize);
    BlobRead {
        len: part.len() as u64,
        body: futures::stream::once(async move { Ok(part) }).boxed(),
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for CachedBlobStore<S> {
    async fn ping(&self) -> anyhow::Result<()> {
        self.inner.ping().await
    }

    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<PutOutcome, PutError> {
        self.small.remove(key);
        self.inner.put(key, body, limit).await
    }

    async fn put_unsettled(
        &self,
        key: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        self.small.remove(key);
        self.inner.put_unsettled(key, body, limit).await
    }

    async fn settle(&self, key: &str) -> Result<(), PutError> {
        self.inner.settle(key).await
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
        if let Some(whole) = self.small.get(key) {
            HIT.increment(1);
            return Ok(Some(answer(whole, range)));
        }
        MISS.increment(1);
        let Some(read) = self.inner.get(key, range).await? else {
            return Ok(None);
        };
        // Only whole reads fill the cache: a range of a small blob is rare
        // (a player seeking in a short clip) and not worth a second read.
        if range.is_some() || read.len > MAX_CACHED_BLOB || !self.small.enabled() {
            return Ok(Some(read));
        }
        let mut buf = BytesMut::with_capacity(read.len as usize);
        let mut body = read.body;
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let bytes = buf.freeze();
        self.small.put(key, bytes.clone());
        Ok(Some(answer(bytes, None)))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.small.remove(key);
        self.inner.delete(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        for k in keys {
            self.small.remove(k);
        }
        self.inner.delete_many(keys).await
    }

    async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
        self.inner.free_bytes().await
    }

    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        self.inner.size(key).await
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        self.inner.list().await
    }
}
