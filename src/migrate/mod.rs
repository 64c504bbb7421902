//! `vaultplus migrate`: moves an embedded installation (a data directory)
//! into a cluster's PostgreSQL catalog and blob store. Bytes first, each
//! verified against its recorded SHA-256; then the catalog rows, in one
//! transaction, so a variant never arrives before its bytes and the target
//! never holds half a catalog. An interrupted run is resumed by running the
//! command again: blobs the target already holds whole are kept (only
//! verified bytes are ever written), the rest are copied, and the rows are
//! copied afresh. A small state file in the data directory remembers which
//! target the migration is for, and whether it finished.

pub mod blobs;
mod fingerprint;
pub mod rows;
mod state;

use std::collections::HashMap;
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

pub use crate::progress::Progress;

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
    // An unfinished erasure receipt waits for blobs and a retired scope
    // that are not moved: copied, it would finish without them, or
    // dropped, an ID handed out would be lost. Reclaim finishes it here.
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM receipts WHERE bytes_gone_at IS NULL")
            .fetch_one(&src)
            .await?;
    if unfinished > 0 {
        bail!(
            "{unfinished} erasure receipts of {} are not finished yet (their bytes are still \
             being reclaimed): run `vaultplus reclaim run --data-dir {}` first, then migrate",
            from.display(),
            from.display()
        );
    }
    let source_blobs = LocalBlobStore::open(from).await?;
    // Opening the target applies its migrations (under their lock).
    let target = stores::open(to, OpenOptions::COMMAND).await?;
    let pg = PgPool::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", stores::redact(url)))?;

    let mut state = State::load_or_start(from, to)?;
    let source_now = fingerprint::source(&src).await?;
    let unchanged = state.done && state.source.as_deref() == Some(source_now.as_str());
    let mut report = Report {
        already_done: unchanged,
        ..Report::default()
    };
    if !unchanged {
        // Rows this migration copied before may be replaced, but nothing
        // the cluster wrote since: that would lose its data.
        let target_now = fingerprint::target(&pg).await?;
        match &state.target_rows {
            Some(copied) if *copied != target_now => bail!(
                "the target catalog changed since this migration copied it (cluster nodes \
                 already use it?); refusing to overwrite it. The source changed too: \
                 migrate into a new, empty database"
            ),
            None if !target_empty(&pg).await? => bail!(
                "the target catalog holds data this migration did not write; migrate into a \
                 new, empty database"
            ),
            _ => {}
        }
        state.done = false;
        state.save()?;
        let orphans = copy_blobs(
            &src,
            &source_blobs,
            target.blobs.as_ref(),
            &mut report,
            progress,
        )
        .await?;
        copy_rows(&src, &pg, &orphans, progress).await?;
        state.source = Some(source_now);
        state.target_rows = Some(fingerprint::target(&pg).await?);
        state.save()?;
    }
    verify_blobs(&src, target.blobs.as_ref()).await?;
    report.tables = verify_rows(&src, &pg).await?;
    for (table, source, target) in &report.tables {
        if source != target {
            bail!("table {table}: {source} rows in the source, {target} in the target");
        }
    }
    state.done = true;
    state.save()?;
    Ok(report)
}

async fn target_empty(pg: &PgPool) -> anyhow::Result<bool> {
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM orgs")
        .fetch_one(pg)
        .await?;
    Ok(orgs == 0)
}

async fn open_source(file: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::new().filename(file).read_only(true);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open {}", file.display()))
}

/// Every stored blob of the source into the target, in key order. Returns
/// the target's blobs the source no longer has (written by an earlier run
/// for variants deleted since): the cluster's reclaim deletes them.
async fn copy_blobs(
    src: &SqlitePool,
    from: &LocalBlobStore,
    to: &dyn BlobStore,
    report: &mut Report,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<String>> {
    let (_, total_bytes) = blobs::totals(src).await?;
    progress.phase("blobs (bytes)", total_bytes);
    // One listing of the target says what an earlier run already wrote.
    let mut held: HashMap<String, u64> = to.list().await?.into_iter().collect();
    let mut after = String::new();
    loop {
        let page = blobs::page(src, &after).await?;
        let Some(last) = page.last() else { break };
        after = last.key.clone();
        let outcomes: Vec<(blobs::Copied, u64)> = futures::stream::iter(&page)
            .map(|b| {
                let held = held.get(&b.key).copied();
                async move {
                    let copied = blobs::copy_one(from, to, b, held).await?;
                    progress.advance(b.size);
                    anyhow::Ok((copied, b.size))
                }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        for b in &page {
            held.remove(&b.key);
        }
        for (copied, size) in outcomes {
            match copied {
                blobs::Copied::Written => report.blobs_written += 1,
                blobs::Copied::Present => report.blobs_present += 1,
            }
            report.bytes_verified += size;
        }
    }
    progress.finish(&format!(
        "blobs: {} written, {} already there, {} bytes",
        report.blobs_written, report.blobs_present, report.bytes_verified
    ));
    Ok(held.into_keys().collect())
}

/// Every stored variant of the source has its bytes in the target, whole.
async fn verify_blobs(src: &SqlitePool, to: &dyn BlobStore) -> anyhow::Result<()> {
    let held: HashMap<String, u64> = to.list().await?.into_iter().collect();
    let mut after = String::new();
    loop {
        let page = blobs::page(src, &after).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.key.clone();
        for b in &page {
            if held.get(&b.key) != Some(&b.size) {
                bail!(
                    "blob {} ({} bytes) is not in the target; run migrate again",
                    b.key,
                    b.size
                );
            }
        }
    }
}

async fn copy_rows(
    src: &SqlitePool,
    pg: &PgPool,
    orphans: &[String],
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut total = 0;
    for t in rows::TABLES {
        total += rows::count(src, t).await?;
    }
    progress.phase("catalog rows", total);
    // One transaction: a rerun after an interruption, or after the source
    // changed, replaces whatever an earlier run left.
    let mut tx = pg.begin().await?;
    rows::clear(&mut tx).await?;
    for t in rows::TABLES {
        rows::copy_table(src, &mut tx, t, &|n| progress.advance(n)).await?;
    }
    rows::advance_sequences(&mut tx).await?;
    rows::queue_for_reclaim(&mut tx, orphans).await?;
    tx.commit().await?;
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
