//! Reclaim bookkeeping: draining retired scopes into the blob queue, and the
//! queue itself.

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use crate::catalog::{ReclaimBacklog, Result};

pub async fn drain_retired_scope(
    tx: &mut Transaction<'static, Sqlite>,
    limit: u64,
    now: i64,
) -> Result<u64> {
    let Some(row) = sqlx::query(
        "SELECT id FROM scopes WHERE retired_at IS NOT NULL ORDER BY retired_at, id LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(0);
    };
    let scope: i64 = row.try_get("id")?;
    let limit = limit.max(1) as i64;

    // Both statements pick the same batch: the first rows in primary-key
    // order, which the key's index gives without sorting (ordering by rowid
    // sorted the whole rest of the scope for every batch).
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) \
         SELECT blob_key, ? FROM variants WHERE rowid IN \
           (SELECT rowid FROM variants WHERE scope_id = ? ORDER BY media_id, label LIMIT ?) \
           AND blob_key IS NOT NULL \
         ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(scope)
    .bind(limit)
    .execute(&mut **tx)
    .await?;
    let variants = sqlx::query(
        "DELETE FROM variants WHERE rowid IN \
         (SELECT rowid FROM variants WHERE scope_id = ? ORDER BY media_id, label LIMIT ?)",
    )
    .bind(scope)
    .bind(limit)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if variants > 0 {
        return Ok(variants);
    }
    let media = sqlx::query(
        "DELETE FROM media WHERE rowid IN (SELECT rowid FROM media WHERE scope_id = ? LIMIT ?)",
    )
    .bind(scope)
    .bind(limit)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if media > 0 {
        return Ok(media);
    }
    for table in ["jobs", "list_members", "lists"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE scope_id = ?"
        )))
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM scopes WHERE id = ?")
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    Ok(1)
}

/// Queued deletions that are due (not postponed after a failure).
pub async fn queued_blob_deletions(pool: &SqlitePool, limit: u64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT blob_key FROM reclaim_blobs WHERE not_before IS NULL OR not_before <= ? \
         ORDER BY queued_at, blob_key LIMIT ?",
    )
    .bind(crate::model::time::now_ms())
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
}

pub async fn forget_blob_deletions(pool: &SqlitePool, keys: &[String]) -> Result<()> {
    for_each_chunk(pool, keys, |qb| {
        qb.push("DELETE FROM reclaim_blobs");
    })
    .await
}

pub async fn postpone_blob_deletions(pool: &SqlitePool, keys: &[String], until: i64) -> Result<()> {
    for_each_chunk(pool, keys, |qb| {
        qb.push("UPDATE reclaim_blobs SET not_before = ")
            .push_bind(until);
    })
    .await
}

/// Runs `head` + ` WHERE blob_key IN (...)` over the keys, 500 at a time
/// (SQLite's limit on bound parameters).
async fn for_each_chunk(
    pool: &SqlitePool,
    keys: &[String],
    head: impl Fn(&mut QueryBuilder<Sqlite>),
) -> Result<()> {
    for chunk in keys.chunks(500) {
        let mut qb = QueryBuilder::<Sqlite>::new("");
        head(&mut qb);
        qb.push(" WHERE blob_key IN (");
        let mut sep = qb.separated(", ");
        for k in chunk {
            sep.push_bind(k.as_str());
        }
        qb.push(")");
        qb.build().execute(pool).await?;
    }
    Ok(())
}

pub async fn reclaim_backlog(pool: &SqlitePool) -> Result<ReclaimBacklog> {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM scopes WHERE retired_at IS NOT NULL) AS scopes, \
                (SELECT count(*) FROM variants v JOIN scopes s ON s.id = v.scope_id \
                   WHERE s.retired_at IS NOT NULL) AS variants, \
                (SELECT count(*) FROM reclaim_blobs) AS blobs",
    )
    .fetch_one(pool)
    .await?;
    Ok(ReclaimBacklog {
        retired_scopes: row.try_get::<i64, _>("scopes")? as u64,
        retired_variants: row.try_get::<i64, _>("variants")? as u64,
        queued_blobs: row.try_get::<i64, _>("blobs")? as u64,
    })
}

pub async fn referenced_blob_keys(pool: &SqlitePool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT blob_key FROM variants WHERE blob_key IS NOT NULL \
         UNION SELECT blob_key FROM reclaim_blobs \
         UNION SELECT blob_key FROM upload_intents",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
}
