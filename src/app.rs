//! Wiring: a data directory becomes a catalog, a blob store, a service, its
//! background workers, and a listening server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::blobs::{BlobStore, LocalBlobStore};
use crate::catalog::Catalog;
use crate::catalog::sqlite::SqliteCatalog;
use crate::model::time::now_ms;
use crate::service::pipeline::{self, PipelineConfig};
use crate::service::{ServiceConfig, VaultService, admin, keyring, reclaim, retention};
use crate::upstream::UpstreamClient;

/// How often batched access counts are written.
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct Stores {
    pub catalog: Arc<dyn Catalog>,
    pub blobs: Arc<dyn BlobStore>,
}

/// Opens the embedded stores of a data directory, creating it if needed.
pub async fn open_data_dir(dir: &Path) -> anyhow::Result<Stores> {
    open_data_dir_with(dir, 0).await
}

/// As [`open_data_dir`], keeping up to `blob_cache` bytes of small blobs in
/// memory (the server; the CLI needs none).
pub async fn open_data_dir_with(dir: &Path, blob_cache: u64) -> anyhow::Result<Stores> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let catalog = SqliteCatalog::open(&dir.join("catalog.sqlite")).await?;
    let blobs = LocalBlobStore::open(dir)
        .await?
        .with_memory_cache(blob_cache);
    Ok(Stores {
        catalog: Arc::new(catalog),
        blobs: Arc::new(blobs),
    })
}

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: String,
    pub public_url: Option<String>,
    pub max_upload_bytes: u64,
    pub min_free_bytes: u64,
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
}

/// Takes the data directory for this server alone: its start-up recovery
/// (upload intents, job leases, temporary files) assumes no other server
/// works on the same directory. The lock lives as long as the file.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        anyhow::anyhow!(
            "another vaultplus server is running on {} (one server per data directory; the CLI may run beside it)",
            dir.display()
        )
    })?;
    Ok(file)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let stores = open_data_dir_with(&opts.data_dir, opts.blob_cache_bytes).await?;
    let _lock = lock_data_dir(&opts.data_dir)?;
    LocalBlobStore::open(&opts.data_dir)
        .await?
        .clean_tmp()
        .await?;
    if let Some(key) = admin::bootstrap(stores.catalog.as_ref()).await? {
        println!(
            "Created organization \"{}\". Its ACCOUNT API key, shown only this once:\n{key}",
            admin::DEFAULT_ORG
        );
    }
    // One server owns an embedded data directory, so upload intents left in
    // it belong to a process that is gone: their blobs are reclaimed.
    let orphans = stores.catalog.requeue_upload_intents(now_ms() + 1).await?;
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "uploads interrupted by a previous stop will be reclaimed"
        );
    }
    // Likewise, leases on storing jobs belong to its workers of before.
    let released = stores.catalog.release_all_leases().await?;
    if released > 0 {
        tracing::warn!(
            released,
            "storing jobs interrupted by a previous stop resume now"
        );
    }
    let signer = keyring::signer(stores.catalog.as_ref()).await?;

    let listener = TcpListener::bind(&opts.listen)
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
        },
    );
    if let Some((url, key)) = &opts.upstream {
        service = service.with_upstream(UpstreamClient::new(url, key)?);
        tracing::info!(upstream = %url, "media is fetched from the upstream");
    }
    tokio::spawn(reclaim::run_worker(
        service.clone(),
        opts.reclaim_interval,
        opts.reclaim_share,
    ));
    tokio::spawn(pipeline::run_pipeline(
        service.clone(),
        opts.pipeline.clone(),
    ));
    tokio::spawn(flush_access_counts(service.clone()));
    tokio::spawn(keyring::run_reloader(service.clone(), opts.key_reload));
    tokio::spawn(retention::run_worker(service.clone(), opts.sweep_interval));

    println!("vaultplus listening on http://{addr} (public URL {public_url})");
    tracing::info!(%addr, data_dir = %opts.data_dir.display(), "serving");
    // Without TCP_NODELAY, a small response whose head and body leave in two
    // writes waits on the client's delayed ACK (about 40 ms a request).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, crate::http::router(service.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Counts gathered since the last flush are written before exit.
    service.access().flush(stores.catalog.as_ref()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn flush_access_counts(service: VaultService) {
    let mut tick = tokio::time::interval(ACCESS_FLUSH_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = service.access().flush(service.catalog().as_ref()).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot write access counts; will retry");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
