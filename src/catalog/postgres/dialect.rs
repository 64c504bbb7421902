//! What the shared catalog does its own way: PostgreSQL, for several
//! vaultplus nodes on one database.
//!
//! Every node runs the same transactions; PostgreSQL is the only place
//! where nodes meet. Writes run at READ COMMITTED and take row locks in one
//! fixed order (see `catalog/sql/mod.rs`), which keeps counts, purge
//! answers and per-scope counters exact when nodes race on one connection.
//! A serving node keeps media look-ups and its signing keys in memory under
//! a lease, and every revocation (delete, purge, eviction, replace, key
//! retirement) waits until every node holding a live lease dropped what it
//! revoked: `docs/cluster-coherence.md`, `memory.rs`, `revocations.rs`,
//! `lease.rs`.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _, PgPool};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::memory::{LookupKey, Memory};
use super::revocations::{self, Acks, Listening};
use super::{lease, notify};
use crate::catalog::{ChangeWatch, Result, VariantRecord};

pub use revocations::{revoke, tracking};

pub type Db = sqlx::Postgres;
pub type Tx = sqlx::Transaction<'static, Db>;
pub type Row = sqlx::postgres::PgRow;

/// Several nodes share the database: another node's workers may hold live
/// job leases, and rows that need no atomicity together are written one
/// statement each, so that they never hold locks while waiting for others.
pub const SHARED: bool = true;
pub const FOR_UPDATE: &str = " FOR UPDATE";
/// Concurrent claimers on any node pass over each other's rows instead of
/// waiting; a row another claimer leased meanwhile is re-checked against
/// the WHERE clause before it is locked, so nothing is handed out twice.
pub const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
pub const GREATEST: &str = "greatest";
/// The database's clock in milliseconds: the one clock all nodes share.
pub const NOW_MS: &str = "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)";

/// What makes a statement answer its plan instead of its rows.
pub const EXPLAIN: &str = "EXPLAIN ";

/// The lines of an `EXPLAIN` (its one `QUERY PLAN` column).
pub fn explain_lines(rows: Vec<Row>) -> Result<Vec<String>> {
    use sqlx::Row as _;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<sqlx::Result<_>>()?)
}

/// A list of values bound as one parameter: a PostgreSQL array.
pub type List<T> = Vec<T>;

pub fn list<T: Clone>(items: &[T]) -> List<T> {
    items.to_vec()
}

/// `column` is one of the values of the list bound as parameter `param`
/// (`= ANY`, which plans as an index probe per value).
pub fn in_list(column: &str, param: u32) -> String {
    format!("{column} = ANY(${param})")
}

/// The list bound as parameter `param` as a table of one column, `value`.
pub fn list_table(param: u32) -> String {
    format!("unnest(${param}) AS l(value)")
}

/// Advisory lock key held while migrations run ("vaultplu" in ASCII).
/// Advisory locks are per database, so clusters hosting several vaultplus
/// databases do not block each other.
pub const MIGRATION_LOCK: i64 = 0x7661_756c_7470_6c75;

/// Whether an error is PostgreSQL asking for the transaction to be run
/// again: a serialization failure or a detected deadlock.
pub fn is_retryable(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|c| c == "40001" || c == "40P01")
    })
}

/// Signing-key changes notify every node in the same transaction: a
/// retired key must stop verifying everywhere at once.
pub async fn notify(tx: &mut Tx, what: &str) -> Result<()> {
    notify::notify(tx, what).await
}

pub struct Stores {
    pool: PgPool,
    node_id: String,
    memory: Arc<Memory>,
    acks: Arc<Acks>,
    leased: watch::Sender<bool>,
    /// Stops this process's listener and lease tasks when dropped.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl Stores {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`)
    /// and applies pending migrations first. Several nodes may start
    /// together: migrations run under an advisory lock (see `migrate`).
    /// Every process listens for revocations (a revoking call waits on
    /// the acknowledgements it hears); only a server holds a lease.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("the catalog URL is not a valid PostgreSQL URL")?
            .statement_cache_capacity(crate::catalog::STATEMENT_CACHE);
        migrate(&options).await?;
        let pool = PgPoolOptions::new()
            // One connection is the revocation listener's.
            .max_connections(max_connections.max(1) + 1)
            .acquire_timeout(Duration::from_secs(30))
            // No ping before each use: it doubled every request's round
            // trips. A connection that died meanwhile (PostgreSQL restarted,
            // the connection cut) fails the one statement that meets it, is
            // dropped, and the next request gets a fresh one.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .context("cannot connect to the PostgreSQL catalog")?;
        let stop = CancellationToken::new();
        let node_id = format!("node_{}", uuid::Uuid::new_v4().simple());
        let memory = Arc::new(Memory::new());
        let acks = Arc::new(Acks::default());
        let (leased, leased_rx) = watch::channel(false);
        tokio::spawn(revocations::listen(Listening {
            pool: pool.clone(),
            node_id: node_id.clone(),
            memory: Arc::downgrade(&memory),
            acks: Arc::downgrade(&acks),
            leased: leased_rx,
            stop: stop.clone(),
        }));
        Ok(Self {
            pool,
            node_id,
            memory,
            acks,
            leased,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        })
    }

    /// Whether the database holds a catalog (the migrations table), found
    /// without creating or changing anything.
    pub async fn holds_catalog(url: &str) -> Result<bool> {
        let options = PgConnectOptions::from_str(url)
            .context("the catalog URL is not a valid PostgreSQL URL")?;
        let mut conn = options
            .connect()
            .await
            .context("cannot connect to the PostgreSQL catalog")?;
        let found: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(found)
    }

    pub async fn close(&self) {
        self.memory.set_lease_deadline(None);
        self.stop.cancel();
        if *self.leased.borrow() {
            lease::release(&self.pool, &self.node_id).await;
        }
        self.pool.close().await;
    }

    pub fn pool_stats(&self) -> Vec<crate::catalog::PoolStats> {
        vec![crate::catalog::PoolStats::of("shared", &self.pool)]
    }

    pub fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Commits tell nothing here: revocations are published by the commit
    /// itself (the trigger of migration 0008) and waited on in [`revoked`].
    ///
    /// [`revoked`]: Stores::revoked
    pub fn committed(&self) {}

    /// After a commit that revoked something: waits until every node
    /// holding a live lease has dropped it (at most a lease). If the wait
    /// cannot even be read, waiting out a whole lease is as safe: no lease
    /// live at the commit can last longer, nor be renewed unacknowledged.
    pub async fn revoked(&self) {
        // Past a whole lease since the commit, no lease live at it is left:
        // a read that hangs (a half-open connection) ends the wait there.
        let bound = lease::LEASE + lease::MARGIN;
        match tokio::time::timeout(bound, self.acks.wait(&self.pool)).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read node leases; waiting a whole lease");
                tokio::time::sleep(bound).await;
            }
        }
    }

    pub async fn hold_lease(&self) -> Result<()> {
        if self.leased.send_replace(true) {
            return Ok(());
        }
        lease::join(&self.pool, &self.node_id).await?;
        tokio::spawn(lease::hold(lease::Lease {
            pool: self.pool.clone(),
            node_id: self.node_id.clone(),
            memory: Arc::downgrade(&self.memory),
            stop: self.stop.clone(),
        }));
        Ok(())
    }

    pub fn keys_epoch(&self) -> Option<u64> {
        self.memory.keys_epoch()
    }

    pub async fn watch_changes(&self) -> Result<ChangeWatch> {
        notify::watch(&self.pool).await
    }

    /// The delivery look-up: from memory while this node holds its lease,
    /// else from the database (and kept for later, see `memory.rs`).
    pub async fn cached_variant(
        &self,
        key: LookupKey,
        read: impl Future<Output = Result<Option<VariantRecord>>>,
    ) -> Result<Option<VariantRecord>> {
        static HIT: crate::metrics::Series =
            crate::metrics::Series::new(crate::metrics::names::LOOKUP_CACHE, "result", "hit");
        static MISS: crate::metrics::Series =
            crate::metrics::Series::new(crate::metrics::names::LOOKUP_CACHE, "result", "miss");
        if let Some(hit) = self.memory.get(&key) {
            HIT.increment(1);
            return Ok(Some(hit));
        }
        MISS.increment(1);
        // Taken before the read starts (`read` is lazy).
        let stamp = self.memory.stamp();
        let found = read.await?;
        self.memory.put(key, stamp, &found);
        Ok(found)
    }
}

/// Applies migrations on a connection of its own, under an advisory lock.
///
/// sqlx's PostgreSQL migrator already takes `pg_advisory_lock` (keyed on
/// the database name) before it even creates `_sqlx_migrations`, so nodes
/// racing here would be serialized by it alone. We take our own lock
/// anyway, because: the behaviour is then ours and explicit rather than a
/// default of a dependency (`Migrator::locking` can be switched off), and
/// sqlx leaves its lock held if a migration fails (it returns before
/// unlocking) — on a pooled connection that lock would outlive the attempt.
/// Closing this dedicated connection ends the session, which releases
/// every advisory lock whatever happened. Advisory locks are reentrant
/// within a session, so sqlx's own lock on the same connection just nests.
async fn migrate(options: &PgConnectOptions) -> Result<()> {
    let mut conn = options
        .connect()
        .await
        .context("cannot connect to the PostgreSQL catalog")?;
    let result: Result<()> = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut conn)
            .await?;
        // `run_direct` rather than `run`: `run` goes through `Acquire`, whose
        // lifetimes make the future not `Send` (sqlx documents this as the
        // way around it), and this runs inside spawned tasks.
        sqlx::migrate!("./migrations/postgres")
            .run_direct(None, &mut conn, false)
            .await
            .context("cannot apply catalog migrations")?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut conn)
            .await?;
        Ok(())
    }
    .await;
    // Ends the session: releases the lock even when a step above failed.
    let _ = conn.close().await;
    result
}
