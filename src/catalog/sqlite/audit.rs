//! Consistency checks: counters against records, stored blobs in order.

use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::catalog::{Result, ScopeAudit, ScopeId, ScopeTotals, StoredBlob};

/// Totals of a scope recomputed from its variant records.
const ACTUAL: &str = "(SELECT count(*) FROM variants v WHERE v.scope_id = s.id AND v.status <> 'removed') AS a_live, \
     (SELECT count(*) FROM variants v WHERE v.scope_id = s.id AND v.status = 'stored') AS a_stored, \
     (SELECT coalesce(sum(v.size_bytes), 0) FROM variants v WHERE v.scope_id = s.id AND v.status = 'stored') AS a_bytes";

fn totals(
    r: &sqlx::sqlite::SqliteRow,
    live: &str,
    stored: &str,
    bytes: &str,
) -> Result<ScopeTotals> {
    Ok(ScopeTotals {
        live_count: r.try_get::<i64, _>(live)? as u64,
        stored_count: r.try_get::<i64, _>(stored)? as u64,
        stored_bytes: r.try_get::<i64, _>(bytes)? as u64,
    })
}

pub async fn audit_scopes(pool: &SqlitePool) -> Result<Vec<ScopeAudit>> {
    let sql = format!(
        "SELECT s.id, s.org_id, s.connection_id, s.live_count, s.stored_count, s.stored_bytes, {ACTUAL} \
         FROM scopes s WHERE s.retired_at IS NULL ORDER BY s.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ScopeAudit {
                scope_id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                connection_id: r.try_get("connection_id")?,
                counters: totals(r, "live_count", "stored_count", "stored_bytes")?,
                actual: totals(r, "a_live", "a_stored", "a_bytes")?,
            })
        })
        .collect()
}

pub async fn repair_scope_totals(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
) -> Result<(ScopeTotals, ScopeTotals)> {
    let sql = format!(
        "SELECT s.live_count, s.stored_count, s.stored_bytes, {ACTUAL} FROM scopes s WHERE s.id = ?"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .fetch_one(&mut **tx)
        .await?;
    let before = totals(&r, "live_count", "stored_count", "stored_bytes")?;
    let after = totals(&r, "a_live", "a_stored", "a_bytes")?;
    sqlx::query(
        "UPDATE scopes SET live_count = ?, stored_count = ?, stored_bytes = ? WHERE id = ?",
    )
    .bind(after.live_count as i64)
    .bind(after.stored_count as i64)
    .bind(after.stored_bytes as i64)
    .bind(scope)
    .execute(&mut **tx)
    .await?;
    Ok((before, after))
}

pub async fn stored_blobs(
    pool: &SqlitePool,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredBlob>> {
    let rows = sqlx::query(
        "SELECT v.scope_id, v.media_id, v.label, v.blob_key, v.size_bytes FROM variants v \
         WHERE v.blob_key IS NOT NULL AND v.status = 'stored' AND v.blob_key > ? \
           AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = v.scope_id) \
         ORDER BY v.blob_key LIMIT ?",
    )
    .bind(after.unwrap_or(""))
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredBlob {
                scope_id: r.try_get("scope_id")?,
                media_id: r.try_get("media_id")?,
                label: r.try_get("label")?,
                blob_key: r.try_get("blob_key")?,
                size_bytes: r.try_get::<i64, _>("size_bytes")? as u64,
            })
        })
        .collect()
}
