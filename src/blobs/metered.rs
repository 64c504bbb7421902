//! Any blob store with the time of each operation recorded, by operation
//! (`--metrics-listen` only: without it the store is used bare).

use std::time::Instant;

use async_trait::async_trait;

use super::{BlobRead, BlobStore, ByteStream, PutError, PutOutcome};
use crate::metrics::names::BLOB_STORE_DURATION;
use crate::metrics::{record_time, timed};

pub struct MeteredBlobStore<S>(pub S);

#[async_trait]
impl<S: BlobStore> BlobStore for MeteredBlobStore<S> {
    async fn ping(&self) -> anyhow::Result<()> {
        timed(BLOB_STORE_DURATION, "ping", self.0.ping()).await
    }

    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<PutOutcome, PutError> {
        timed(BLOB_STORE_DURATION, "put", self.0.put(key, body, limit)).await
    }

    /// Until the body starts: its streaming runs at the client's pace.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
        let started = Instant::now();
        let read = self.0.get(key, range).await;
        record_time(BLOB_STORE_DURATION, "get", started);
        read
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        timed(BLOB_STORE_DURATION, "delete", self.0.delete(key)).await
    }

    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        timed(BLOB_STORE_DURATION, "delete_many", self.0.delete_many(keys)).await
    }

    async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
        timed(BLOB_STORE_DURATION, "free_bytes", self.0.free_bytes()).await
    }

    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        timed(BLOB_STORE_DURATION, "size", self.0.size(key)).await
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        timed(BLOB_STORE_DURATION, "list", self.0.list()).await
    }
}
