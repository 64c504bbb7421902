//! Background reclaim: turns retired scopes and queued blob keys into freed
//! bytes. Purges and deletes only record what to free (so they answer at
//! once); this worker does the slow part, in batches, and picks up where it
//! left off after a restart because all its work lives in the catalog.

use std::time::Duration;

use futures::StreamExt;

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, ReclaimBacklog};

use tokio_util::sync::CancellationToken;

use metrics::counter;

use crate::metrics::names::{RECLAIM_FAILURES, RECLAIMED_BLOBS, RECLAIMED_RECORDS};

use super::VaultService;
use super::background::pause;
use super::signal::Signal;

/// Records drained from a retired scope per transaction, and blobs deleted
/// per round: big enough to amortise a commit, small enough that a round
/// never holds the catalog's write lock for long.
const BATCH: u64 = 500;
/// How long a blob whose deletion failed waits before the next try.
const RETRY_FAILED_MS: i64 = 60_000;
/// How soon leftover work is looked at again.
const LEFTOVER_RETRY: Duration = Duration::from_secs(5);
/// Blob deletions in flight at once when a batch deletion failed and
/// reclaim finds the failing keys one by one.
const PARALLEL_DELETES: usize = 16;

/// Totals of one reclaim run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    pub records: u64,
    pub blobs: u64,
    pub failed_blobs: u64,
    /// Erasure receipts made `bytes_gone`.
    pub receipts: u64,
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
    pub async fn reclaim_until_idle(
        &self,
        share: f64,
        stop: &CancellationToken,
    ) -> anyhow::Result<ReclaimReport> {
        reclaim_with_share(
            self.catalog.as_ref(),
            self.blobs.as_ref(),
            share,
            stop,
            &|_| {},
        )
        .await
    }

    pub async fn reclaim_backlog(&self) -> anyhow::Result<ReclaimBacklog> {
        self.catalog.reclaim_backlog().await
    }
}

/// Told the totals so far after each round (a progress display).
pub type OnRound<'a> = &'a (dyn Fn(&ReclaimReport) + Sync);

/// Reclaims at full speed (an operator's `reclaim run`, fsck repairs).
pub async fn reclaim_until_idle(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
) -> anyhow::Result<ReclaimReport> {
    reclaim_with_share(catalog, blobs, 1.0, &CancellationToken::new(), &|_| {}).await
}

/// [`reclaim_until_idle`], telling `on_round` how far it got.
pub async fn reclaim_reporting(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    on_round: OnRound<'_>,
) -> anyhow::Result<ReclaimReport> {
    reclaim_with_share(catalog, blobs, 1.0, &CancellationToken::new(), on_round).await
}

/// Reclaims in rounds, resting after each so that reclaim takes at most
/// `share` (0-1] of the time: purged bytes go steadily without taking the
/// disk and the catalog's write lock from serving and ingest.
///
/// `stop` is looked at between rounds only: a round ends by forgetting or
/// postponing every deletion it claimed, so stopping there leaves no claim
/// behind for other nodes to wait out.
pub async fn reclaim_with_share(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    share: f64,
    stop: &CancellationToken,
    on_round: OnRound<'_>,
) -> anyhow::Result<ReclaimReport> {
    let share = share.clamp(0.01, 1.0);
    let mut report = ReclaimReport::default();
    loop {
        let round = std::time::Instant::now();
        let drained = catalog.drain_retired_scope(BATCH).await?;
        report.records += drained;
        let keys = catalog.queued_blob_deletions(BATCH).await?;
        let done = match blobs.delete_many(&keys).await {
            Ok(()) => keys.clone(),
            Err(e) => {
                // Find the failing keys one by one, so that they stay queued
                // without holding back the rest of the batch.
                tracing::warn!(error = %format!("{e:#}"), "batch blob deletion failed; deleting one by one");
                delete_one_by_one(blobs, keys.clone(), &mut report).await
            }
        };
        catalog.forget_blob_deletions(&done).await?;
        if done.len() < keys.len() {
            let deleted: std::collections::HashSet<&String> = done.iter().collect();
            let failed: Vec<String> = keys
                .iter()
                .filter(|k| !deleted.contains(k))
                .cloned()
                .collect();
            catalog
                .postpone_blob_deletions(&failed, RETRY_FAILED_MS)
                .await?;
        }
        report.blobs += done.len() as u64;
        counter!(RECLAIMED_RECORDS).increment(drained);
        counter!(RECLAIMED_BLOBS).increment(done.len() as u64);
        counter!(RECLAIM_FAILURES).increment((keys.len() - done.len()) as u64);
        // Receipts whose last blob this round deleted are complete now. A
        // failure here holds back no deletion: the next round tries again.
        match super::receipts::finish_done(catalog).await {
            Ok(n) => report.receipts += n,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot finish erasure receipts"),
        }
        on_round(&report);
        if (drained == 0 && done.is_empty()) || stop.is_cancelled() {
            return Ok(report);
        }
        if share < 1.0 && !pause(stop, round.elapsed().mul_f64(1.0 / share - 1.0)).await {
            return Ok(report);
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
pub async fn run_worker(
    service: VaultService,
    interval: Duration,
    share: f64,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match service.reclaim_until_idle(share, &stop).await {
            Ok(r) if r.records + r.blobs > 0 => {
                tracing::info!(records = r.records, blobs = r.blobs, "reclaimed");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "reclaim run failed"),
        }
        // Work left that this run could not take (deletions claimed by
        // another node, perhaps one that died, or deletes that failed) is
        // looked at again soon rather than at the next tick.
        let left = service
            .reclaim_backlog()
            .await
            .is_ok_and(|b| b.queued_blobs + b.retired_scopes > 0);
        let wait = if left {
            interval.min(LEFTOVER_RETRY)
        } else {
            interval
        };
        tokio::select! {
            _ = service.reclaim_signal.wait() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::blobs::{BlobRead, ByteStream, LocalBlobStore, PutError, PutOutcome};
    use crate::catalog::sqlite::SqliteCatalog;
    use crate::catalog::{Accounts, Connections, NewStoredVariant, ReclaimQueue, UploadStore};
    use crate::model::{ConnectionId, MediaId, OrgName, VaultPlusSettings};

    const NOW: i64 = 1_800_000_000_000;

    /// A local store whose batch deletion can be made to fail, and one of
    /// whose keys cannot be deleted at all; counts the calls.
    struct Flaky {
        inner: LocalBlobStore,
        batch_fails: bool,
        stuck: Option<String>,
        batches: AtomicUsize,
        singles: AtomicUsize,
    }

    #[async_trait]
    impl BlobStore for Flaky {
        async fn ping(&self) -> anyhow::Result<()> {
            self.inner.ping().await
        }
        async fn put(
            &self,
            key: &str,
            body: ByteStream,
            limit: u64,
        ) -> Result<PutOutcome, PutError> {
            self.inner.put(key, body, limit).await
        }
        async fn get(
            &self,
            key: &str,
            range: Option<(u64, u64)>,
        ) -> anyhow::Result<Option<BlobRead>> {
            self.inner.get(key, range).await
        }
        async fn delete(&self, key: &str) -> anyhow::Result<()> {
            self.singles.fetch_add(1, Ordering::SeqCst);
            if self.stuck.as_deref() == Some(key) {
                anyhow::bail!("{key} cannot be deleted");
            }
            self.inner.delete(key).await
        }
        async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            if self.batch_fails {
                anyhow::bail!("batch deletion failed");
            }
            for k in keys {
                self.inner.delete(k).await?;
            }
            Ok(())
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

    /// A catalog with `n` stored variants of one connection, purged: `n`
    /// blobs to reclaim. Returns the blob keys too.
    async fn purged(
        dir: &std::path::Path,
        blobs: &LocalBlobStore,
        n: usize,
    ) -> (Arc<SqliteCatalog>, Vec<String>) {
        let c = Arc::new(
            SqliteCatalog::open(&dir.join("catalog.sqlite"))
                .await
                .unwrap(),
        );
        let org = c
            .ensure_org(
                &OrgName::parse("a").unwrap(),
                &VaultPlusSettings::default(),
                true,
                NOW,
            )
            .await
            .unwrap()
            .0;
        let id = ConnectionId::parse("conn_a").unwrap();
        c.insert_connection(org.id, &id, true, NOW).await.unwrap();
        let scope = c.connection(org.id, &id).await.unwrap().unwrap().scope_id;
        let mut keys = Vec::new();
        for i in 0..n {
            let key = format!("{scope}/{}", uuid::Uuid::new_v4().simple());
            let body = futures::stream::iter([Ok(Bytes::from_static(b"bytes"))]).boxed();
            blobs.put(&key, body, 100).await.unwrap();
            c.begin_upload(scope, &key, NOW).await.unwrap();
            c.commit_upload(&NewStoredVariant {
                scope_id: scope,
                media_id: MediaId::parse(&i.to_string()).unwrap(),
                label: "full".into(),
                content_type: "image/jpeg".into(),
                size_bytes: 5,
                checksum: "00".repeat(32),
                blob_key: key.clone(),
                duration: None,
                now: NOW,
                limit: None,
            })
            .await
            .unwrap();
            keys.push(key);
        }
        c.purge_connection(org.id, &id, NOW + 1).await.unwrap();
        (c, keys)
    }

    #[tokio::test]
    async fn reclaim_deletes_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBlobStore::open(dir.path()).await.unwrap();
        let (catalog, _) = purged(dir.path(), &local, 12).await;
        let blobs = Flaky {
            inner: local,
            batch_fails: false,
            stuck: None,
            batches: AtomicUsize::new(0),
            singles: AtomicUsize::new(0),
        };
        let r = reclaim_until_idle(catalog.as_ref(), &blobs).await.unwrap();
        assert!(r.records > 0);
        assert_eq!((r.blobs, r.failed_blobs), (12, 0));
        assert!(blobs.batches.load(Ordering::SeqCst) >= 1);
        assert_eq!(blobs.singles.load(Ordering::SeqCst), 0);
        assert!(blobs.list().await.unwrap().is_empty());
        assert_eq!(
            catalog.reclaim_backlog().await.unwrap(),
            ReclaimBacklog::default()
        );
    }

    /// A failed batch falls back to one by one: every deletable blob goes,
    /// and only the one that cannot be deleted stays queued.
    #[tokio::test]
    async fn a_failed_batch_holds_back_only_the_failing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBlobStore::open(dir.path()).await.unwrap();
        let (catalog, keys) = purged(dir.path(), &local, 12).await;
        let blobs = Flaky {
            inner: local,
            batch_fails: true,
            stuck: Some(keys[3].clone()),
            batches: AtomicUsize::new(0),
            singles: AtomicUsize::new(0),
        };
        let r = reclaim_until_idle(catalog.as_ref(), &blobs).await.unwrap();
        // The stuck key is tried once, then put behind the queue.
        assert_eq!(r.failed_blobs, 1);
        assert_eq!(r.blobs, 11);
        assert_eq!(blobs.list().await.unwrap(), vec![(keys[3].clone(), 5)]);
        assert_eq!(catalog.reclaim_backlog().await.unwrap().queued_blobs, 1);

        // The store recovers; the failed key waits out its delay (not
        // retried at once), then the next run frees it. (Moving it back to
        // now stands in for the minute passing.)
        let blobs = Flaky {
            batch_fails: false,
            stuck: None,
            ..blobs
        };
        let r = reclaim_until_idle(catalog.as_ref(), &blobs).await.unwrap();
        assert_eq!((r.blobs, r.failed_blobs), (0, 0));
        catalog
            .postpone_blob_deletions(&[keys[3].clone()], -1)
            .await
            .unwrap();
        let r = reclaim_until_idle(catalog.as_ref(), &blobs).await.unwrap();
        assert_eq!((r.blobs, r.failed_blobs), (1, 0));
        assert!(blobs.list().await.unwrap().is_empty());
        assert_eq!(
            catalog.reclaim_backlog().await.unwrap(),
            ReclaimBacklog::default()
        );
    }
}
