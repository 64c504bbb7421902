//! Organizations, API keys and URL signing keys.

use async_trait::async_trait;

use super::SqlCatalog;
use super::connections::set_overrides;
use super::dialect;
use super::rows::{self, KEY_COLUMNS, ORG_COLUMNS};
use super::scopes::lock_org_connections;
use crate::catalog::{
    Accounts, ApiKeyRecord, Org, OrgId, OrgRateLimit, Result, Revoked, SigningKeyRecord,
};
use crate::model::{OrgName, SettingsPatch, VaultPlusSettings};

#[async_trait]
impl Accounts for SqlCatalog {
    async fn ensure_org(
        &self,
        name: &OrgName,
        defaults: &VaultPlusSettings,
        auto_enable: bool,
        now: i64,
    ) -> Result<(Org, bool)> {
        in_tx!(self, "ensure_org", |tx| async move {
            // Two nodes racing: the second insert waits for the first to commit,
            // then does nothing, and the select below sees the first one's row.
            let inserted = sqlx::query(
                "INSERT INTO orgs (name, auto_enable, default_settings, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.as_str())
            .bind(auto_enable)
            .bind(serde_json::to_string(defaults)?)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ORG_COLUMNS} FROM orgs WHERE name = $1"
            )))
            .bind(name.as_str())
            .fetch_one(&mut **tx)
            .await?;
            Ok((rows::org(&row)?, inserted))
        })
    }

    async fn org(&self, id: OrgId) -> Result<Option<Org>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?)
    }

    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE name = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .fetch_optional(self.db.reader())
            .await?)
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.reader())
            .await?)
    }

    async fn update_org_settings(
        &self,
        id: OrgId,
        auto_enable: bool,
        defaults: &VaultPlusSettings,
        push: Option<&SettingsPatch>,
        now: i64,
    ) -> Result<u64> {
        in_tx!(self, "update_org_settings", |tx| async move {
            // Connections first (lock order), so an override merged concurrently by
            // another node is either seen here or applied after this push.
            let conns = lock_org_connections(tx, id).await?;
            sqlx::query("UPDATE orgs SET auto_enable = $1, default_settings = $2 WHERE id = $3")
                .bind(auto_enable)
                .bind(serde_json::to_string(defaults)?)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            if let Some(pushed) = push {
                for c in &conns {
                    let Some(overrides) = &c.overrides else {
                        continue;
                    };
                    let left = overrides.without_fields_of(pushed);
                    if &left != overrides {
                        set_overrides(tx, c, Some(&left), now).await?;
                    }
                }
            }
            Ok(conns.len() as u64)
        })
    }

    async fn set_org_rate_limit(&self, id: OrgId, limit: &OrgRateLimit) -> Result<bool> {
        in_tx!(self, "set_org_rate_limit", |tx| async move {
            let done = sqlx::query(
                "UPDATE orgs SET rate_limit_per_minute = $1, rate_limit_burst = $2 WHERE id = $3",
            )
            .bind(limit.per_minute.map(i64::from))
            .bind(limit.burst.map(i64::from))
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, secret_hash, scopes, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(key.org_id)
        .bind(&key.secret_hash)
        .bind(rows::scopes_text(&key.scopes))
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?)
    }

    async fn list_api_keys(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE (CAST($1 AS BIGINT) IS NULL OR org_id = $1) \
             ORDER BY created_at, id"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .fetch_all(self.db.reader())
            .await?)
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(self.db.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        Ok(
            sqlx::query_as("SELECT id, secret, created_at FROM signing_keys ORDER BY id")
                .fetch_all(self.db.reader())
                .await?,
        )
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool> {
        in_tx!(self, "insert_signing_key", |tx| async move {
            // Signing-key changes notify every node in the same transaction: a
            // retired key must stop verifying everywhere at once.
            let done = sqlx::query(
                "INSERT INTO signing_keys (id, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(key.id)
            .bind(&key.secret)
            .bind(key.created_at)
            .execute(&mut **tx)
            .await?;
            dialect::notify(tx, "signing_keys").await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn delete_signing_key(&self, id: i64) -> Result<bool> {
        in_tx!(self, "delete_signing_key", |tx| async move {
            let done = sqlx::query("DELETE FROM signing_keys WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            dialect::notify(tx, "signing_keys").await?;
            dialect::revoke(tx, &Revoked::Keys).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn replace_signing_secret(&self, id: i64, old: &[u8], new: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE signing_keys SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
