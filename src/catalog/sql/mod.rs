//! The SQL catalog, written once for both databases.
//!
//! This module is compiled once per backend: `catalog::sqlite` and
//! `catalog::postgres` each include it (`#[path]`) next to their own
//! `dialect` module, which is all that differs between the two: opening
//! and migrating, the transaction policy, row locks and claims, and the few
//! expressions the databases spell differently. Everything here (every
//! rule, statement and statement order) is shared; sqlx's SQLite driver
//! binds `$1, $2, ...` by number, so one placeholder style serves both.
//!
//! Statement order is PostgreSQL's lock order, on both databases (on SQLite
//! the locks are no-ops: a write transaction holds the whole file):
//!
//! 1. connection rows (purge, remove, settings changes; by `id` when many)
//! 2. the scope row (every write to a scope's media, and purge)
//! 3. job rows (claims skip locked ones instead of waiting)
//! 4. variant rows (a transaction that takes a variant's job takes the job
//!    first)
//!
//! Why row locks (READ COMMITTED + `SELECT ... FOR UPDATE`) and not
//! SERIALIZABLE on PostgreSQL: every write that changes a scope's media
//! already knows its scope, so one lock on the scope row serializes exactly
//! the transactions that could disagree about its counters, and nothing
//! else. Should PostgreSQL still report a deadlock or serialization
//! failure, the whole transaction is retried (`in_tx!`).
//!
//! Module layers (`docs/ARCHITECTURE.md`): row-level primitives (`rows`,
//! `scopes`, `blob_queue`, `variants`, `job_rows`, `query`, `items`, and
//! the receipt writes of `receipts`) below the operations that implement
//! the trait parts; lower never use higher.

use std::time::Duration;

use async_trait::async_trait;

use super::dialect;
use crate::catalog::{Catalog, ChangeWatch, Result};

/// Times a transaction is run again after PostgreSQL aborted it as a
/// deadlock victim or serialization failure. The lock order should make
/// both impossible; this is the safety net, not the mechanism.
const RETRIES: u32 = 5;

/// Runs `$body` (a future using `$tx: &mut Tx`) in a write transaction of
/// the dialect's kind, commits, and runs it again from scratch if the
/// database asks for a retry. A macro rather than a function taking a
/// closure: the body borrows both the transaction and the caller's
/// arguments, which a closure returning a boxed future cannot express for
/// every transaction lifetime. Used by the modules below this one only.
/// `$op` names the operation in the catalog latency metric.
macro_rules! in_tx {
    ($self:ident, $op:literal, |$tx:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        let result = loop {
            let mut transaction = $self.db.begin().await?;
            // Whether the attempt revoked something nodes may hold in
            // memory: then the answer waits until they dropped it.
            let (outcome, revoked) = super::dialect::tracking(async {
                let $tx = &mut transaction;
                $body.await
            })
            .await;
            let result: $crate::catalog::Result<_> = match outcome {
                Ok(value) => transaction
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(anyhow::Error::from),
                // Dropping the transaction rolls it back.
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt < super::RETRIES && super::dialect::is_retryable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(super::retry_pause(attempt)).await;
                }
                Ok(value) => {
                    $self.db.committed();
                    if revoked {
                        $self.db.revoked().await;
                    }
                    break Ok(value);
                }
                Err(e) => break Err(e),
            }
        };
        $crate::metrics::timer!($crate::metrics::names::CATALOG_DURATION, $op).record(started);
        result
    }};
}

mod blob_queue;
mod items;
mod job_rows;
mod query;
mod query_run;
mod receipts;
mod rows;
mod scopes;
mod variants;

mod accounts;
mod audit;
mod connections;
mod eviction;
mod job_commit;
mod jobs;
mod list_runs;
mod lists;
mod media;
mod outbox;
mod reclaim;
mod request_reads;
mod uploads;
mod webhooks;

pub struct SqlCatalog {
    db: dialect::Stores,
}

impl SqlCatalog {
    pub(super) fn new(db: dialect::Stores) -> Self {
        Self { db }
    }

    /// The plan of a media query and what the database plans for each of
    /// its statements (for tests and `docs/query-plans.md`).
    pub async fn explain_media_query(
        &self,
        scope: crate::catalog::ScopeId,
        query: &crate::catalog::MediaQuery,
    ) -> Result<crate::catalog::query_plan::Explained> {
        query_run::explain(self, scope, query).await
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.db.reader()).await?;
        Ok(())
    }

    async fn watch_changes(&self) -> Result<ChangeWatch> {
        self.db.watch_changes().await
    }

    async fn hold_lease(&self) -> Result<()> {
        self.db.hold_lease().await
    }

    fn keys_epoch(&self) -> Option<u64> {
        self.db.keys_epoch()
    }

    fn pool_stats(&self) -> Vec<crate::catalog::PoolStats> {
        self.db.pool_stats()
    }

    async fn close(&self) {
        self.db.close().await;
    }
}

/// Pause before a retried transaction: random, so that the two victims of
/// a deadlock do not collide again, and growing with each attempt.
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(rand::random_range(1..=10u64) * u64::from(attempt))
}

/// Rows one multi-row statement writes at most: 17 columns a variant row
/// stay far under both databases' parameter limits (SQLite 32,766,
/// PostgreSQL 65,535).
const MAX_ROWS: usize = 256;

/// Splits the rows of a multi-row write into chunks of power-of-two sizes
/// (at most [`MAX_ROWS`]), so that a connection prepares each statement in
/// at most nine sizes, all kept in its statement cache, rather than in one
/// per row count (preparing a page-sized statement costs about as much as
/// running it).
fn row_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = MAX_ROWS.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_chunks_cover_every_row_in_power_of_two_sizes() {
        for n in [0usize, 1, 2, 3, 7, 255, 256, 257, 1_900] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::row_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows);
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= 256)
            );
        }
    }
}
