//! Reclaim bookkeeping: draining retired scopes into the blob queue, and the
//! queue itself.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::blob_queue::queue_blobs_for;
use super::dialect::{self, NOW_MS, SKIP_LOCKED};
use super::variants::drain_retired;
use crate::catalog::{ReceiptId, ReclaimBacklog, ReclaimQueue, Result};
use crate::model::time::now_ms;

/// How long a caller keeps the batch of blob deletions it claimed: a batch
/// takes a second or two; a claim outliving its node delays those deletions
/// by this much. Should a slow batch outlast it, another node deletes the
/// same keys again, which is harmless.
const DELETION_CLAIM_MS: i64 = 10_000;

#[async_trait]
impl ReclaimQueue for SqlCatalog {
    /// Drains one batch of one retired scope. Where nodes share the database,
    /// the scope row is taken with `FOR UPDATE SKIP LOCKED`: reclaimers on
    /// several nodes each work on a different retired scope (or wait for the
    /// next round), never on the same rows at once. Answers 0 when no retired
    /// scope is left unclaimed.
    async fn drain_retired_scope(&self, limit: u64) -> Result<u64> {
        let now = now_ms();
        in_tx!(self, "drain_retired_scope", |tx| async move {
            let sql = format!(
                "SELECT id, receipt_id FROM scopes WHERE retired_at IS NOT NULL \
                 ORDER BY retired_at, id LIMIT 1{SKIP_LOCKED}"
            );
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&mut **tx)
                .await?
            else {
                return Ok(0);
            };
            let scope: i64 = row.try_get("id")?;
            // The receipt whose lines the drain writes (purge, removal).
            let receipt = row
                .try_get::<Option<String>, _>("receipt_id")?
                .as_deref()
                .and_then(ReceiptId::parse);
            let limit = limit.clamp(1, i64::MAX as u64) as i64;

            // Jobs first, and all at once (one per variant at most): a worker still
            // holding one finds it gone, and the lock order (jobs before variants)
            // holds.
            sqlx::query("DELETE FROM jobs WHERE scope_id = $1")
                .bind(scope)
                .execute(&mut **tx)
                .await?;
            // The keys of the records deleted are queued in the same transaction,
            // so a key is never lost between the two.
            let gone = drain_retired(tx, scope, receipt, limit).await?;
            if !gone.is_empty() {
                let keys: Vec<String> = gone.iter().flatten().cloned().collect();
                queue_blobs_for(tx, &keys, receipt, now).await?;
                return Ok(gone.len() as u64);
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
        })
    }

    /// Claims are timed by the database's clock, the one clock all nodes
    /// share.
    async fn queued_blob_deletions(&self, limit: u64) -> Result<Vec<String>> {
        let sql = format!(
            "UPDATE reclaim_blobs SET claimed_until = {NOW_MS} + $2 \
             WHERE blob_key IN ( \
                 SELECT blob_key FROM reclaim_blobs \
                 WHERE claimed_until IS NULL OR claimed_until < {NOW_MS} \
                 ORDER BY queued_at, blob_key LIMIT $1{SKIP_LOCKED}) \
             RETURNING blob_key"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(DELETION_CLAIM_MS)
            .fetch_all(self.db.writer())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
    }

    async fn forget_blob_deletions(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM reclaim_blobs WHERE {}",
            dialect::in_list("blob_key", 1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dialect::list(keys))
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    /// A claim nobody holds keeps them out of reach, by the database's
    /// clock like every claim.
    async fn postpone_blob_deletions(&self, keys: &[String], delay_ms: i64) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE reclaim_blobs SET claimed_until = {NOW_MS} + $2 WHERE {}",
            dialect::in_list("blob_key", 1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dialect::list(keys))
            .bind(delay_ms)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn reclaim_backlog(&self) -> Result<ReclaimBacklog> {
        let row = sqlx::query(
            // A retired scope's counters count what is left to drain
            // (`variants::drain_retired`): no variant row is read.
            "SELECT count(*) AS scopes, \
                    CAST(coalesce(sum(live_count), 0) AS BIGINT) AS variants, \
                    CAST(coalesce(sum(stored_bytes), 0) AS BIGINT) AS bytes, \
                    (SELECT count(*) FROM reclaim_blobs) AS blobs, \
                    (SELECT count(*) FROM receipts WHERE bytes_gone_at IS NULL) AS receipts \
             FROM scopes WHERE retired_at IS NOT NULL",
        )
        .fetch_one(self.db.reader())
        .await?;
        Ok(ReclaimBacklog {
            retired_scopes: row.try_get::<i64, _>("scopes")? as u64,
            retired_variants: row.try_get::<i64, _>("variants")? as u64,
            retired_bytes: row.try_get::<i64, _>("bytes")? as u64,
            queued_blobs: row.try_get::<i64, _>("blobs")? as u64,
            unfinished_receipts: row.try_get::<i64, _>("receipts")? as u64,
        })
    }

    async fn referenced_blob_keys(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT blob_key FROM variants WHERE blob_key IS NOT NULL \
             UNION SELECT blob_key FROM reclaim_blobs \
             UNION SELECT blob_key FROM upload_intents",
        )
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("blob_key")?)).collect()
    }
}
