//! Reclaim bookkeeping: draining retired scopes into the blob queue, and the
//! queue itself.

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::catalog::{ReclaimBacklog, Result};

type Tx = Transaction<'static, Postgres>;

/// Drains one batch of one retired scope. The scope row is taken with
/// `FOR UPDATE SKIP LOCKED`: reclaimers on several nodes each work on a
/// different retired scope (or wait for the next round), never on the same
/// rows at once. Answers 0 when no retired scope is left unclaimed.
pub async fn drain_retired_scope(tx: &mut Tx, limit: u64, now: i64) -> Result<u64> {
    let Some(row) = sqlx::query(
        "SELECT id FROM scopes WHERE retired_at IS NOT NULL ORDER BY retired_at, id LIMIT 1 \
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(0);
    };
    let scope: i64 = row.try_get("id")?;
    let limit = limit.clamp(1, i64::MAX as u64) as i64;

    // Jobs first, and all at once (one per variant at most): a worker still
    // holding one finds it gone, and the lock order (jobs before variants,
    // see locks.rs) holds.
    sqlx::query("DELETE FROM jobs WHERE scope_id = $1")
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    // One statement moves a batch of variants' blob keys to the queue and
    // deletes their records, so a key is never lost between the two.
    let row = sqlx::query(
        "WITH batch AS (SELECT media_id, label FROM variants WHERE scope_id = $1 \
                        ORDER BY media_id, label LIMIT $2), \
              gone AS (DELETE FROM variants v USING batch b WHERE v.scope_id = $1 \
                       AND v.media_id = b.media_id AND v.label = b.label RETURNING v.blob_key), \
              queued AS (INSERT INTO reclaim_blobs (blob_key, queued_at) \
                         SELECT blob_key, $3 FROM gone WHERE blob_key IS NOT NULL \
                         ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT count(*) AS n FROM gone",
    )
    .bind(scope)
    .bind(limit)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let variants: i64 = row.try_get("n")?;
    if variants > 0 {
        return Ok(variants as u64);
    }
    let media = sqlx::query(
        "DELETE FROM media WHERE scope_id = $1 AND media_id IN \
           (SELECT media_id FROM media WHERE scope_id = $1 LIMIT $2)",
    )
    .bind(scope)
    .bind(limit)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if media > 0 {
        return Ok(media);
    }
    // Upload intents of the scope stay: their writers may still be running,
    // and their commit finds the scope gone and queues the blob itself.
    for table in ["list_members", "lists"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE scope_id = $1"
        )))
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM scopes WHERE id = $1")
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    Ok(1)
}

/// How long a node keeps the batch of blob deletions it claimed: a batch
/// takes a second or two; a claim outliving its node delays those deletions
/// by this much. Should a slow batch outlast it, another node deletes the
/// same keys again, which is harmless.
const DELETION_CLAIM_MS: i64 = 10_000;

/// Claims up to `limit` queued deletions no other node holds (claims are
/// timed by the database's clock, the one clock all nodes share).
pub async fn queued_blob_deletions(pool: &PgPool, limit: u64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT AS ms) \
         UPDATE reclaim_blobs SET claimed_until = (SELECT ms FROM now) + $2 \
         WHERE blob_key IN ( \
             SELECT blob_key FROM reclaim_blobs \
             WHERE claimed_until IS NULL OR claimed_until < (SELECT ms FROM now) \
             ORDER BY queued_at, blob_key LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING blob_key",
    )
    .bind(limit.min(i64::MAX as u64) as i64)
    .bind(DELETION_CLAIM_MS)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
}

pub async fn forget_blob_deletions(pool: &PgPool, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM reclaim_blobs WHERE blob_key = ANY($1)")
        .bind(keys)
        .execute(pool)
        .await?;
    Ok(())
}

/// Keeps failed deletions out of reach for `delay_ms` (a claim nobody
/// holds), by the database's clock like every claim.
pub async fn postpone_blob_deletions(pool: &PgPool, keys: &[String], delay_ms: i64) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE reclaim_blobs SET \
           claimed_until = (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT + $2 \
         WHERE blob_key = ANY($1)",
    )
    .bind(keys)
    .bind(delay_ms)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn reclaim_backlog(pool: &PgPool) -> Result<ReclaimBacklog> {
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

pub async fn referenced_blob_keys(pool: &PgPool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT blob_key FROM variants WHERE blob_key IS NOT NULL \
         UNION SELECT blob_key FROM reclaim_blobs \
         UNION SELECT blob_key FROM upload_intents",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
}
