//! Decoding catalog rows into records. Both schemas share their tables and
//! column names, and each column decodes to the same Rust type on SQLite
//! and on PostgreSQL.

use std::borrow::Cow;

use anyhow::{Context, anyhow};
use sqlx::Row as _;

pub use super::dialect::Row;
use crate::catalog::{
    ApiKeyRecord, Connection, Job, MediaRecord, Org, OrgRateLimit, ScopeTotals, VariantRecord,
};
use crate::model::observed::Origin;
use crate::model::{KeyScope, MediaType, VariantStatus};

/// Lets `sqlx::query_as` decode the records below (this file is compiled
/// once per backend, so each gets its own impl).
macro_rules! from_row {
    ($($record:ty => $decode:ident),*) => {$(
        impl sqlx::FromRow<'_, Row> for $record {
            fn from_row(row: &Row) -> sqlx::Result<Self> {
                $decode(row).map_err(|e| sqlx::Error::Decode(e.into()))
            }
        }
    )*};
}

from_row!(VariantRecord => variant, Job => job, Org => org, Connection => connection, ApiKeyRecord => api_key, MediaRecord => media);

pub const VARIANT_COLUMNS: &str = "media_id, label, status, size_bytes, content_type, \
     access_count, created_at, stored_at, last_accessed_at, blob_key, checksum, origin, \
     upstream_url, upstream_size, last_error, generation";

pub const MEDIA_COLUMNS: &str = "media_id, media_type, duration, created_at, cached_at, list_hint";

pub const CONNECTION_COLUMNS: &str =
    "org_id, id, enabled, settings_overrides, scope_id, created_at, updated_at";

pub const ORG_COLUMNS: &str =
    "id, name, auto_enable, default_settings, rate_limit_per_minute, rate_limit_burst, created_at";

pub const KEY_COLUMNS: &str = "id, org_id, secret_hash, scopes, created_at, revoked_at";

/// The columns of a [`ListMember`](crate::catalog::ListMember).
pub const MEMBER_COLUMNS: &str =
    "media_id, first_added_at, last_added_at, last_seen_at, last_synced_at";

/// The columns of a [`JobRecord`](crate::catalog::JobRecord).
pub const JOB_COLUMNS: &str = "id, media_id, label, attempts, run_after, \
     lease_owner IS NOT NULL AS leased, failed_at, last_error";

/// A counter or size column: stored signed, never negative.
fn unsigned(row: &Row, column: &str) -> anyhow::Result<u64> {
    Ok(row.try_get::<i64, _>(column)? as u64)
}

fn opt_unsigned(row: &Row, column: &str) -> anyhow::Result<Option<u64>> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|n| n as u64))
}

/// Scope counters, from the three columns that hold them.
pub fn totals(row: &Row, live: &str, stored: &str, bytes: &str) -> anyhow::Result<ScopeTotals> {
    Ok(ScopeTotals {
        live_count: unsigned(row, live)?,
        stored_count: unsigned(row, stored)?,
        stored_bytes: unsigned(row, bytes)?,
    })
}

pub fn variant(row: &Row) -> anyhow::Result<VariantRecord> {
    let status: String = row.try_get("status")?;
    Ok(VariantRecord {
        label: row.try_get("label")?,
        status: VariantStatus::parse(&status)
            .ok_or_else(|| anyhow!("unknown variant status {status:?} in catalog"))?,
        size_bytes: unsigned(row, "size_bytes")?,
        content_type: row.try_get("content_type")?,
        access_count: unsigned(row, "access_count")?,
        created_at: row.try_get("created_at")?,
        stored_at: row.try_get("stored_at")?,
        last_accessed_at: row.try_get("last_accessed_at")?,
        blob_key: row.try_get("blob_key")?,
        checksum: row.try_get("checksum")?,
        origin: Origin::parse(row.try_get("origin")?).unwrap_or(Origin::Upload),
        upstream_url: row.try_get("upstream_url")?,
        upstream_size: opt_unsigned(row, "upstream_size")?,
        last_error: row.try_get("last_error")?,
        generation: row.try_get("generation")?,
    })
}

/// Columns of a record read beside other tables' in one row, so that names
/// the tables share cannot collide: each of `columns` taken from table
/// alias `table` as `{prefix}{column}` (`c.id AS c_id`). The `_in`
/// decoders below read them back by the same prefix.
pub fn prefixed(table: &str, columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|c| {
            let c = c.trim();
            format!("{table}.{c} AS {prefix}{c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns [`prefixed`] names, all null: the same names for a row of a
/// statement that unites rows of different tables (`UNION ALL`).
pub fn nulls(columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("NULL AS {prefix}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of `column` read with `prefix` (no copy without one).
fn named<'a>(prefix: &str, column: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() {
        Cow::Borrowed(column)
    } else {
        Cow::Owned(format!("{prefix}{column}"))
    }
}

/// A media row without its variants (filled in by the caller).
pub fn media(row: &Row) -> anyhow::Result<MediaRecord> {
    media_in(row, "")
}

/// [`media`] from columns read with `prefix` ([`prefixed`]).
pub fn media_in(row: &Row, prefix: &str) -> anyhow::Result<MediaRecord> {
    let col = |c| named(prefix, c);
    Ok(MediaRecord {
        media_id: row.try_get(&*col("media_id"))?,
        // Every entry point refuses content types that are not media, so a
        // missing type can only come from a hand-edited catalog.
        media_type: row
            .try_get::<Option<&str>, _>(&*col("media_type"))?
            .and_then(MediaType::parse)
            .unwrap_or(MediaType::Image),
        duration: row.try_get(&*col("duration"))?,
        created_at: row.try_get(&*col("created_at"))?,
        cached_at: row.try_get(&*col("cached_at"))?,
        list_hint: row.try_get(&*col("list_hint"))?,
        variants: Vec::new(),
    })
}

pub fn connection(row: &Row) -> anyhow::Result<Connection> {
    connection_in(row, "")
}

/// [`connection`] from columns read with `prefix` ([`prefixed`]).
pub fn connection_in(row: &Row, prefix: &str) -> anyhow::Result<Connection> {
    let col = |c| named(prefix, c);
    Ok(Connection {
        org_id: row.try_get(&*col("org_id"))?,
        id: row.try_get(&*col("id"))?,
        enabled: row.try_get(&*col("enabled"))?,
        overrides: row
            .try_get::<Option<&str>, _>(&*col("settings_overrides"))?
            .map(serde_json::from_str)
            .transpose()
            .context("connection settings overrides in the catalog are not valid JSON")?,
        scope_id: row.try_get(&*col("scope_id"))?,
        created_at: row.try_get(&*col("created_at"))?,
        updated_at: row.try_get(&*col("updated_at"))?,
    })
}

pub fn org(row: &Row) -> anyhow::Result<Org> {
    org_in(row, "")
}

/// [`org`] from columns read with `prefix` ([`prefixed`]).
pub fn org_in(row: &Row, prefix: &str) -> anyhow::Result<Org> {
    let col = |c| named(prefix, c);
    Ok(Org {
        id: row.try_get(&*col("id"))?,
        name: row.try_get(&*col("name"))?,
        auto_enable: row.try_get(&*col("auto_enable"))?,
        default_settings: serde_json::from_str(row.try_get(&*col("default_settings"))?)
            .context("organization default settings in the catalog are not valid JSON")?,
        rate_limit: OrgRateLimit {
            per_minute: limit_column(row, &col("rate_limit_per_minute"))?,
            burst: limit_column(row, &col("rate_limit_burst"))?,
        },
        created_at: row.try_get(&*col("created_at"))?,
    })
}

fn limit_column(row: &Row, column: &str) -> anyhow::Result<Option<u32>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| u32::try_from(v).with_context(|| format!("orgs.{column} is out of range: {v}")))
        .transpose()
}

pub fn api_key(row: &Row) -> anyhow::Result<ApiKeyRecord> {
    api_key_in(row, "")
}

/// [`api_key`] from columns read with `prefix` ([`prefixed`]).
pub fn api_key_in(row: &Row, prefix: &str) -> anyhow::Result<ApiKeyRecord> {
    let col = |c| named(prefix, c);
    Ok(ApiKeyRecord {
        id: row.try_get(&*col("id"))?,
        org_id: row.try_get(&*col("org_id"))?,
        secret_hash: row.try_get(&*col("secret_hash"))?,
        scopes: row
            .try_get::<&str, _>(&*col("scopes"))?
            .split(',')
            .filter_map(KeyScope::parse)
            .collect(),
        created_at: row.try_get(&*col("created_at"))?,
        revoked_at: row.try_get(&*col("revoked_at"))?,
    })
}

/// How key scopes are stored: one comma-separated text column.
pub fn scopes_text(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A claimed job, with what its worker needs of the variant and media.
pub fn job(row: &Row) -> anyhow::Result<Job> {
    Ok(Job {
        id: row.try_get("id")?,
        scope_id: row.try_get("scope_id")?,
        org_id: row.try_get("org_id")?,
        connection_id: row.try_get("connection_id")?,
        media_id: row.try_get("media_id")?,
        label: row.try_get("label")?,
        attempts: unsigned(row, "attempts")? as u32,
        origin: Origin::parse(row.try_get("origin")?).unwrap_or(Origin::Upstream),
        upstream_url: row.try_get("upstream_url")?,
        upstream_size: opt_unsigned(row, "upstream_size")?,
        content_type: row.try_get("content_type")?,
        list_hint: row.try_get("list_hint")?,
        // Given by the claim, with its intent.
        blob_key: String::new(),
    })
}
