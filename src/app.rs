//! Wiring: stores (a data directory, or a cluster's database and bucket)
//! become a service, its background workers, and a listening server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::blobs::LocalBlobStore;
use crate::catalog::Catalog;
use crate::http::server::{self, ServerConfig, Timeouts, limits};
use crate::metrics;
use crate::model::time::now_ms;
use crate::service::background::{Background, pause};
use crate::service::pipeline::{self, PipelineConfig};
use crate::service::secret_box::SecretBox;
use crate::service::throttle::RateLimitConfig;
use crate::service::webhook_delivery;
use crate::service::webhooks::WebhookConfig;
use crate::service::{ServiceConfig, VaultService, admin, keyring, rate_limit, reclaim, retention};
use crate::stores::{self, BlobSpec, OpenOptions, StoreSpec};
use crate::upstream::UpstreamClient;

/// Database connections of a server (a command uses fewer).
const SERVER_POOL: u32 = 16;
/// Longest pause between two looks for stale uploads on a cluster.
const STALE_INTENT_CHECK: Duration = Duration::from_secs(600);

/// How long a stopping server waits for catalog connections to come back.
const CATALOG_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How often batched access counts are written.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// No `Debug`: it holds the upstream API key.
#[derive(Clone)]
pub struct ServeOptions {
    pub stores: StoreSpec,
    pub listen: String,
    /// Where Prometheus scrapes `/metrics` (None: no metrics recorded).
    pub metrics_listen: Option<String>,
    pub public_url: Option<String>,
    pub max_upload_bytes: u64,
    pub min_free_bytes: u64,
    /// Uploads one connection may have in progress at once.
    pub max_uploads_per_connection: usize,
    /// The master key that URL signing secrets are sealed with, if any.
    pub secrets: SecretBox,
    /// Memory for small blobs served often (0: none).
    pub blob_cache_bytes: u64,
    pub reclaim_interval: Duration,
    /// Largest share of the time the background reclaim may work.
    pub reclaim_share: f64,
    /// Base URL and API key of the upstream Access API, if media is to be
    /// fetched from one.
    pub upstream: Option<(String, String)>,
    pub pipeline: PipelineConfig,
    /// How often signing keys are re-read (rotations by other processes).
    pub key_reload: Duration,
    /// How often retention policies are applied to every connection.
    pub sweep_interval: Duration,
    /// On a cluster: age after which an unfinished upload is taken for dead.
    pub stale_upload: Duration,
    /// Timeouts on clients, and the connection cap (None: derived from the
    /// open-file limit).
    pub timeouts: Timeouts,
    pub max_connections: Option<usize>,
    pub rate_limits: RateLimitConfig,
    /// On SIGTERM or SIGINT: how long responses in progress may take to
    /// finish, and then the background workers to end their last step.
    pub shutdown_grace: Duration,
    /// Webhook registration rules and delivery timing.
    pub webhooks: WebhookConfig,
}

/// The exit status after a second stop signal cut the graceful stop short
/// (as a shell reports a process ended by SIGINT).
pub const FORCED_EXIT: i32 = 130;

/// Runs the server until SIGINT or SIGTERM, then stops cleanly: no new
/// connections, responses in progress finish (for the grace at most),
/// workers end their step and give back what they claimed, access counts
/// are written and the catalog closed. A second signal exits at once.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    // Before any file is opened: the cap below is derived from the limit.
    let nofile = limits::raise_nofile_limit();
    let max_connections = opts
        .max_connections
        .unwrap_or_else(|| limits::default_max_connections(nofile));
    // Before anything records: the macros do nothing until then.
    let metrics = opts
        .metrics_listen
        .as_ref()
        .map(|_| metrics::install(&metrics::BuildInfo::of(&opts.stores)))
        .transpose()?;
    let stores = stores::open(
        &opts.stores,
        OpenOptions {
            pool_size: SERVER_POOL,
            blob_cache_bytes: opts.blob_cache_bytes,
        },
    )
    .await?;
    let _locks = opts
        .stores
        .exclusive_dirs()
        .into_iter()
        .map(stores::lock_dir)
        .collect::<anyhow::Result<Vec<_>>>()?;
    stores::tighten_modes(&opts.stores);
    // Before anything else changes: a missing or wrong master key stops
    // the start here.
    let signer = keyring::signer(stores.catalog.as_ref(), &opts.secrets).await?;
    if let BlobSpec::Local(dir) = &opts.stores.blobs {
        LocalBlobStore::open(dir).await?.clean_tmp().await?;
    }
    if let Some(key) = admin::bootstrap(stores.catalog.as_ref()).await? {
        println!(
            "Created organization \"{}\". Its ACCOUNT API key, shown only this once:\n{key}",
            admin::DEFAULT_ORG
        );
    }
    if !opts.stores.single_server() && matches!(opts.stores.blobs, BlobSpec::Local(_)) {
        // Legitimate for one node; with several, each would hold bytes the
        // others cannot serve or reclaim.
        tracing::warn!(
            "the catalog is shared (PostgreSQL) but blobs are in a local directory: run a single node, or give every node --blobs s3://..."
        );
    }
    let background = Background::new();
    if opts.stores.single_server() {
        recover_single_server(stores.catalog.as_ref()).await?;
    } else {
        // Other nodes may be mid-upload or mid-fetch: only intents older
        // than any upload could take are given up, periodically.
        let (catalog, stale) = (stores.catalog.clone(), opts.stale_upload);
        background.spawn(|stop| requeue_stale_intents(catalog, stale, stop));
    }

    let listener = listen(&opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let public_url = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let mut service = VaultService::new(
        stores.catalog.clone(),
        stores.blobs.clone(),
        signer,
        ServiceConfig {
            public_url: public_url.clone(),
            max_upload_bytes: opts.max_upload_bytes,
            min_free_bytes: opts.min_free_bytes,
            rate_limits: opts.rate_limits.clone(),
            max_uploads_per_connection: opts.max_uploads_per_connection,
            secrets: opts.secrets.clone(),
            webhooks: opts.webhooks.clone(),
        },
    );
    if let Some((url, key)) = &opts.upstream {
        service = service.with_upstream(UpstreamClient::new(url, key)?);
        tracing::info!(upstream = %url, "media is fetched from the upstream");
    }
    // From here on this node answers look-ups from memory, and every
    // revocation on any node waits for it (docs/cluster-coherence.md).
    stores.catalog.hold_lease().await?;
    let svc = || service.clone();
    let (interval, share) = (opts.reclaim_interval, opts.reclaim_share);
    background.spawn(|stop| reclaim::run_worker(svc(), interval, share, stop));
    let pipeline_config = opts.pipeline.clone();
    background.spawn(|stop| pipeline::run_pipeline(svc(), pipeline_config, stop));
    background.spawn(|stop| flush_access_counts(svc(), stop));
    let key_reload = opts.key_reload;
    background.spawn(|stop| keyring::run_reloader(svc(), key_reload, stop));
    let sweep = opts.sweep_interval;
    background.spawn(|stop| retention::run_worker(svc(), sweep, stop));
    background.spawn(|stop| prune_rate_limits(svc(), stop));
    background.spawn(|stop| webhook_delivery::run(svc(), stop));

    let server_config = ServerConfig {
        timeouts: opts.timeouts,
        max_connections,
        metrics: metrics.is_some(),
        shutdown_grace: opts.shutdown_grace,
    };
    // Its own address, so that scraping needs no API key and the API port
    // answers no metrics to the public; the same connection limits apply.
    let stop_metrics = CancellationToken::new();
    let metrics_server = match (&opts.metrics_listen, metrics) {
        (Some(at), Some(handle)) => {
            let listener = listen(at)
                .await
                .with_context(|| format!("cannot listen on {at} (--metrics-listen)"))?;
            println!(
                "vaultplus metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let upkeep = handle.clone();
            let router = metrics::router(metrics::Scrape {
                handle,
                catalog: stores.catalog.clone(),
                blobs: stores.blobs.clone(),
                min_free_bytes: opts.min_free_bytes,
                reserved_bytes: {
                    let service = service.clone();
                    Arc::new(move || service.reserved_bytes())
                },
            });
            let config = ServerConfig {
                metrics: false,
                ..server_config
            };
            let stop = stop_metrics.clone();
            Some(tokio::spawn(async move {
                tokio::join!(
                    server::serve(listener, router, config, stop.clone().cancelled_owned()),
                    metrics::run_upkeep(upkeep, stop),
                );
            }))
        }
        _ => None,
    };
    println!("vaultplus listening on http://{addr} (public URL {public_url})");
    tracing::info!(
        %addr,
        stores = %opts.stores.describe(),
        max_connections,
        open_files = nofile,
        "serving"
    );
    let workers = background.stop_token();
    let mut signals = StopSignals::new().context("cannot watch SIGINT and SIGTERM")?;
    let stopping = async move {
        signals.next().await;
        // The workers stop while the responses in progress finish.
        workers.cancel();
        tokio::spawn(async move {
            signals.next().await;
            tracing::warn!("second stop signal: exiting at once");
            std::process::exit(FORCED_EXIT);
        });
    };
    server::serve(
        listener,
        crate::http::router(service.clone()),
        server_config,
        stopping,
    )
    .await;
    stop_metrics.cancel();
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    if !background.stop(opts.shutdown_grace).await {
        tracing::warn!("background work still running after the grace is cut");
    }
    // Counts gathered since the last flush are written before exit.
    service.access().flush(stores.catalog.as_ref()).await?;
    // Bounded: a response or task still running past the grace may hold a
    // connection, and closing waits for every one to come back.
    if tokio::time::timeout(CATALOG_CLOSE_WAIT, stores.catalog.close())
        .await
        .is_err()
    {
        tracing::warn!("catalog connections still in use at exit");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections the kernel may hold for the accept loop (capped by
/// `net.core.somaxconn`): a burst of connects beyond the backlog is
/// dropped or answered with SYN cookies before the server sees it, so the
/// cap and eviction could not make room for it.
const LISTEN_BACKLOG: u32 = 4096;

async fn listen(addr: &str) -> anyhow::Result<TcpListener> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("the address resolves to nothing")?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

/// Start-up recovery of the only server on an embedded catalog: upload
/// intents, job leases and webhook delivery leases left in it belong to a
/// process that is gone.
async fn recover_single_server(catalog: &dyn Catalog) -> anyhow::Result<()> {
    let orphans = catalog.requeue_upload_intents(now_ms() + 1).await?;
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "uploads interrupted by a previous stop will be reclaimed"
        );
    }
    let released = catalog.release_all_leases().await?;
    if released > 0 {
        tracing::warn!(
            released,
            "storing jobs interrupted by a previous stop resume now"
        );
    }
    let released = catalog.release_webhook_leases().await?;
    if released > 0 {
        tracing::warn!(
            released,
            "webhook deliveries interrupted by a previous stop are sent again"
        );
    }
    Ok(())
}

/// In a cluster, the blob of an upload or fetch whose node died is found by
/// age: an intent older than `stale` is taken to have no writer left. A
/// commit after that is refused, so a live upload that runs longer fails
/// cleanly (409) rather than losing bytes: `stale` must exceed the longest
/// upload.
async fn requeue_stale_intents(
    catalog: Arc<dyn Catalog>,
    stale: Duration,
    stop: CancellationToken,
) {
    let every = STALE_INTENT_CHECK
        .min(stale / 4)
        .max(Duration::from_secs(1));
    // At start too: a node that died long ago may have left some.
    loop {
        let before = now_ms() - stale.as_millis() as i64;
        match catalog.requeue_upload_intents(before).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "uploads abandoned by a stopped node will be reclaimed"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot requeue stale uploads"),
        }
        if !pause(&stop, every).await {
            return;
        }
    }
}

async fn prune_rate_limits(service: VaultService, stop: CancellationToken) {
    while pause(&stop, rate_limit::PRUNE_EVERY).await {
        service.prune_rate_limits();
    }
}

/// Stops between flushes only: counts taken from memory are always
/// written (or put back), and the last ones are flushed after the stop.
async fn flush_access_counts(service: VaultService, stop: CancellationToken) {
    while pause(&stop, ACCESS_FLUSH_EVERY).await {
        if let Err(e) = service.access().flush(service.catalog().as_ref()).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot write access counts; will retry");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    match StopSignals::new() {
        Ok(mut signals) => signals.next().await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch stop signals; stop with SIGKILL");
            std::future::pending().await
        }
    }
}

/// SIGINT and SIGTERM, watched from creation on: a second signal that
/// arrives while the first is being handled is not missed.
pub struct StopSignals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
