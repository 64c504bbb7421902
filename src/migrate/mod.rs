//! `vaultplus migrate`: moves an embedded installation (a data directory)
//! into a cluster's PostgreSQL catalog and blob store. Bytes first, each
//! verified against its recorded SHA-256; then the catalog rows, so a
//! variant never arrives before its bytes. Every step can be repeated, so an
//! interrupted run is resumed by running the command again; a small state
//! file in the data directory remembers where it stopped and which target
//! it was for.

pub mod blobs;
pub mod rows;
mod state;

use std::path::Path;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::blobs::{BlobStore, LocalBlobStore};
use crate::stores::{self, CatalogSpec, OpenOptions, StoreSpec};

use state::State;

/// Blobs copied at once (each a stream; S3 latency dominates).
const PARALLEL_BLOBS: usize = 8;

/// Where the copy stands, for a progress display.
pub trait Progress: Sync {
    fn phase(&self, name: &str, total: u64);
    fn advance(&self, n: u64);
    fn finish(&self, summary: &str);
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub blobs_written: u64,
    pub blobs_present: u64,
    pub bytes_verified: u64,
    /// (table, rows in the source, rows in the target) after the copy.
    pub tables: Vec<(String, u64, u64)>,
    pub already_done: bool,
}

pub async fn migrate(
    from: &Path,
    to: &StoreSpec,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let CatalogSpec::Postgres(url) = &to.catalog else {
        bail!("--to must be a postgres:// URL");
    };
    let source_db = from.join("catalog.sqlite");
    if !source_db.exists() {
        bail!("{} holds no vaultplus catalog", from.display());
    }
    // No server may change the source while it is copied.
    let _lock = stores::lock_dir(from)?;
    let src = open_source(&source_db).await?;
    let source_blobs = LocalBlobStore::open(from).await?;
    // Opening the target applies its migrations (under their lock).
    let target = stores::open(to, OpenOptions::COMMAND).await?;
    let pg = PgPool::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", stores::redact(url)))?;

    let mut state = State::load_or_start(from, to, &pg).await?;
    let mut report = Report {
        already_done: state.done,
        ..Report::default()
    };
    if !state.done {
        copy_blobs(
            &src,
            &source_blobs,
            target.blobs.as_ref(),
            &mut state,
            &mut report,
            progress,
        )
        .await?;
        copy_rows(&src, &pg, progress).await?;
        state.done = true;
        state.save()?;
    }
    report.tables = verify_rows(&src, &pg).await?;
    for (table, source, target) in &report.tables {
        if source != target {
            bail!("table {table}: {source} rows in the source, {target} in the target");
        }
    }
    Ok(report)
}

async fn open_source(file: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::new().filename(file).read_only(true);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open {}", file.display()))
}

async fn copy_blobs(
    src: &SqlitePool,
    from: &LocalBlobStore,
    to: &dyn BlobStore,
    state: &mut State,
    report: &mut Report,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let (_, total_bytes) = blobs::totals(src).await?;
    progress.phase("blobs (bytes)", total_bytes);
    loop {
        let page = blobs::page(src, &state.blobs_after).await?;
        let Some(last) = page.last() else { break };
        let last = last.key.clone();
        let outcomes: Vec<(blobs::Copied, u64)> = futures::stream::iter(&page)
            .map(|b| async move {
                let copied = blobs::copy_one(from, to, b).await?;
                progress.advance(b.size);
                anyhow::Ok((copied, b.size))
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        for (copied, size) in outcomes {
            match copied {
                blobs::Copied::Written => report.blobs_written += 1,
                blobs::Copied::Present => report.blobs_present += 1,
            }
            report.bytes_verified += size;
        }
        // Only a page wholly copied moves the resume point.
        state.blobs_after = last;
        state.save()?;
    }
    progress.finish(&format!(
        "blobs: {} written, {} already there, {} bytes",
        report.blobs_written, report.blobs_present, report.bytes_verified
    ));
    Ok(())
}

async fn copy_rows(src: &SqlitePool, pg: &PgPool, progress: &dyn Progress) -> anyhow::Result<()> {
    let mut total = 0;
    for t in rows::TABLES {
        total += rows::count(src, t).await?;
    }
    progress.phase("catalog rows", total);
    for t in rows::TABLES {
        rows::copy_table(src, pg, t, &|n| progress.advance(n)).await?;
    }
    rows::advance_sequences(pg).await?;
    progress.finish(&format!("catalog: {total} rows"));
    Ok(())
}

async fn verify_rows(src: &SqlitePool, pg: &PgPool) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let mut out = Vec::new();
    for t in rows::TABLES {
        let source = rows::count(src, t).await?;
        let sql = format!("SELECT COUNT(*) FROM {}", t.name);
        let target: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pg)
            .await?;
        out.push((t.name.to_owned(), source, target as u64));
    }
    Ok(out)
}
