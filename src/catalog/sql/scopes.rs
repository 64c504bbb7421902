//! Scopes (one generation of a connection's media) and the row locks at the
//! head of the lock order (see `mod.rs`): connections, then the scope.

use sqlx::Row;

use super::dialect::{Db, FOR_UPDATE, Tx};
use super::rows::{self, CONNECTION_COLUMNS};
use crate::catalog::{Connection, OrgId, Result, ScopeId, ScopeTotals};

/// Condition that the scope is still some connection's current one (one
/// probe of the unique `connections_by_scope` index), open for the scope
/// column or parameter and a closing parenthesis. Reads use it so that
/// nothing of a purge committed anywhere is visible afterwards, even to a
/// request that looked the connection up just before.
pub const SCOPE_IS_CURRENT: &str = "EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = ";

/// The current scope of the connection of org `$1` and ID `$2`, for a
/// statement that reads that connection's row and the scope's rows
/// together (one request, one statement: `request_reads.rs`). Within one
/// statement both come from the same snapshot, so the rows read are those
/// of the scope the connection holds then, and what [`SCOPE_IS_CURRENT`]
/// proves of a scope given from outside holds by construction: a purge
/// committed before the statement moved the connection to a fresh scope,
/// and the statement sees that one.
///
/// A sub-query rather than a join on the connection row's column: it is
/// one value for the whole statement (PostgreSQL's InitPlan parameter,
/// SQLite's once-run scalar sub-query), so the items are probed by their
/// key as for a scope given as a parameter. Joined on the row's column,
/// PostgreSQL weighs a hash join over a scan of every media row against
/// the probes, and takes it for a batch of 100 in a connection of 20,000.
pub const CURRENT_SCOPE_OF_CONNECTION: &str =
    "(SELECT scope_id FROM connections WHERE org_id = $1 AND id = $2)";

/// Locks the scope row and tells whether it is still its connection's
/// current scope. A purge or removal sets `retired_at` in the same
/// transaction that moves the connection off the scope, so once the lock is
/// held the answer cannot change until this transaction ends: a write that
/// saw a current scope lands before the purge, and the purge's totals
/// include it.
pub async fn lock_current_scope(tx: &mut Tx, scope: ScopeId) -> Result<bool> {
    let sql = format!("SELECT retired_at FROM scopes WHERE id = $1{FOR_UPDATE}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
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
pub async fn lock_connection(tx: &mut Tx, org: OrgId, id: &str) -> Result<Option<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 AND id = $2{FOR_UPDATE}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Locks every connection of an organization, in key order.
pub async fn lock_org_connections(tx: &mut Tx, org: OrgId) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 ORDER BY id{FOR_UPDATE}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .fetch_all(&mut **tx)
        .await?)
}

pub async fn scope_totals<'e, E>(exec: E, scope: ScopeId) -> Result<ScopeTotals>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let row =
        sqlx::query("SELECT live_count, stored_count, stored_bytes FROM scopes WHERE id = $1")
            .bind(scope)
            .fetch_optional(exec)
            .await?;
    let Some(row) = row else {
        return Ok(ScopeTotals::default());
    };
    rows::totals(&row, "live_count", "stored_count", "stored_bytes")
}
