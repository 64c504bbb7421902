//! Decoding catalog rows into records, for every SQL backend: the schemas
//! share their tables and column names, and each column decodes to the same
//! Rust type on SQLite and on PostgreSQL.

use anyhow::{Context, anyhow};
use sqlx::Row;

use crate::catalog::{
    ApiKeyRecord, Connection, KeyScope, MediaRecord, Org, OrgRateLimit, VariantRecord,
};
use crate::model::observed::Origin;
use crate::model::{MediaType, VariantStatus};

/// Reading the column types the catalog uses, on any SQL backend.
pub trait CatalogRow {
    fn text(&self, column: &str) -> anyhow::Result<String>;
    fn opt_text(&self, column: &str) -> anyhow::Result<Option<String>>;
    fn int(&self, column: &str) -> anyhow::Result<i64>;
    fn opt_int(&self, column: &str) -> anyhow::Result<Option<i64>>;
    fn opt_real(&self, column: &str) -> anyhow::Result<Option<f64>>;
    fn flag(&self, column: &str) -> anyhow::Result<bool>;
    fn bytes(&self, column: &str) -> anyhow::Result<Vec<u8>>;
}

macro_rules! catalog_row {
    ($row:ty) => {
        impl CatalogRow for $row {
            fn text(&self, column: &str) -> anyhow::Result<String> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> anyhow::Result<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> anyhow::Result<i64> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> anyhow::Result<Option<i64>> {
                Ok(self.try_get(column)?)
            }
            fn opt_real(&self, column: &str) -> anyhow::Result<Option<f64>> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> anyhow::Result<bool> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> anyhow::Result<Vec<u8>> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

catalog_row!(sqlx::sqlite::SqliteRow);
catalog_row!(sqlx::postgres::PgRow);

pub const VARIANT_COLUMNS: &str = "media_id, label, status, size_bytes, content_type, \
     access_count, created_at, stored_at, last_accessed_at, blob_key, checksum, origin, \
     upstream_url, upstream_size, last_error, generation";

pub const MEDIA_COLUMNS: &str = "media_id, media_type, duration, created_at, cached_at, list_hint";

pub const CONNECTION_COLUMNS: &str =
    "org_id, id, enabled, settings_overrides, scope_id, created_at, updated_at";

pub const ORG_COLUMNS: &str =
    "id, name, auto_enable, default_settings, rate_limit_per_minute, rate_limit_burst, created_at";

pub const KEY_COLUMNS: &str = "id, org_id, secret_hash, scopes, created_at, revoked_at";

pub fn variant(row: &impl CatalogRow) -> anyhow::Result<(String, VariantRecord)> {
    let status = row.text("status")?;
    Ok((
        row.text("media_id")?,
        VariantRecord {
            label: row.text("label")?,
            status: VariantStatus::parse(&status)
                .ok_or_else(|| anyhow!("unknown variant status {status:?} in catalog"))?,
            size_bytes: row.int("size_bytes")? as u64,
            content_type: row.text("content_type")?,
            access_count: row.int("access_count")? as u64,
            created_at: row.int("created_at")?,
            stored_at: row.opt_int("stored_at")?,
            last_accessed_at: row.int("last_accessed_at")?,
            blob_key: row.opt_text("blob_key")?,
            checksum: row.opt_text("checksum")?,
            origin: Origin::parse(&row.text("origin")?).unwrap_or(Origin::Upload),
            upstream_url: row.opt_text("upstream_url")?,
            upstream_size: row.opt_int("upstream_size")?.map(|n| n as u64),
            last_error: row.opt_text("last_error")?,
            generation: row.int("generation")?,
        },
    ))
}

/// A media row without its variants (filled in by the caller).
pub fn media(row: &impl CatalogRow) -> anyhow::Result<MediaRecord> {
    let media_type = row.opt_text("media_type")?;
    Ok(MediaRecord {
        media_id: row.text("media_id")?,
        // Every entry point refuses content types that are not media, so a
        // missing type can only come from a hand-edited catalog.
        media_type: media_type
            .as_deref()
            .and_then(MediaType::parse)
            .unwrap_or(MediaType::Image),
        duration: row.opt_real("duration")?,
        created_at: row.int("created_at")?,
        cached_at: row.opt_int("cached_at")?,
        list_hint: row.opt_text("list_hint")?,
        variants: Vec::new(),
    })
}

pub fn connection(row: &impl CatalogRow) -> anyhow::Result<Connection> {
    let overrides = row.opt_text("settings_overrides")?;
    Ok(Connection {
        org_id: row.int("org_id")?,
        id: row.text("id")?,
        enabled: row.flag("enabled")?,
        overrides: overrides
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .context("connection settings overrides in the catalog are not valid JSON")?,
        scope_id: row.int("scope_id")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub fn org(row: &impl CatalogRow) -> anyhow::Result<Org> {
    let settings = row.text("default_settings")?;
    Ok(Org {
        id: row.int("id")?,
        name: row.text("name")?,
        auto_enable: row.flag("auto_enable")?,
        default_settings: serde_json::from_str(&settings)
            .context("organization default settings in the catalog are not valid JSON")?,
        rate_limit: OrgRateLimit {
            per_minute: limit_column(row, "rate_limit_per_minute")?,
            burst: limit_column(row, "rate_limit_burst")?,
        },
        created_at: row.int("created_at")?,
    })
}

fn limit_column(row: &impl CatalogRow, column: &str) -> anyhow::Result<Option<u32>> {
    row.opt_int(column)?
        .map(|v| u32::try_from(v).with_context(|| format!("orgs.{column} is out of range: {v}")))
        .transpose()
}

pub fn api_key(row: &impl CatalogRow) -> anyhow::Result<ApiKeyRecord> {
    let scopes = row.text("scopes")?;
    Ok(ApiKeyRecord {
        id: row.text("id")?,
        org_id: row.int("org_id")?,
        secret_hash: row.bytes("secret_hash")?,
        scopes: scopes.split(',').filter_map(KeyScope::parse).collect(),
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub fn scopes_text(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
