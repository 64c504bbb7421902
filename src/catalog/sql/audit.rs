//! Consistency checks: counters against records, stored blobs in order.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::eviction::evict_variant;
use super::rows;
use super::scopes::lock_current_scope;
use crate::catalog::{Audit, Result, ScopeAudit, ScopeId, ScopeTotals, StoredBlob};
use crate::model::{Label, MediaId};

/// Totals of a scope recomputed from its variant records (sum() of BIGINT
/// is NUMERIC in PostgreSQL, hence the cast).
const ACTUAL: &str = "(SELECT count(*) FROM variants v WHERE v.scope_id = s.id AND v.status <> 'removed') AS a_live, \
     (SELECT count(*) FROM variants v WHERE v.scope_id = s.id AND v.status = 'stored') AS a_stored, \
     (SELECT CAST(coalesce(sum(v.size_bytes), 0) AS BIGINT) FROM variants v WHERE v.scope_id = s.id AND v.status = 'stored') AS a_bytes";

#[async_trait]
impl Audit for SqlCatalog {
    /// One statement, so counters and recount come from the same snapshot:
    /// every write updates both in one transaction, so a difference here
    /// is a real inconsistency, not a write seen half-way.
    async fn audit_scopes(&self) -> Result<Vec<ScopeAudit>> {
        let sql = format!(
            "SELECT s.id, s.org_id, s.connection_id, s.live_count, s.stored_count, s.stored_bytes, \
             {ACTUAL} FROM scopes s WHERE s.retired_at IS NULL ORDER BY s.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScopeAudit {
                    scope_id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    connection_id: r.try_get("connection_id")?,
                    counters: rows::totals(r, "live_count", "stored_count", "stored_bytes")?,
                    actual: rows::totals(r, "a_live", "a_stored", "a_bytes")?,
                })
            })
            .collect()
    }

    async fn repair_scope_totals(&self, scope: ScopeId) -> Result<(ScopeTotals, ScopeTotals)> {
        in_tx!(self, "repair_scope_totals", |tx| async move {
            // Counters set from a recount (fsck's repair). Under the scope lock, no
            // write can land between recount and update.
            lock_current_scope(tx, scope).await?;
            let sql = format!(
                "SELECT s.live_count, s.stored_count, s.stored_bytes, {ACTUAL} FROM scopes s WHERE s.id = $1"
            );
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(scope)
                .fetch_one(&mut **tx)
                .await?;
            let before = rows::totals(&r, "live_count", "stored_count", "stored_bytes")?;
            let after = rows::totals(&r, "a_live", "a_stored", "a_bytes")?;
            sqlx::query(
                "UPDATE scopes SET live_count = $1, stored_count = $2, stored_bytes = $3 WHERE id = $4",
            )
            .bind(after.live_count as i64)
            .bind(after.stored_count as i64)
            .bind(after.stored_bytes as i64)
            .bind(scope)
            .execute(&mut **tx)
            .await?;
            Ok((before, after))
        })
    }

    async fn stored_blobs(&self, after: Option<&str>, limit: u64) -> Result<Vec<StoredBlob>> {
        Ok(sqlx::query_as(
            "SELECT v.scope_id, v.media_id, v.label, v.blob_key, v.size_bytes FROM variants v \
             WHERE v.blob_key IS NOT NULL AND v.status = 'stored' AND v.blob_key > $1 \
               AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = v.scope_id) \
             ORDER BY v.blob_key LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(self.db.reader())
        .await?)
    }

    async fn evict_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<u64> {
        let (media, label) = (media.as_str(), label.as_str());
        in_tx!(self, "evict_variant", |tx| evict_variant(
            tx, scope, media, label, now
        ))
    }
}
