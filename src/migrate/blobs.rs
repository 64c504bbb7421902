//! Copies the bytes of every stored variant into the target blob store,
//! checking each against the SHA-256 and size the catalog recorded when it
//! was stored.

use anyhow::{Context, bail};
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
    /// Already in the target with the right size (an earlier run wrote it:
    /// a target blob exists only once completely written).
    Present,
}

pub async fn copy_one(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    blob: &SourceBlob,
) -> anyhow::Result<Copied> {
    if to.size(&blob.key).await? == Some(blob.size) {
        return Ok(Copied::Present);
    }
    let read = from
        .get(&blob.key, None)
        .await?
        .with_context(|| format!("blob {} is missing from the source (run fsck)", blob.key))?;
    if read.len != blob.size {
        bail!(
            "blob {} holds {} bytes in the source, the catalog says {} (run fsck)",
            blob.key,
            read.len,
            blob.size
        );
    }
    let put = to
        .put(&blob.key, read.body, blob.size)
        .await
        .with_context(|| format!("cannot write blob {}", blob.key))?;
    let checksum_ok = blob.sha256.as_deref().is_none_or(|want| want == put.sha256);
    if put.size_bytes != blob.size || !checksum_ok {
        // Never leave a blob that does not match what the catalog says.
        to.delete(&blob.key).await?;
        bail!(
            "blob {} changed in transit or on disk: SHA-256 {} ({} bytes), the catalog recorded {} ({} bytes)",
            blob.key,
            put.sha256,
            put.size_bytes,
            blob.sha256.as_deref().unwrap_or("-"),
            blob.size
        );
    }
    Ok(Copied::Written)
}
