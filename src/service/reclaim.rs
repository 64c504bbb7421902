//! Background reclaim: turns retired scopes and queued blob keys into freed
//! bytes. Purges and deletes only record what to free (so they answer at
//! once); this worker does the slow part, in batches, and picks up where it
//! left off after a restart because all its work lives in the catalog.

use std::time::Duration;

use futures::StreamExt;

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, ReclaimBacklog};

use super::VaultService;
use super::signal::Signal;

/// Records drained from a retired scope per transaction, and blobs deleted
/// per round: big enough to amortise a commit, small enough that a round
/// never holds the catalog's write lock for long.
const BATCH: u64 = 500;
/// Blob deletions in flight at once when a batch deletion failed and
/// reclaim finds the failing keys one by one.
const PARALLEL_DELETES: usize = 16;

/// Totals of one reclaim run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    pub records: u64,
    pub blobs: u64,
    pub failed_blobs: u64,
}

impl VaultService {
    /// Asks the reclaim worker to run now rather than at its next tick.
    pub fn reclaim_soon(&self) {
        self.reclaim_signal.wake();
    }

    pub fn reclaim_signal(&self) -> &Signal {
        &self.reclaim_signal
    }

    /// Runs reclaim until nothing is left (or only blobs whose deletion
    /// keeps failing, which stay queued for the next run), working at most
    /// `share` of the time.
    pub async fn reclaim_until_idle(&self, share: f64) -> anyhow::Result<ReclaimReport> {
        reclaim_with_share(self.catalog.as_ref(), self.blobs.as_ref(), share).await
    }

    pub async fn reclaim_backlog(&self) -> anyhow::Result<ReclaimBacklog> {
        self.catalog.reclaim_backlog().await
    }
}

/// Reclaims at full speed (an operator's `reclaim run`, fsck repairs).
pub async fn reclaim_until_idle(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
) -> anyhow::Result<ReclaimReport> {
    reclaim_with_share(catalog, blobs, 1.0).await
}

/// Reclaims in rounds, resting after each so that reclaim takes at most
/// `share` (0-1] of the time: purged bytes go steadily without taking the
/// disk and the catalog's write lock from serving and ingest.
pub async fn reclaim_with_share(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    share: f64,
) -> anyhow::Result<ReclaimReport> {
    let share = share.clamp(0.01, 1.0);
    let mut report = ReclaimReport::default();
    loop {
        let round = std::time::Instant::now();
        let drained = catalog.drain_retired_scope(BATCH).await?;
        report.records += drained;
        let keys = catalog.queued_blob_deletions(BATCH).await?;
        let done = match blobs.delete_many(&keys).await {
            Ok(()) => keys,
            Err(e) => {
                // Find the failing keys one by one, so that they stay queued
                // without holding back the rest of the batch.
                tracing::warn!(error = %format!("{e:#}"), "batch blob deletion failed; deleting one by one");
                delete_one_by_one(blobs, keys, &mut report).await
            }
        };
        catalog.forget_blob_deletions(&done).await?;
        report.blobs += done.len() as u64;
        if drained == 0 && done.is_empty() {
            return Ok(report);
        }
        if share < 1.0 {
            tokio::time::sleep(round.elapsed().mul_f64(1.0 / share - 1.0)).await;
        }
    }
}

async fn delete_one_by_one(
    blobs: &dyn BlobStore,
    keys: Vec<String>,
    report: &mut ReclaimReport,
) -> Vec<String> {
    let results: Vec<(String, anyhow::Result<()>)> = futures::stream::iter(keys)
        .map(|k| async move {
            let r = blobs.delete(&k).await;
            (k, r)
        })
        .buffer_unordered(PARALLEL_DELETES)
        .collect()
        .await;
    let mut done = Vec::with_capacity(results.len());
    for (key, r) in results {
        match r {
            Ok(()) => done.push(key),
            Err(e) => {
                report.failed_blobs += 1;
                tracing::warn!(blob = %key, error = %format!("{e:#}"), "cannot delete blob; will retry");
            }
        }
    }
    done
}

/// The worker loop: runs on wake-ups and at least every `interval`, using
/// at most `share` of the time.
pub async fn run_worker(service: VaultService, interval: Duration, share: f64) {
    loop {
        match service.reclaim_until_idle(share).await {
            Ok(r) if r.records + r.blobs > 0 => {
                tracing::info!(records = r.records, blobs = r.blobs, "reclaimed");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "reclaim run failed"),
        }
        tokio::select! {
            _ = service.reclaim_signal.wait() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
