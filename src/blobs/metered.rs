//! Any blob store with the time of each operation recorded, by operation
//! (`--metrics-listen` only: without it the store is used bare).

use std::time::Instant;

use async_trait::async_trait;

use super::{BlobRead, BlobStore, ByteStream, PutError, PutOutcome};
use crate::metrics::names::BLOB_STORE_DURATION;
use crate::metrics::timer;

pub struct MeteredBlobStore<S>(pub S);

#[async_trait]
impl<S: BlobStore> BlobStore for MeteredBlobStore<S> {
    async fn ping(&self) -> anyhow::Result<()> {
        timer!(BLOB_STORE_DURATION, "ping")
            .time(self.0.ping())
            .await
    }

    async fn put(&self, key: &str, body: ByteStream, limit: u64) -> Result<PutOutcome, PutError> {
        timer!(BLOB_STORE_DURATION, "put")
            .time(self.0.put(key, body, limit))
            .await
    }

    async fn put_unsettled(
        &self,
        key: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        timer!(BLOB_STORE_DURATION, "put_unsettled")
            .time(self.0.put_unsettled(key, body, limit))
            .await
    }

    async fn settle(&self, key: &str) -> Result<(), PutError> {
        timer!(BLOB_STORE_DURATION, "settle")
            .time(self.0.settle(key))
            .await
    }

    /// Until the body starts: its streaming runs at the client's pace.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
        let started = Instant::now();
        let read = self.0.get(key, range).await;
        timer!(BLOB_STORE_DURATION, "get").record(started);
        read
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        timer!(BLOB_STORE_DURATION, "delete")
            .time(self.0.delete(key))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        timer!(BLOB_STORE_DURATION, "delete_many")
            .time(self.0.delete_many(keys))
            .await
    }

    async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
        timer!(BLOB_STORE_DURATION, "free_bytes")
            .time(self.0.free_bytes())
            .await
    }

    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        timer!(BLOB_STORE_DURATION, "size")
            .time(self.0.size(key))
            .await
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        timer!(BLOB_STORE_DURATION, "list")
            .time(self.0.list())
            .await
    }
}
