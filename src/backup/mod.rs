//! Online backup and restore of an embedded installation (SQLite catalog,
//! local blobs). A backup directory holds `catalog.sqlite` (a consistent
//! copy of the catalog), `blobs/<key>` (the bytes that copy needs) and
//! `backup.json` ([`Manifest`], written last).
//!
//! What a restored installation needs, and so what is copied: the bytes of
//! every stored variant of a current connection (the only ones a server
//! reads; the rule is `migrate::blobs::page`, shared with `migrate`). Not
//! copied, because no restored installation reads them:
//! - blobs queued for reclaim (their rows stay: a restored server's reclaim
//!   deletes them, and deleting a missing blob succeeds);
//! - variants of purged (retired) scopes, which reclaim drains the same way;
//! - uploads in progress (upload intents): a restored server, the only one
//!   on its catalog, hands them to reclaim at start, as after a crash;
//! - `tmp/` (writes in progress), `LOCK`, and `migrate-state.json` (the
//!   source's own migration);
//! - the master key file (`--master-key-file`): it is not in the data
//!   directory, and a backup should not hold the key beside the secrets
//!   it opens.
//!
//! `fsck` finds none of these missing: it checks the stored variants of
//! current connections only, and orphans are files the catalog does not
//! name, of which a restore makes none.

pub mod files;
mod manifest;
mod restore;
mod take;

use std::path::Path;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

pub use manifest::Manifest;
pub use restore::{Restored, restore};
pub use take::{Taken, backup};

use crate::blobs::local::key_path;
use crate::migrate::blobs::{SourceBlob, page, totals};
use crate::progress::Progress;

/// The catalog's file in a backup (and in a data directory).
pub const CATALOG: &str = "catalog.sqlite";
/// Blobs hashed at once.
const PARALLEL_HASHES: usize = 4;
/// Blobs placed at once.
const PARALLEL_PLACES: usize = 8;

/// The blobs a catalog copy names (see the module's documentation).
pub struct Named {
    /// One per key, in key order.
    pub blobs: Vec<SourceBlob>,
    /// Stored variants (rows; as many as keys, unless rows share one).
    pub variants: u64,
    pub bytes: u64,
}

/// Reads the catalog copy `file` (read-only: it is never changed).
pub async fn named_blobs(file: &Path) -> anyhow::Result<Named> {
    let pool = open(file).await?;
    let (variants, _) = totals(&pool).await?;
    let mut blobs: Vec<SourceBlob> = Vec::new();
    let mut after = String::new();
    loop {
        let batch = page(&pool, &after).await?;
        let Some(last) = batch.last() else { break };
        after = last.key.clone();
        blobs.extend(batch);
    }
    pool.close().await;
    let bytes = blobs.iter().map(|b| b.size).sum();
    Ok(Named {
        blobs,
        variants,
        bytes,
    })
}

async fn open(file: &Path) -> anyhow::Result<SqlitePool> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(file).read_only(true))
        .await
        .with_context(|| format!("cannot open the catalog copy {}", file.display()))
}

/// Checks every blob under `root` against the size and SHA-256 the catalog
/// recorded when it was stored (rows without a checksum: the size alone).
/// `hint` ends the message that names a blob that does not match.
async fn verify(
    root: &Path,
    blobs: &[SourceBlob],
    progress: &dyn Progress,
    hint: &str,
) -> anyhow::Result<()> {
    progress.phase("verifying bytes", blobs.iter().map(|b| b.size).sum());
    futures::stream::iter(blobs)
        .map(|b| async move {
            let path = key_path(root, &b.key)?;
            let (len, sha256) = tokio::task::spawn_blocking(move || files::hash(&path))
                .await?
                .with_context(|| format!("cannot read blob {}", b.key))?;
            let expected = b.sha256.as_deref().unwrap_or(&sha256);
            if len != b.size || sha256 != expected {
                bail!(
                    "blob {} does not match the catalog: SHA-256 {sha256} ({len} bytes), the \
                     catalog recorded {expected} ({} bytes); {hint}",
                    b.key,
                    b.size
                );
            }
            progress.advance(b.size);
            anyhow::Ok(())
        })
        .buffer_unordered(PARALLEL_HASHES)
        .try_collect::<()>()
        .await
}
