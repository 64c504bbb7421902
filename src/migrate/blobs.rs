//! Copies the bytes of every stored variant into the target blob store,
//! checking each against the SHA-256 and size the catalog recorded when it
//! was stored.

use anyhow::{Context, bail};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::blobs::BlobStore;

/// A stored variant's blob, as the source catalog recorded it.
pub struct SourceBlob {
    pub key: String,
    pub size: u64,
    pub sha256: Option<String>,
}

const PAGE: i64 = 1000;

/// Stored blobs of current scopes with keys after `after`, in key order.
pub async fn page(src: &SqlitePool, after: &str) -> anyhow::Result<Vec<SourceBlob>> {
    let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT blob_key, size_bytes, checksum FROM variants \
         WHERE status = 'stored' AND blob_key IS NOT NULL AND blob_key > ? \
           AND scope_id IN (SELECT scope_id FROM connections) \
         ORDER BY blob_key LIMIT ?",
    )
    .bind(after)
    .bind(PAGE)
    .fetch_all(src)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, size, sha256)| SourceBlob {
            key,
            size: size as u64,
            sha256,
        })
        .collect())
}

/// Totals of what [`page`] will walk (for the progress bar).
pub async fn totals(src: &SqlitePool) -> anyhow::Result<(u64, u64)> {
    let (n, bytes): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(size_bytes) FROM variants \
         WHERE status = 'stored' AND blob_key IS NOT NULL \
           AND scope_id IN (SELECT scope_id FROM connections)",
    )
    .fetch_one(src)
    .await?;
    Ok((n as u64, bytes.unwrap_or(0) as u64))
}

/// What happened to one blob.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// Written and verified.
    Written,
    /// Already in the target with the right size: an object exists only once
    /// completely written, and only bytes that matched their checksum are
    /// ever written (an earlier run, or a source unchanged since).
    Present,
}

/// Copies one blob unless the target holds it already (`held`: its size
/// there). The source bytes are checked against the recorded SHA-256 and
/// size before anything is written, so a damaged source never reaches the
/// target; the bytes written are hashed again on the way.
pub async fn copy_one(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    blob: &SourceBlob,
    held: Option<u64>,
) -> anyhow::Result<Copied> {
    if held == Some(blob.size) {
        return Ok(Copied::Present);
    }
    let (len, sha256) = hash_source(from, blob).await?;
    let expected = blob.sha256.as_deref().unwrap_or(&sha256);
    if len != blob.size || sha256 != expected {
        bail!(
            "blob {} does not match the catalog: SHA-256 {sha256} ({len} bytes) in the source, \
             the catalog recorded {expected} ({} bytes); run `vaultplus fsck` on the source",
            blob.key,
            blob.size
        );
    }
    let read = open(from, blob).await?;
    let put = to
        .put(&blob.key, read.body, blob.size)
        .await
        .with_context(|| format!("cannot write blob {}", blob.key))?;
    if put.size_bytes != blob.size || put.sha256 != expected {
        // The source changed under us (it cannot: the data directory is
        // locked) or bytes were damaged in transit: never leave them.
        to.delete(&blob.key).await?;
        bail!(
            "blob {} changed in transit: wrote SHA-256 {} ({} bytes), expected {expected} ({} bytes)",
            blob.key,
            put.sha256,
            put.size_bytes,
            blob.size
        );
    }
    Ok(Copied::Written)
}

async fn open(from: &dyn BlobStore, blob: &SourceBlob) -> anyhow::Result<crate::blobs::BlobRead> {
    from.get(&blob.key, None)
        .await?
        .with_context(|| format!("blob {} is missing from the source (run fsck)", blob.key))
}

async fn hash_source(from: &dyn BlobStore, blob: &SourceBlob) -> anyhow::Result<(u64, String)> {
    let mut body = open(from, blob).await?.body;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("cannot read blob {}", blob.key))?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((len, hex::encode(hasher.finalize())))
}
