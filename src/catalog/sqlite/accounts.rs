//! Organizations, API keys, signing keys, connections, purges and totals.

use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::catalog::Org;
use crate::catalog::rows::{self, CONNECTION_COLUMNS, KEY_COLUMNS, ORG_COLUMNS};
use crate::catalog::{
    ApiKeyRecord, Connection, ConnectionChange, OrgId, OrgRateLimit, OrgTotals, PurgeOutcome,
    Result, ScopeId, ScopeTotals, SigningKeyRecord,
};
use crate::model::{ConnectionId, OrgName, SettingsPatch, VaultPlusSettings};

pub async fn ensure_org(
    tx: &mut Transaction<'static, Sqlite>,
    name: &OrgName,
    defaults: &VaultPlusSettings,
    auto_enable: bool,
    now: i64,
) -> Result<(Org, bool)> {
    let inserted = sqlx::query(
        "INSERT INTO orgs (name, auto_enable, default_settings, created_at) VALUES (?, ?, ?, ?) \
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
        "SELECT {ORG_COLUMNS} FROM orgs WHERE name = ?"
    )))
    .bind(name.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Ok((rows::org(&row)?, inserted))
}

pub async fn org_where(pool: &SqlitePool, clause: &'static str, arg: &str) -> Result<Option<Org>> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE {clause}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(arg)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::org(&r))
        .transpose()
}

pub async fn list_orgs(pool: &SqlitePool) -> Result<Vec<Org>> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::org)
        .collect()
}

pub async fn update_org_settings(
    tx: &mut Transaction<'static, Sqlite>,
    id: OrgId,
    auto_enable: bool,
    defaults: &VaultPlusSettings,
    push: Option<&SettingsPatch>,
    now: i64,
) -> Result<u64> {
    sqlx::query("UPDATE orgs SET auto_enable = ?, default_settings = ? WHERE id = ?")
        .bind(auto_enable)
        .bind(serde_json::to_string(defaults)?)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let conns = load_connections(tx, id).await?;
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
}

pub async fn set_org_rate_limit(
    tx: &mut Transaction<'static, Sqlite>,
    id: OrgId,
    limit: &OrgRateLimit,
) -> Result<bool> {
    let done =
        sqlx::query("UPDATE orgs SET rate_limit_per_minute = ?, rate_limit_burst = ? WHERE id = ?")
            .bind(limit.per_minute)
            .bind(limit.burst)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

async fn load_connections(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
) -> Result<Vec<Connection>> {
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(rows::connection)
        .collect()
}

async fn set_overrides(
    tx: &mut Transaction<'static, Sqlite>,
    c: &Connection,
    overrides: Option<&SettingsPatch>,
    now: i64,
) -> Result<()> {
    let json = overrides.map(serde_json::to_string).transpose()?;
    sqlx::query(
        "UPDATE connections SET settings_overrides = ?, updated_at = ? WHERE org_id = ? AND id = ?",
    )
    .bind(json)
    .bind(now)
    .bind(c.org_id)
    .bind(&c.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_api_key(pool: &SqlitePool, key: &ApiKeyRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, secret_hash, scopes, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.id)
    .bind(key.org_id)
    .bind(&key.secret_hash)
    .bind(rows::scopes_text(&key.scopes))
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn api_key(pool: &SqlitePool, id: &str) -> Result<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::api_key(&r))
        .transpose()
}

pub async fn list_api_keys(pool: &SqlitePool, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE (? IS NULL OR org_id = ?) ORDER BY created_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(org)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::api_key)
        .collect()
}

pub async fn revoke_api_key(pool: &SqlitePool, id: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn signing_keys(pool: &SqlitePool) -> Result<Vec<SigningKeyRecord>> {
    let rows = sqlx::query("SELECT id, secret, created_at FROM signing_keys ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(SigningKeyRecord {
                id: r.try_get("id")?,
                secret: r.try_get("secret")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn insert_signing_key(pool: &SqlitePool, key: &SigningKeyRecord) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO signing_keys (id, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(key.id)
    .bind(&key.secret)
    .bind(key.created_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_signing_key(pool: &SqlitePool, id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn replace_signing_secret(
    pool: &SqlitePool,
    id: i64,
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let done = sqlx::query("UPDATE signing_keys SET secret = ? WHERE id = ? AND secret = ?")
        .bind(new)
        .bind(id)
        .bind(old)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn new_scope(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
    id: &str,
    now: i64,
) -> Result<ScopeId> {
    let row = sqlx::query(
        "INSERT INTO scopes (org_id, connection_id, created_at) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("id")?)
}

pub async fn insert_connection(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
    id: &ConnectionId,
    enabled: bool,
    now: i64,
) -> Result<bool> {
    if connection(&mut **tx, org, id.as_str()).await?.is_some() {
        return Ok(false);
    }
    let scope = new_scope(tx, org, id.as_str(), now).await?;
    sqlx::query(
        "INSERT INTO connections (org_id, id, enabled, settings_overrides, scope_id, created_at, updated_at) \
         VALUES (?, ?, ?, NULL, ?, ?, ?)",
    )
    .bind(org)
    .bind(id.as_str())
    .bind(enabled)
    .bind(scope)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

pub async fn connection<'e, E>(exec: E, org: OrgId, id: &str) -> Result<Option<Connection>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = ? AND id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(exec)
        .await?
        .map(|r| rows::connection(&r))
        .transpose()
}

pub async fn connection_of_scope(pool: &SqlitePool, scope: ScopeId) -> Result<Option<Connection>> {
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE scope_id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::connection(&r))
        .transpose()
}

pub async fn list_connections(
    pool: &SqlitePool,
    org: OrgId,
    offset: u64,
    limit: u64,
) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::connection)
        .collect()
}

/// Retires the connection's scope: its totals are the purge's answer, and
/// everything in it disappears from every read at commit. Records and bytes
/// are deleted later by reclaim.
async fn retire_scope(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    now: i64,
) -> Result<PurgeOutcome> {
    let totals = scope_totals(&mut **tx, scope).await?;
    sqlx::query("UPDATE scopes SET retired_at = ? WHERE id = ?")
        .bind(now)
        .bind(scope)
        .execute(&mut **tx)
        .await?;
    Ok(PurgeOutcome {
        purged_count: totals.live_count,
        freed_bytes: totals.stored_bytes,
    })
}

async fn purge_in(
    tx: &mut Transaction<'static, Sqlite>,
    c: &Connection,
    now: i64,
) -> Result<PurgeOutcome> {
    let outcome = retire_scope(tx, c.scope_id, now).await?;
    let fresh = new_scope(tx, c.org_id, &c.id, now).await?;
    sqlx::query("UPDATE connections SET scope_id = ?, updated_at = ? WHERE org_id = ? AND id = ?")
        .bind(fresh)
        .bind(now)
        .bind(c.org_id)
        .bind(&c.id)
        .execute(&mut **tx)
        .await?;
    Ok(outcome)
}

pub async fn purge_connection(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
    id: &ConnectionId,
    now: i64,
) -> Result<Option<PurgeOutcome>> {
    let Some(c) = connection(&mut **tx, org, id.as_str()).await? else {
        return Ok(None);
    };
    Ok(Some(purge_in(tx, &c, now).await?))
}

pub async fn remove_connection(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
    id: &ConnectionId,
    now: i64,
) -> Result<Option<PurgeOutcome>> {
    let Some(c) = connection(&mut **tx, org, id.as_str()).await? else {
        return Ok(None);
    };
    let outcome = retire_scope(tx, c.scope_id, now).await?;
    sqlx::query("DELETE FROM connections WHERE org_id = ? AND id = ?")
        .bind(org)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(Some(outcome))
}

pub async fn update_connection(
    tx: &mut Transaction<'static, Sqlite>,
    org: OrgId,
    id: &ConnectionId,
    change: &ConnectionChange,
    now: i64,
) -> Result<Option<(Connection, Option<PurgeOutcome>)>> {
    let Some(c) = connection(&mut **tx, org, id.as_str()).await? else {
        return Ok(None);
    };
    let purged = if change.purge {
        Some(purge_in(tx, &c, now).await?)
    } else {
        None
    };
    if let Some(enabled) = change.enabled {
        sqlx::query(
            "UPDATE connections SET enabled = ?, updated_at = ? WHERE org_id = ? AND id = ?",
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
}

pub async fn scope_totals<'e, E>(exec: E, scope: ScopeId) -> Result<ScopeTotals>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let row = sqlx::query("SELECT live_count, stored_count, stored_bytes FROM scopes WHERE id = ?")
        .bind(scope)
        .fetch_optional(exec)
        .await?;
    let Some(row) = row else {
        return Ok(ScopeTotals::default());
    };
    Ok(ScopeTotals {
        live_count: row.try_get::<i64, _>("live_count")? as u64,
        stored_count: row.try_get::<i64, _>("stored_count")? as u64,
        stored_bytes: row.try_get::<i64, _>("stored_bytes")? as u64,
    })
}

pub async fn org_totals(pool: &SqlitePool, org: OrgId) -> Result<OrgTotals> {
    let row = sqlx::query(
        "SELECT count(*) AS n, coalesce(sum(c.enabled), 0) AS enabled, \
                coalesce(sum(s.live_count), 0) AS live, coalesce(sum(s.stored_bytes), 0) AS bytes \
         FROM connections c JOIN scopes s ON s.id = c.scope_id WHERE c.org_id = ?",
    )
    .bind(org)
    .fetch_one(pool)
    .await?;
    Ok(OrgTotals {
        connections: row.try_get::<i64, _>("n")? as u64,
        enabled_connections: row.try_get::<i64, _>("enabled")? as u64,
        live_count: row.try_get::<i64, _>("live")? as u64,
        stored_bytes: row.try_get::<i64, _>("bytes")? as u64,
    })
}
