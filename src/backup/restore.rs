//! `vaultplus restore`: a working data directory from a backup. The
//! catalog is copied (SQLite writes its file in place, so it is never
//! linked); blobs are hard-linked from the backup when it is on the same
//! filesystem (vaultplus never writes into a blob file, so the backup
//! stays as it was), copied otherwise; every blob is checked against its
//! recorded size and SHA-256 once in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::files::{self, FreshDir, Placed, Placer};
use super::manifest::Manifest;
use super::take::place_all;
use super::{CATALOG, named_blobs, verify};
use crate::catalog::sqlite::snapshot::check_file;
use crate::private_files;
use crate::progress::Progress;
use crate::stores;

#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub linked: u64,
    pub copied: u64,
}

/// Restores the backup in `from` into the new or empty data directory
/// `to`. On failure `to` is left as it was found.
pub async fn restore(from: &Path, to: &Path, progress: &dyn Progress) -> anyhow::Result<Restored> {
    let manifest = Manifest::load(from)?;
    if files::is_within(to, from) {
        bail!(
            "--data-dir {} is inside the backup {}: restore elsewhere",
            to.display(),
            from.display()
        );
    }
    let backup_catalog = from.join(CATALOG);
    let file = backup_catalog.clone();
    let (bytes, sha256) = tokio::task::spawn_blocking(move || files::hash(&file))
        .await?
        .with_context(|| format!("cannot read {}", backup_catalog.display()))?;
    if (bytes, sha256.as_str()) != (manifest.catalog.bytes, manifest.catalog.sha256.as_str()) {
        bail!(
            "the backup's catalog {} is damaged: SHA-256 {sha256} ({bytes} bytes), backup.json \
             recorded {} ({} bytes)",
            backup_catalog.display(),
            manifest.catalog.sha256,
            manifest.catalog.bytes
        );
    }
    check_file(&backup_catalog).await?;
    let named = named_blobs(&backup_catalog).await?;
    let counts = (named.variants, named.blobs.len() as u64, named.bytes);
    let recorded = (manifest.variants, manifest.blobs, manifest.blob_bytes);
    if counts != recorded {
        bail!(
            "the backup's catalog names {} variants in {} blobs of {} bytes, backup.json \
             recorded {} in {} of {}: not the catalog of this backup",
            counts.0,
            counts.1,
            counts.2,
            recorded.0,
            recorded.1,
            recorded.2
        );
    }

    let out = FreshDir::take(to, "--data-dir")?;
    // No server may start on it before it is whole.
    let _lock = stores::lock_dir(out.path())?;
    progress.phase("catalog", 0);
    files::copy_file(&backup_catalog, &out.path().join(CATALOG))?;
    let root = out.path().join("blobs");
    let keys: Vec<&str> = named.blobs.iter().map(|b| b.key.as_str()).collect();
    progress.phase("placing blobs", keys.len() as u64);
    let placed = place_all(
        &Arc::new(Placer::default()),
        &from.join("blobs"),
        &root,
        &keys,
        progress,
    )
    .await?;
    if let Some((key, _)) = placed.iter().find(|(_, how)| *how == Placed::Missing) {
        bail!(
            "blob {key} is missing from the backup {}: the backup is damaged",
            from.display()
        );
    }
    verify(&root, &named.blobs, progress, "the backup is damaged").await?;
    for dir in [&root, &out.path().join("tmp")] {
        private_files::create_dir_all_blocking(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    files::sync_tree(out.path())?;
    out.keep();
    let linked = placed.iter().filter(|(_, p)| *p == Placed::Linked).count() as u64;
    Ok(Restored {
        copied: placed.len() as u64 - linked,
        linked,
        manifest,
    })
}
