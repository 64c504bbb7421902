//! Evictions: a stored variant loses its bytes but keeps its record, as
//! `removed` with size 0, so a later sync or proxy hit can store it again.
//! Storage limits evict at store time, in the storing transaction. Every
//! entry point here runs under the scope row lock (see locks.rs).

use sqlx::{Postgres, Row, Transaction};

use super::accounts::scope_totals;
use super::locks::lock_current_scope;
use super::media::{bump_scope, queue_blob, refresh_media, variants_of};
use crate::catalog::derive::counter_delta;
use crate::catalog::{Result, ScopeId};
use crate::model::VariantStatus;
use crate::model::settings::{LimitStrategy, StorageLimit};

type Tx = Transaction<'static, Postgres>;

/// Turns a stored variant into a `removed` tombstone and queues its bytes.
/// The caller holds the scope lock.
async fn evict_locked(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
    label: &str,
    now: i64,
) -> Result<u64> {
    let variants = variants_of(tx, scope, media).await?;
    let Some(old) = variants.iter().find(|v| v.label == label) else {
        return Ok(0);
    };
    if old.status != VariantStatus::Stored {
        return Ok(0);
    }
    let mut gone = old.clone();
    gone.status = VariantStatus::Removed;
    gone.size_bytes = 0;
    gone.stored_at = None;
    gone.blob_key = None;
    gone.checksum = None;
    sqlx::query(
        "UPDATE variants SET status = 'removed', size_bytes = 0, stored_at = NULL, blob_key = NULL, \
         checksum = NULL WHERE scope_id = $1 AND media_id = $2 AND label = $3",
    )
    .bind(scope)
    .bind(media)
    .bind(label)
    .execute(&mut **tx)
    .await?;
    if let Some(key) = old.blob_key.as_deref() {
        queue_blob(tx, key, now).await?;
    }
    bump_scope(tx, scope, counter_delta(Some(old), Some(&gone))).await?;
    let mut after = variants.clone();
    after.retain(|v| v.label != label);
    after.push(gone);
    refresh_media(tx, scope, media, &after, None).await?;
    Ok(old.size_bytes)
}

/// Evicts one stored variant of a current scope.
pub async fn evict_variant(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
    label: &str,
    now: i64,
) -> Result<u64> {
    if !lock_current_scope(tx, scope).await? {
        return Ok(0);
    }
    evict_locked(tx, scope, media, label, now).await
}

/// Whether storing `new_size` bytes in place of `replaced_size` is allowed
/// at all: never above the limit itself, and under `block_new` only when
/// it fits. Reads the counters under the caller's scope lock, so two nodes
/// cannot both squeeze into the last free bytes.
pub async fn admits(
    tx: &mut Tx,
    scope: ScopeId,
    limit: Option<StorageLimit>,
    new_size: u64,
    replaced_size: u64,
) -> Result<bool> {
    let Some(limit) = limit else { return Ok(true) };
    if new_size > limit.bytes {
        return Ok(false);
    }
    if limit.strategy != LimitStrategy::BlockNew {
        return Ok(true);
    }
    let t = scope_totals(&mut **tx, scope).await?;
    Ok(t.stored_bytes - replaced_size.min(t.stored_bytes) + new_size <= limit.bytes)
}

/// Evicts by the limit's strategy until the scope is within its limit,
/// sparing `keep` (the variant just stored). The caller holds the scope
/// lock. Returns (variants evicted, bytes freed).
pub async fn enforce_limit(
    tx: &mut Tx,
    scope: ScopeId,
    limit: Option<StorageLimit>,
    keep: (&str, &str),
    now: i64,
) -> Result<(u64, u64)> {
    let mut evicted = (0, 0);
    let Some(limit) = limit else {
        return Ok(evicted);
    };
    let order = match limit.strategy {
        LimitStrategy::BlockNew => return Ok(evicted),
        LimitStrategy::PurgeOldest => "stored_at ASC",
        LimitStrategy::PurgeLargest => "size_bytes DESC",
        LimitStrategy::PurgeSmallest => "size_bytes ASC",
    };
    let sql = format!(
        "SELECT media_id, label FROM variants WHERE scope_id = $1 AND status = 'stored' \
         AND NOT (media_id = $2 AND label = $3) ORDER BY {order}, media_id, label LIMIT 1"
    );
    while scope_totals(&mut **tx, scope).await?.stored_bytes > limit.bytes {
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(scope)
            .bind(keep.0)
            .bind(keep.1)
            .fetch_optional(&mut **tx)
            .await?
        else {
            break;
        };
        let media: String = row.try_get("media_id")?;
        let label: String = row.try_get("label")?;
        evicted.1 += evict_locked(tx, scope, &media, &label, now).await?;
        evicted.0 += 1;
    }
    Ok(evicted)
}

/// `enforce_limit` as an entry point of its own: takes the scope lock.
pub async fn enforce_storage_limit(
    tx: &mut Tx,
    scope: ScopeId,
    limit: StorageLimit,
    now: i64,
) -> Result<(u64, u64)> {
    if !lock_current_scope(tx, scope).await? {
        return Ok((0, 0));
    }
    enforce_limit(tx, scope, Some(limit), ("", ""), now).await
}

/// Evicts up to `limit` variants past their retention or access expiry.
/// Access expiry counts from the last access or, if later, from when the
/// bytes were stored: a variant stored today is not "unused for N days".
pub async fn evict_expired(
    tx: &mut Tx,
    scope: ScopeId,
    stored_before: Option<i64>,
    accessed_before: Option<i64>,
    limit: u64,
    now: i64,
) -> Result<(u64, u64)> {
    if !lock_current_scope(tx, scope).await? {
        return Ok((0, 0));
    }
    let rows = sqlx::query(
        "SELECT media_id, label FROM variants WHERE scope_id = $1 AND status = 'stored' \
         AND (stored_at < $2 OR greatest(stored_at, last_accessed_at) < $3) \
         ORDER BY stored_at, media_id, label LIMIT $4",
    )
    .bind(scope)
    .bind(stored_before.unwrap_or(i64::MIN))
    .bind(accessed_before.unwrap_or(i64::MIN))
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(&mut **tx)
    .await?;
    let mut evicted = (0, 0);
    for row in rows {
        let media: String = row.try_get("media_id")?;
        let label: String = row.try_get("label")?;
        evicted.1 += evict_locked(tx, scope, &media, &label, now).await?;
        evicted.0 += 1;
    }
    Ok(evicted)
}
