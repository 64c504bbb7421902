//! Connections, their purges and removal, and the totals the API reports.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::dialect::{self, Tx};
use super::outbox;
use super::receipts;
use super::rows::{self, CONNECTION_COLUMNS};
use super::scopes::{lock_connection, scope_totals};
use crate::catalog::{
    Connection, ConnectionChange, Connections, OrgId, OrgTotals, PurgeOutcome, ReceiptKind, Result,
    Revoked, ScopeId, ScopeTotals,
};
use crate::model::webhook::WebhookEvent;
use crate::model::{ConnectionId, SettingsPatch};

#[async_trait]
impl Connections for SqlCatalog {
    async fn insert_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        enabled: bool,
        now: i64,
    ) -> Result<bool> {
        in_tx!(self, "insert_connection", |tx| async move {
            let scope = new_scope(tx, org, id.as_str(), now).await?;
            // ON CONFLICT rather than a prior look-up: two nodes adding the same
            // connection both get an answer, exactly one of them true.
            let inserted = sqlx::query(
                "INSERT INTO connections (org_id, id, enabled, settings_overrides, scope_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, NULL, $4, $5, $6) ON CONFLICT (org_id, id) DO NOTHING",
            )
            .bind(org)
            .bind(id.as_str())
            .bind(enabled)
            .bind(scope)
            .bind(now)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                sqlx::query("DELETE FROM scopes WHERE id = $1")
                    .bind(scope)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(inserted)
        })
    }

    async fn connection(&self, org: OrgId, id: &ConnectionId) -> Result<Option<Connection>> {
        connection(self.db.reader(), org, id.as_str()).await
    }

    async fn connection_of_scope(&self, scope: ScopeId) -> Result<Option<Connection>> {
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE scope_id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .fetch_optional(self.db.reader())
            .await?)
    }

    async fn list_connections(
        &self,
        org: OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Connection>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 \
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(self.db.reader())
            .await?)
    }

    async fn update_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        change: &ConnectionChange,
        now: i64,
    ) -> Result<Option<(Connection, Option<PurgeOutcome>)>> {
        in_tx!(self, "update_connection", |tx| async move {
            // Locked, so two nodes merging override patches both land.
            let Some(c) = lock_connection(tx, org, id.as_str()).await? else {
                return Ok(None);
            };
            let purged = if change.purge {
                Some(purge_in(tx, &c, now).await?)
            } else {
                None
            };
            if let Some(enabled) = change.enabled {
                sqlx::query(
                    "UPDATE connections SET enabled = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
                )
                .bind(enabled)
                .bind(now)
                .bind(org)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
            }
            if let Some(patch) = &change.overrides {
                let merged = patch
                    .as_ref()
                    .map(|p| match &c.overrides {
                        Some(old) => old.merged(p),
                        None => p.clone(),
                    })
                    .filter(|p| !p.is_empty());
                set_overrides(tx, &c, merged.as_ref(), now).await?;
            }
            let after = connection(&mut **tx, org, id.as_str())
                .await?
                .ok_or_else(|| anyhow::anyhow!("connection vanished inside its own transaction"))?;
            Ok(Some((after, purged)))
        })
    }

    async fn purge_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        in_tx!(self, "purge_connection", |tx| async move {
            let Some(c) = lock_connection(tx, org, id.as_str()).await? else {
                return Ok(None);
            };
            Ok(Some(purge_in(tx, &c, now).await?))
        })
    }

    async fn remove_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        in_tx!(self, "remove_connection", |tx| async move {
            let Some(c) = lock_connection(tx, org, id.as_str()).await? else {
                return Ok(None);
            };
            let outcome = retire_scope(tx, c.scope_id, ReceiptKind::ConnectionRemoval, now).await?;
            sqlx::query("DELETE FROM connections WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
            let receipt = outcome.receipt.map(|r| r.to_string()).unwrap_or_default();
            let event = WebhookEvent::connection_removed(
                &c.id,
                outcome.purged_count,
                outcome.freed_bytes,
                &receipt,
            );
            outbox::emit(tx, org, &event, now).await?;
            Ok(Some(outcome))
        })
    }

    async fn scope_totals(&self, scope: ScopeId) -> Result<ScopeTotals> {
        scope_totals(self.db.reader(), scope).await
    }

    async fn store_totals(&self) -> Result<ScopeTotals> {
        let row = sqlx::query(
            "SELECT CAST(coalesce(sum(s.live_count), 0) AS BIGINT) AS live, \
                    CAST(coalesce(sum(s.stored_count), 0) AS BIGINT) AS stored, \
                    CAST(coalesce(sum(s.stored_bytes), 0) AS BIGINT) AS bytes \
             FROM connections c JOIN scopes s ON s.id = c.scope_id",
        )
        .fetch_one(self.db.reader())
        .await?;
        rows::totals(&row, "live", "stored", "bytes")
    }

    async fn org_totals(&self, org: OrgId) -> Result<OrgTotals> {
        let row = sqlx::query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE c.enabled) AS enabled, \
                    CAST(coalesce(sum(s.live_count), 0) AS BIGINT) AS live, \
                    CAST(coalesce(sum(s.stored_bytes), 0) AS BIGINT) AS bytes \
             FROM connections c JOIN scopes s ON s.id = c.scope_id WHERE c.org_id = $1",
        )
        .bind(org)
        .fetch_one(self.db.reader())
        .await?;
        Ok(OrgTotals {
            connections: row.try_get::<i64, _>("n")? as u64,
            enabled_connections: row.try_get::<i64, _>("enabled")? as u64,
            live_count: row.try_get::<i64, _>("live")? as u64,
            stored_bytes: row.try_get::<i64, _>("bytes")? as u64,
        })
    }
}

async fn new_scope(tx: &mut Tx, org: OrgId, id: &str, now: i64) -> Result<ScopeId> {
    let row = sqlx::query(
        "INSERT INTO scopes (org_id, connection_id, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("id")?)
}

/// Retires the scope: its counters at that moment are the purge's answer,
/// and its erasure receipt's counts. The UPDATE waits for any transaction
/// holding the scope row (every write to the scope's media holds it to its
/// end), so the totals it returns include every write that saw the scope
/// current, and none after it.
async fn retire_scope(
    tx: &mut Tx,
    scope: ScopeId,
    kind: ReceiptKind,
    now: i64,
) -> Result<PurgeOutcome> {
    let row = sqlx::query(
        "UPDATE scopes SET retired_at = $1 WHERE id = $2 AND retired_at IS NULL \
         RETURNING live_count, stored_bytes",
    )
    .bind(now)
    .bind(scope)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(PurgeOutcome::default());
    };
    dialect::revoke(tx, &Revoked::Scope(scope)).await?;
    let purged_count = row.try_get::<i64, _>("live_count")? as u64;
    let freed_bytes = row.try_get::<i64, _>("stored_bytes")? as u64;
    let receipt = receipts::create(tx, scope, kind, (purged_count, freed_bytes), true, now).await?;
    Ok(PurgeOutcome {
        purged_count,
        freed_bytes,
        receipt: Some(receipt),
    })
}

async fn purge_in(tx: &mut Tx, c: &Connection, now: i64) -> Result<PurgeOutcome> {
    let outcome = retire_scope(tx, c.scope_id, ReceiptKind::Purge, now).await?;
    let fresh = new_scope(tx, c.org_id, &c.id, now).await?;
    sqlx::query(
        "UPDATE connections SET scope_id = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
    )
    .bind(fresh)
    .bind(now)
    .bind(c.org_id)
    .bind(&c.id)
    .execute(&mut **tx)
    .await?;
    let receipt = outcome.receipt.map(|r| r.to_string()).unwrap_or_default();
    let event = WebhookEvent::purge_completed(
        &c.id,
        outcome.purged_count,
        outcome.freed_bytes,
        &receipt,
        false,
    );
    outbox::emit(tx, c.org_id, &event, now).await?;
    Ok(outcome)
}

async fn connection<'e, E>(exec: E, org: OrgId, id: &str) -> Result<Option<Connection>>
where
    E: sqlx::Executor<'e, Database = super::dialect::Db>,
{
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(exec)
        .await?)
}

pub async fn set_overrides(
    tx: &mut Tx,
    c: &Connection,
    overrides: Option<&SettingsPatch>,
    now: i64,
) -> Result<()> {
    let json = overrides.map(serde_json::to_string).transpose()?;
    sqlx::query(
        "UPDATE connections SET settings_overrides = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
    )
    .bind(json)
    .bind(now)
    .bind(c.org_id)
    .bind(&c.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
