//! Retention with effect: `retentionDays`, `accessExpiryDays` and
//! `storageLimitBytes` evict variants (bytes deleted, record kept as
//! `removed`), from a periodic sweep over every connection. Storage limits
//! also act at store time, in the storing transaction.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, Connection, Org, ScopeId};
use crate::model::VaultPlusSettings;
use crate::model::time::{DAY_MS, now_ms};

use super::VaultService;

/// Variants evicted per transaction.
const BATCH: u64 = 500;
const PAGE: u64 = 500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub connections: u64,
    pub evicted: u64,
    pub freed_bytes: u64,
}

fn effective(org: &Org, c: &Connection) -> VaultPlusSettings {
    match &c.overrides {
        Some(o) => org.default_settings.with(o),
        None => org.default_settings.clone(),
    }
}

/// Applies one connection's policies as of `now` (epoch ms).
pub async fn sweep_scope(
    catalog: &dyn Catalog,
    scope: ScopeId,
    s: &VaultPlusSettings,
    now: i64,
) -> anyhow::Result<(u64, u64)> {
    let mut total = (0, 0);
    let stored_before = (s.retention_days > 0).then(|| now - s.retention_days as i64 * DAY_MS);
    let accessed_before =
        (s.access_expiry_days > 0).then(|| now - s.access_expiry_days as i64 * DAY_MS);
    if stored_before.is_some() || accessed_before.is_some() {
        loop {
            let (n, bytes) = catalog
                .evict_expired(scope, stored_before, accessed_before, BATCH, now_ms())
                .await?;
            total = (total.0 + n, total.1 + bytes);
            if n < BATCH {
                break;
            }
        }
    }
    if let Some(limit) = s.storage_limit() {
        let (n, bytes) = catalog
            .enforce_storage_limit(scope, limit, now_ms())
            .await?;
        total = (total.0 + n, total.1 + bytes);
    }
    Ok(total)
}

/// One pass over every connection of every organization.
pub async fn sweep(catalog: &dyn Catalog, now: i64) -> anyhow::Result<SweepReport> {
    sweep_reporting(catalog, now, &|_| {}).await
}

/// [`sweep`], telling `on_connection` the totals after each connection (a
/// progress display).
pub async fn sweep_reporting(
    catalog: &dyn Catalog,
    now: i64,
    on_connection: &(dyn Fn(&SweepReport) + Sync),
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    for org in catalog.list_orgs().await? {
        let mut offset = 0;
        loop {
            let page = catalog.list_connections(org.id, offset, PAGE).await?;
            for c in &page {
                report.connections += 1;
                let (n, bytes) = sweep_scope(catalog, c.scope_id, &effective(&org, c), now).await?;
                report.evicted += n;
                report.freed_bytes += bytes;
                on_connection(&report);
            }
            if (page.len() as u64) < PAGE {
                break;
            }
            offset += PAGE;
        }
    }
    Ok(report)
}

/// The periodic sweep of a server.
pub async fn run_worker(service: VaultService, every: Duration, stop: CancellationToken) {
    // A sweep under way finishes (each eviction is its own transaction);
    // the stop is looked at between sweeps.
    while super::background::pause(&stop, every).await {
        match sweep(service.catalog().as_ref(), now_ms()).await {
            Ok(r) if r.evicted > 0 => {
                tracing::info!(
                    evicted = r.evicted,
                    freed_bytes = r.freed_bytes,
                    "retention sweep"
                );
                service.reclaim_soon();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "retention sweep failed"),
        }
    }
}
