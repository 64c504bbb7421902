//! `GET /metrics`: the catalog's figures read now, then everything
//! rendered in the Prometheus text format.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;

use super::names;
use crate::blobs::BlobStore;
use crate::catalog::Catalog;
use crate::model::time::now_ms;

/// What a scrape reads besides the recorder.
#[derive(Clone)]
pub struct Scrape {
    pub handle: PrometheusHandle,
    pub catalog: Arc<dyn Catalog>,
    pub blobs: Arc<dyn BlobStore>,
    pub min_free_bytes: u64,
    /// Bytes reserved by writes in progress (the service's space ledger).
    pub reserved_bytes: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// The metrics listener's routes: `/metrics` only.
pub fn router(scrape: Scrape) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(scrape)
}

async fn metrics(State(s): State<Scrape>) -> Response {
    refresh(&s).await;
    let mut res = s.handle.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Sets the gauges whose truth is in the stores. A figure that cannot be
/// read keeps its last value and counts a scrape error: a dashboard then
/// shows a flat line and the error rate, not a drop to zero.
async fn refresh(s: &Scrape) {
    let mut failed = false;
    match s.catalog.store_totals().await {
        Ok(t) => set(&[
            (names::STORED_VARIANTS, t.stored_count),
            (names::STORED_BYTES, t.stored_bytes),
            (names::LIVE_VARIANTS, t.live_count),
        ]),
        Err(e) => failed = warn("store totals", &e),
    }
    match s.catalog.reclaim_backlog().await {
        Ok(b) => set(&[
            (names::RECLAIM_RETIRED_SCOPES, b.retired_scopes),
            (names::RECLAIM_RETIRED_VARIANTS, b.retired_variants),
            (names::RECLAIM_RETIRED_BYTES, b.retired_bytes),
            (names::RECLAIM_QUEUED_BLOBS, b.queued_blobs),
        ]),
        Err(e) => failed = warn("reclaim backlog", &e),
    }
    match s.blobs.free_bytes().await {
        Ok(Some(free)) => set(&[(names::BLOB_STORE_FREE_BYTES, free)]),
        Ok(None) => {}
        Err(e) => failed = warn("blob store free space", &e),
    }
    set(&[
        (names::BLOB_STORE_MIN_FREE_BYTES, s.min_free_bytes),
        (names::BLOB_STORE_RESERVED_BYTES, (s.reserved_bytes)()),
    ]);
    match s.catalog.job_counts(now_ms()).await {
        Ok(j) => {
            for (state, n) in [
                ("waiting", j.waiting),
                ("running", j.running),
                ("failed", j.failed),
            ] {
                gauge!(names::JOBS, "state" => state).set(n as f64);
            }
        }
        Err(e) => failed = warn("storing jobs", &e),
    }
    for p in s.catalog.pool_stats() {
        gauge!(names::CATALOG_POOL_CONNECTIONS, "pool" => p.pool, "state" => "in_use")
            .set(f64::from(p.in_use));
        gauge!(names::CATALOG_POOL_CONNECTIONS, "pool" => p.pool, "state" => "idle")
            .set(f64::from(p.idle));
        gauge!(names::CATALOG_POOL_MAX, "pool" => p.pool).set(f64::from(p.max));
    }
    if failed {
        counter!(names::SCRAPE_ERRORS).increment(1);
    }
}

fn set(gauges: &[(&'static str, u64)]) {
    for &(name, value) in gauges {
        gauge!(name).set(value as f64);
    }
}

fn warn(what: &str, e: &anyhow::Error) -> bool {
    tracing::warn!(error = %format!("{e:#}"), "metrics: cannot read the {what}");
    true
}
