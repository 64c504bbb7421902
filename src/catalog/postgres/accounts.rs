//! Organizations, API keys, signing keys, connections, purges and totals.

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::locks::{lock_connection, lock_org_connections};
use crate::catalog::rows::{self, CONNECTION_COLUMNS, KEY_COLUMNS, ORG_COLUMNS};
use crate::catalog::{
    ApiKeyRecord, Connection, ConnectionChange, Org, OrgId, OrgRateLimit, OrgTotals, PurgeOutcome,
    Result, ScopeId, ScopeTotals, SigningKeyRecord,
};
use crate::model::{ConnectionId, OrgName, SettingsPatch, VaultPlusSettings};

type Tx = Transaction<'static, Postgres>;

pub async fn ensure_org(
    tx: &mut Tx,
    name: &OrgName,
    defaults: &VaultPlusSettings,
    auto_enable: bool,
    now: i64,
) -> Result<(Org, bool)> {
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
}

pub async fn org_by_id(pool: &PgPool, id: OrgId) -> Result<Option<Org>> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::org(&r))
        .transpose()
}

pub async fn org_by_name(pool: &PgPool, name: &str) -> Result<Option<Org>> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE name = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::org(&r))
        .transpose()
}

pub async fn list_orgs(pool: &PgPool) -> Result<Vec<Org>> {
    let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::org)
        .collect()
}

pub async fn update_org_settings(
    tx: &mut Tx,
    id: OrgId,
    auto_enable: bool,
    defaults: &VaultPlusSettings,
    push: Option<&SettingsPatch>,
    now: i64,
) -> Result<u64> {
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
}

pub async fn set_org_rate_limit(tx: &mut Tx, id: OrgId, limit: &OrgRateLimit) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE orgs SET rate_limit_per_minute = $1, rate_limit_burst = $2 WHERE id = $3",
    )
    .bind(limit.per_minute.map(i64::from))
    .bind(limit.burst.map(i64::from))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn set_overrides(
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

pub async fn insert_api_key(pool: &PgPool, key: &ApiKeyRecord) -> Result<()> {
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
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn api_key(pool: &PgPool, id: &str) -> Result<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::api_key(&r))
        .transpose()
}

pub async fn list_api_keys(pool: &PgPool, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1::BIGINT IS NULL OR org_id = $1) \
         ORDER BY created_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::api_key)
        .collect()
}

pub async fn revoke_api_key(pool: &PgPool, id: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn signing_keys(pool: &PgPool) -> Result<Vec<SigningKeyRecord>> {
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

/// Signing-key changes notify every node in the same transaction: a
/// retired key must stop verifying everywhere at once.
pub async fn insert_signing_key(tx: &mut Tx, key: &SigningKeyRecord) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO signing_keys (id, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(key.id)
    .bind(&key.secret)
    .bind(key.created_at)
    .execute(&mut **tx)
    .await?;
    super::notify::notify(tx, "signing_keys").await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_signing_key(tx: &mut Tx, id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    super::notify::notify(tx, "signing_keys").await?;
    Ok(done.rows_affected() == 1)
}

pub async fn replace_signing_secret(
    pool: &PgPool,
    id: i64,
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let done = sqlx::query("UPDATE signing_keys SET secret = $1 WHERE id = $2 AND secret = $3")
        .bind(new)
        .bind(id)
        .bind(old)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
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

pub async fn insert_connection(
    tx: &mut Tx,
    org: OrgId,
    id: &ConnectionId,
    enabled: bool,
    now: i64,
) -> Result<bool> {
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
}

pub async fn connection<'e, E>(exec: E, org: OrgId, id: &str) -> Result<Option<Connection>>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 AND id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(id)
        .fetch_optional(exec)
        .await?
        .map(|r| rows::connection(&r))
        .transpose()
}

pub async fn connection_of_scope(pool: &PgPool, scope: ScopeId) -> Result<Option<Connection>> {
    let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE scope_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .fetch_optional(pool)
        .await?
        .map(|r| rows::connection(&r))
        .transpose()
}

pub async fn list_connections(
    pool: &PgPool,
    org: OrgId,
    offset: u64,
    limit: u64,
) -> Result<Vec<Connection>> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE org_id = $1 \
         ORDER BY created_at, id LIMIT $2 OFFSET $3"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(limit.min(i64::MAX as u64) as i64)
        .bind(offset.min(i64::MAX as u64) as i64)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::connection)
        .collect()
}

/// Retires the scope: its counters at that moment are the purge's answer.
/// The UPDATE waits for any transaction holding the scope row (every write
/// to the scope's media holds it to its end), so the totals it returns
/// include every write that saw the scope current, and none after it.
async fn retire_scope(tx: &mut Tx, scope: ScopeId, now: i64) -> Result<PurgeOutcome> {
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
    Ok(PurgeOutcome {
        purged_count: row.try_get::<i64, _>("live_count")? as u64,
        freed_bytes: row.try_get::<i64, _>("stored_bytes")? as u64,
    })
}

async fn purge_in(tx: &mut Tx, c: &Connection, now: i64) -> Result<PurgeOutcome> {
    let outcome = retire_scope(tx, c.scope_id, now).await?;
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
    Ok(outcome)
}

pub async fn purge_connection(
    tx: &mut Tx,
    org: OrgId,
    id: &ConnectionId,
    now: i64,
) -> Result<Option<PurgeOutcome>> {
    let Some(c) = lock_connection(tx, org, id.as_str()).await? else {
        return Ok(None);
    };
    Ok(Some(purge_in(tx, &c, now).await?))
}

pub async fn remove_connection(
    tx: &mut Tx,
    org: OrgId,
    id: &ConnectionId,
    now: i64,
) -> Result<Option<PurgeOutcome>> {
    let Some(c) = lock_connection(tx, org, id.as_str()).await? else {
        return Ok(None);
    };
    let outcome = retire_scope(tx, c.scope_id, now).await?;
    sqlx::query("DELETE FROM connections WHERE org_id = $1 AND id = $2")
        .bind(org)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(Some(outcome))
}

pub async fn update_connection(
    tx: &mut Tx,
    org: OrgId,
    id: &ConnectionId,
    change: &ConnectionChange,
    now: i64,
) -> Result<Option<(Connection, Option<PurgeOutcome>)>> {
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
}

pub async fn scope_totals<'e, E>(exec: E, scope: ScopeId) -> Result<ScopeTotals>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let row =
        sqlx::query("SELECT live_count, stored_count, stored_bytes FROM scopes WHERE id = $1")
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

pub async fn org_totals(pool: &PgPool, org: OrgId) -> Result<OrgTotals> {
    // sum() of BIGINT is NUMERIC in PostgreSQL: cast back.
    let row = sqlx::query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE c.enabled) AS enabled, \
                coalesce(sum(s.live_count), 0)::BIGINT AS live, \
                coalesce(sum(s.stored_bytes), 0)::BIGINT AS bytes \
         FROM connections c JOIN scopes s ON s.id = c.scope_id WHERE c.org_id = $1",
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
