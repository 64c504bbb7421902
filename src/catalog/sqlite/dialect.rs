//! What the embedded catalog does its own way: one SQLite file in WAL mode,
//! a single writer, and no row locks.
//!
//! Writes go through a single pooled connection and open with
//! `BEGIN IMMEDIATE`, so transactions in this process queue instead of
//! failing with SQLITE_BUSY; other processes on the same file (the CLI while
//! the server runs) wait on the busy timeout. Reads use their own pool and
//! run beside the writer, as WAL allows. Since a write transaction holds the
//! whole file, the shared code's row locks are empty strings here.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection as _, SqlitePool};

use super::data_version::DataVersion;
use super::lookup_cache::{LookupCache, LookupKey};
use crate::catalog::{ChangeWatch, PoolStats, Result, VariantRecord};
use crate::metrics::{Series, names};

static LOOKUP_HIT: Series = Series::new(names::LOOKUP_CACHE, "result", "hit");
static LOOKUP_MISS: Series = Series::new(names::LOOKUP_CACHE, "result", "miss");

pub type Db = sqlx::Sqlite;
pub type Tx = sqlx::Transaction<'static, Db>;
pub type Row = sqlx::sqlite::SqliteRow;

/// One server owns the file: at its start no other worker can hold a job
/// lease, and rows written one by one may as well share a transaction.
pub const SHARED: bool = false;
/// Row lock suffixes: a write transaction already holds the whole file.
pub const FOR_UPDATE: &str = "";
pub const SKIP_LOCKED: &str = "";
/// The larger of two values (SQLite's two-argument `max`).
pub const GREATEST: &str = "max";
/// The database's clock in milliseconds (claims on the reclaim queue).
pub const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// What makes a statement answer its plan instead of its rows.
pub const EXPLAIN: &str = "EXPLAIN QUERY PLAN ";

/// The plan lines of an `EXPLAIN QUERY PLAN` (its `detail` column).
pub fn explain_lines(rows: Vec<Row>) -> Result<Vec<String>> {
    use sqlx::Row as _;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("detail"))
        .collect::<sqlx::Result<_>>()?)
}

/// A list of values bound as one parameter: a JSON array, read back with
/// `json_each` (no limit on the number of values, unlike `IN (?, ?, ...)`).
pub type List = String;

pub fn list<T: Serialize>(items: &[T]) -> List {
    serde_json::to_string(items).expect("a list of strings or integers serializes")
}

/// `column` is one of the values of the list bound as parameter `param`.
pub fn in_list(column: &str, param: u32) -> String {
    format!("{column} IN (SELECT value FROM json_each(${param}))")
}

/// The list bound as parameter `param` as a table of one column, `value`.
pub fn list_table(param: u32) -> String {
    format!("json_each(${param})")
}

/// Nothing to retry: `BEGIN IMMEDIATE` queues writers instead of failing.
pub fn is_retryable(_: &anyhow::Error) -> bool {
    false
}

/// Other connections learn of changes from the data-version poller.
pub async fn notify(_: &mut Tx, _what: &str) -> Result<()> {
    Ok(())
}

/// Nothing to publish: the look-up cache drops at every commit of this
/// process, and sees other processes' commits by the data version.
pub async fn revoke(_: &mut Tx, _what: &crate::catalog::Revoked) -> Result<()> {
    Ok(())
}

/// Transactions need no tracking: no revocation is waited on.
pub async fn tracking<F: Future>(attempt: F) -> (F::Output, bool) {
    (attempt.await, false)
}

/// How much of the catalog file a reader maps (`PRAGMA mmap_size`); past
/// it reads are plain again. 1 GiB of address space, not of memory.
const READER_MMAP_BYTES: u64 = 1 << 30;

pub struct Stores {
    writer: SqlitePool,
    reader: SqlitePool,
    version: DataVersion,
    lookups: LookupCache,
}

impl Stores {
    /// Opens (creating if needed) the catalog file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        // The file holds the URL signing secrets: SQLite would create it
        // 0644, so it is made private first (SQLite accepts an empty file
        // as a new database), and SQLite gives its -wal and -shm files the
        // database file's mode.
        crate::private_files::file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot create the catalog at {}", path.display()))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is answered, so a power
            // cut loses nothing that a client was told is stored.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .statement_cache_capacity(crate::catalog::STATEMENT_CACHE)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the catalog at {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .context("cannot apply catalog migrations")?;
        // Readers map the file instead of copying each page they read into
        // their own page cache: at a million variants the file is far
        // bigger than a connection's cache, and a batch read of random
        // items touched hundreds of pages, each a read(2) and a copy. The
        // map is the OS page cache itself, shared by every reader. SQLite's
        // caveat: an I/O error on a mapped page is a SIGBUS, not an error;
        // the file is local and private to the server, a failing disk
        // under it stops the server either way, and what is committed is
        // in the file and the write-ahead log (which is never mapped).
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(
                (options.clone().read_only(true))
                    .pragma("mmap_size", READER_MMAP_BYTES.to_string()),
            )
            .await?;
        // Its own connection, outside any pool: a data version is only
        // comparable with earlier reads on the same connection.
        let version = DataVersion::new(options.read_only(true).connect().await?).await?;
        Ok(Self {
            writer,
            reader,
            lookups: LookupCache::new(version.clone()),
            version,
        })
    }

    /// Whether `path` holds a catalog (an SQLite file with the migrations
    /// table), found without creating or changing anything.
    pub async fn holds_catalog(path: &Path) -> Result<bool> {
        if !path.is_file() {
            return Ok(false);
        }
        let not_one = |e| anyhow::anyhow!("no vaultplus catalog at {}: {e}", path.display());
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = options.connect().await.map_err(not_one)?;
        let found: bool = sqlx::query_scalar(
            "SELECT count(*) = 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(not_one)?;
        conn.close().await?;
        Ok(found)
    }

    /// Copies the write-ahead log into the database file and empties it
    /// (the data-version connection may still be open, so closing alone
    /// would not), then closes the pools: the file alone is the catalog.
    pub async fn close(&self) {
        self.reader.close().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(error = %e, "cannot checkpoint the catalog's write-ahead log");
        }
        self.writer.close().await;
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        vec![
            PoolStats::of("reader", &self.reader),
            PoolStats::of("writer", &self.writer),
        ]
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Tells the look-up cache that the catalog changed.
    pub fn committed(&self) {
        self.lookups.committed();
    }

    /// One process serves; nothing to wait for.
    pub async fn revoked(&self) {}

    /// One process serves: its memory follows the catalog without a lease.
    pub async fn hold_lease(&self) -> Result<()> {
        Ok(())
    }

    /// The keys in memory are kept current by the reloader (on the data
    /// version's ticks), as before clusters had leases.
    pub fn keys_epoch(&self) -> Option<u64> {
        Some(0)
    }

    pub async fn watch_changes(&self) -> Result<ChangeWatch> {
        Ok(self.version.watch())
    }

    /// The delivery look-up, answered from the cache while nothing was
    /// written since it was filled (see `lookup_cache.rs`).
    pub async fn cached_variant(
        &self,
        key: LookupKey,
        read: impl Future<Output = Result<Option<VariantRecord>>>,
    ) -> Result<Option<VariantRecord>> {
        // Stamped before the read starts (`read` is lazy): a commit landing
        // during the read makes the entry stale.
        let stamp = self.lookups.stamp();
        if let Some(hit) = self.lookups.get(&key, &stamp) {
            LOOKUP_HIT.increment(1);
            return Ok(hit);
        }
        LOOKUP_MISS.increment(1);
        let found = read.await?;
        self.lookups.put(key, stamp, found.clone());
        Ok(found)
    }
}
