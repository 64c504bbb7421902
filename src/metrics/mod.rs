//! Prometheus metrics (`--metrics-listen`): the recorder, the name and help
//! of every family, and the scrape handler.
//!
//! Code anywhere records through the `metrics` facade's macros, which do
//! nothing until [`install`] has set the recorder, so a server without
//! `--metrics-listen` pays for none of it. Figures that live in the catalog
//! (variants and bytes stored, the reclaim backlog, jobs by state) are read
//! when Prometheus scrapes, from the counters the catalog keeps, so no
//! background task has to keep them fresh and none scans media.

pub mod http;
pub mod names;
mod scrape;

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

pub use scrape::{Scrape, router};

use crate::stores::{BlobSpec, CatalogSpec, StoreSpec};

/// Histogram buckets for durations, in seconds: from a cached look-up
/// (well under a millisecond) to a large download or a slow upstream.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the build-info gauge says about this process.
pub struct BuildInfo {
    pub catalog: &'static str,
    pub blobs: &'static str,
}

impl BuildInfo {
    pub fn of(stores: &StoreSpec) -> Self {
        Self {
            catalog: match stores.catalog {
                CatalogSpec::Sqlite(_) => "sqlite",
                CatalogSpec::Postgres(_) => "postgres",
            },
            blobs: match stores.blobs {
                BlobSpec::Local(_) => "local",
                BlobSpec::S3(_) => "s3",
            },
        }
    }
}

/// How often histograms are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets until `stop`: the
/// recorder keeps samples until then, so memory would grow with traffic
/// on a server that nobody scrapes.
pub async fn run_upkeep(handle: PrometheusHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.cancelled() => return,
        }
    }
}

/// Handles of the unlabelled families recorded on every request or body
/// frame, registered once: a macro call looks its family up each time.
pub struct Handles {
    pub in_flight: Gauge,
    pub bytes_sent: Counter,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub connections_evicted: Counter,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The per-request handles, once [`install`] has run.
pub fn handles() -> Option<&'static Handles> {
    HANDLES.get()
}

/// Whether metrics are recorded (`--metrics-listen`).
pub fn enabled() -> bool {
    HANDLES.get().is_some()
}

/// One operation's series of a duration histogram (label `op`), as a
/// `static` at the place that times it ([`timer!`]): its handle is
/// registered on first use, so recording needs no look-up of the family.
pub struct Timer {
    family: &'static str,
    op: &'static str,
    handle: OnceLock<Histogram>,
}

impl Timer {
    pub const fn new(family: &'static str, op: &'static str) -> Self {
        Self {
            family,
            op,
            handle: OnceLock::new(),
        }
    }

    /// Records the time since `started` (nothing without `--metrics-listen`).
    pub fn record(&self, started: Instant) {
        if enabled() {
            self.handle
                .get_or_init(|| metrics::histogram!(self.family, "op" => self.op))
                .record(started.elapsed().as_secs_f64());
        }
    }

    /// Runs `work` and records its time.
    pub async fn time<T>(&self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        self.record(started);
        out
    }
}

/// The [`Timer`] of `family` and operation `op` at this call site.
macro_rules! timer {
    ($family:expr, $op:expr) => {{
        static TIMER: $crate::metrics::Timer = $crate::metrics::Timer::new($family, $op);
        &TIMER
    }};
}
pub(crate) use timer;

/// One labelled series of a counter family, as a `static` at the place
/// that counts it: its handle is registered on first use, so counting is
/// an atomic add, with no look-up of the family and its labels.
pub struct Series {
    family: &'static str,
    label: &'static str,
    value: &'static str,
    handle: OnceLock<Counter>,
}

impl Series {
    pub const fn new(family: &'static str, label: &'static str, value: &'static str) -> Self {
        Self {
            family,
            label,
            value,
            handle: OnceLock::new(),
        }
    }

    /// Adds `n` (nothing without `--metrics-listen`).
    pub fn increment(&self, n: u64) {
        if enabled() {
            self.handle
                .get_or_init(|| metrics::counter!(self.family, self.label => self.value))
                .increment(n);
        }
    }
}

/// Installs the process-wide recorder and describes every family. Call
/// once, before anything is recorded.
pub fn install(build: &BuildInfo) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    names::describe();
    let _ = HANDLES.set(Handles {
        in_flight: metrics::gauge!(names::HTTP_IN_FLIGHT),
        bytes_sent: metrics::counter!(names::HTTP_BYTES_SENT),
        connections_open: metrics::gauge!(names::HTTP_CONNECTIONS_OPEN),
        connections_refused: metrics::counter!(names::HTTP_CONNECTIONS_REFUSED),
        connections_evicted: metrics::counter!(names::HTTP_CONNECTIONS_EVICTED),
    });
    metrics::gauge!(
        names::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "catalog" => build.catalog,
        "blobs" => build.blobs,
    )
    .set(1.0);
    Ok(handle)
}
