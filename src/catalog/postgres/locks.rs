//! Row locks that keep the catalog exact when several nodes write at once.
//!
//! Why row locks (READ COMMITTED + `SELECT ... FOR UPDATE`) and not
//! SERIALIZABLE: every write that changes a scope's media already knows its
//! scope, so one lock on the scope row serializes exactly the transactions
//! that could disagree about its counters, and nothing else. The counters
//! are updated by deltas computed from the variant rows read under that
//! lock, so they stay equal to a recount. SERIALIZABLE would reach the same
//! result but abort and retry on every hot connection (and on false
//! conflicts between unrelated scopes sharing index pages).
//!
//! Lock order, taken by every transaction in this order only (so two
//! transactions never wait on each other in a cycle):
//!
//! 1. connection rows (purge, remove, settings changes; by `id` when many)
//! 2. the scope row (every write to a scope's media, and purge)
//! 3. job rows (claims skip locked ones instead of waiting)
//! 4. variant rows (a transaction that takes a variant's job takes the job
//!    first)
//!
//! Access counts and the `storing` mark of claimed jobs are written one
//! row per statement outside any other lock, so they cannot join a cycle.
//! Should PostgreSQL still report a deadlock or serialization failure, the
//! whole transaction is retried (see `in_tx!` in `mod.rs`).

use sqlx::{Postgres, Row, Transaction};

use crate::catalog::rows::{self, CONNECTION_COLUMNS};
use crate::catalog::{Connection, OrgId, Result, ScopeId};

/// Locks the scope row and tells whether it is still its connection's
/// current scope. A purge or removal sets `retired_at` in the same
/// transaction that moves the connection off the scope, so once the lock is
/// held the answer cannot change until this transaction ends: a write that
/// saw a current scope lands before the purge, and the purge's totals
/// include it.
pub async fn lock_current_scope(
    tx: &mut Transaction<'static, Postgres>,
    scope: ScopeId,
) -> Result<bool> {
    let row = sqlx::query("SELECT retired_at FROM scopes WHERE id = $1 FOR UPDATE")
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>, _>("retired_at")?.is_none(),
        None => false,
    })
}

/// Locks a connection row (first in the lock order). Under READ COMMITTED
/// the row returned is the latest committed one, so a purge that waited for
/// another purge sees the fresh scope that one made.
pub async fn lock_connection(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
    id: &str,
) -> Result<Option<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 AND id = $2 FOR UPDATE"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| rows::connection(&r))
        .transpose()
}

/// Locks every connection of an organization, in key order.
pub async fn lock_org_connections(
    tx: &mut Transaction<'static, Postgres>,
    org: OrgId,
) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 ORDER BY id FOR UPDATE"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(rows::connection)
        .collect()
}

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
