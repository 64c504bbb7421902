//! Decoding PostgreSQL rows into catalog records (column lists shared by
//! every query that reads whole records).

use anyhow::{Context, anyhow};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::catalog::{ApiKeyRecord, Connection, KeyScope, MediaRecord, Org, VariantRecord};
use crate::model::observed::Origin;
use crate::model::{MediaType, VariantStatus};

pub const VARIANT_COLUMNS: &str = "media_id, label, status, size_bytes, content_type, \
     access_count, created_at, stored_at, last_accessed_at, blob_key, checksum, origin, \
     upstream_url, upstream_size, last_error";

pub const MEDIA_COLUMNS: &str = "media_id, media_type, duration, created_at, cached_at, list_hint";

pub const CONNECTION_COLUMNS: &str =
    "org_id, id, enabled, settings_overrides, scope_id, created_at, updated_at";

pub const ORG_COLUMNS: &str = "id, name, auto_enable, default_settings, created_at";

pub const KEY_COLUMNS: &str = "id, org_id, secret_hash, scopes, created_at, revoked_at";

pub fn variant(row: &PgRow) -> anyhow::Result<(String, VariantRecord)> {
    let status: String = row.try_get("status")?;
    Ok((
        row.try_get("media_id")?,
        VariantRecord {
            label: row.try_get("label")?,
            status: VariantStatus::parse(&status)
                .ok_or_else(|| anyhow!("unknown variant status {status:?} in catalog"))?,
            size_bytes: row.try_get::<i64, _>("size_bytes")? as u64,
            content_type: row.try_get("content_type")?,
            access_count: row.try_get::<i64, _>("access_count")? as u64,
            created_at: row.try_get("created_at")?,
            stored_at: row.try_get("stored_at")?,
            last_accessed_at: row.try_get("last_accessed_at")?,
            blob_key: row.try_get("blob_key")?,
            checksum: row.try_get("checksum")?,
            origin: Origin::parse(&row.try_get::<String, _>("origin")?).unwrap_or(Origin::Upload),
            upstream_url: row.try_get("upstream_url")?,
            upstream_size: row
                .try_get::<Option<i64>, _>("upstream_size")?
                .map(|n| n as u64),
            last_error: row.try_get("last_error")?,
        },
    ))
}

/// A media row without its variants (filled in by the caller).
pub fn media(row: &PgRow) -> anyhow::Result<MediaRecord> {
    let media_type: Option<String> = row.try_get("media_type")?;
    Ok(MediaRecord {
        media_id: row.try_get("media_id")?,
        // Every entry point refuses content types that are not media, so a
        // missing type can only come from a hand-edited catalog.
        media_type: media_type
            .as_deref()
            .and_then(MediaType::parse)
            .unwrap_or(MediaType::Image),
        duration: row.try_get("duration")?,
        created_at: row.try_get("created_at")?,
        cached_at: row.try_get("cached_at")?,
        list_hint: row.try_get("list_hint")?,
        variants: Vec::new(),
    })
}

pub fn connection(row: &PgRow) -> anyhow::Result<Connection> {
    let overrides: Option<String> = row.try_get("settings_overrides")?;
    Ok(Connection {
        org_id: row.try_get("org_id")?,
        id: row.try_get("id")?,
        enabled: row.try_get("enabled")?,
        overrides: overrides
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .context("connection settings overrides in the catalog are not valid JSON")?,
        scope_id: row.try_get("scope_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub fn org(row: &PgRow) -> anyhow::Result<Org> {
    let settings: String = row.try_get("default_settings")?;
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        auto_enable: row.try_get("auto_enable")?,
        default_settings: serde_json::from_str(&settings)
            .context("organization default settings in the catalog are not valid JSON")?,
        created_at: row.try_get("created_at")?,
    })
}

pub fn api_key(row: &PgRow) -> anyhow::Result<ApiKeyRecord> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: scopes.split(',').filter_map(KeyScope::parse).collect(),
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub fn scopes_text(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
