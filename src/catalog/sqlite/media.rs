//! Media and variant records: reads, queries, deletes, upload commits,
//! delivery look-ups and access counts.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::eviction::{admits, enforce_limit};
use crate::catalog::derive::{counter_delta, media_derived, totals_of};
use crate::catalog::generation;
use crate::catalog::rows::{self, MEDIA_COLUMNS, VARIANT_COLUMNS};
use crate::catalog::sql_query;
use crate::catalog::{
    AccessHit, CommitOutcome, DeleteOutcome, MediaQuery, MediaRecord, NewStoredVariant, QueryPage,
    Result, ScopeId, SortKey, VariantRecord,
};
use crate::model::observed::Origin;
use crate::model::{Label, MediaId, VariantStatus};

/// Condition that the scope is still some connection's current one. Reads
/// use it so that nothing of a purge is visible once the purge committed,
/// even to a request that looked the connection up just before.
const SCOPE_IS_CURRENT: &str = "EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = ";

pub async fn media(pool: &SqlitePool, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {MEDIA_COLUMNS} FROM media m WHERE m.scope_id = "
    ));
    qb.push_bind(scope);
    qb.push(" AND m.live_count > 0 AND ");
    qb.push(SCOPE_IS_CURRENT).push_bind(scope).push(")");
    qb.push(" AND m.media_id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_str());
    }
    qb.push(")");
    let items = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::media)
        .collect::<Result<Vec<_>>>()?;
    attach_variants(pool, scope, items, false).await
}

/// Loads the variants of `items` (all of them when `removed` is set, else
/// the non-removed ones) and attaches them in label order.
pub(super) async fn attach_variants(
    pool: &SqlitePool,
    scope: ScopeId,
    mut items: Vec<MediaRecord>,
    removed: bool,
) -> Result<Vec<MediaRecord>> {
    if items.is_empty() {
        return Ok(items);
    }
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = "
    ));
    qb.push_bind(scope);
    if !removed {
        qb.push(" AND status <> 'removed'");
    }
    qb.push(" AND media_id IN (");
    let mut sep = qb.separated(", ");
    for m in &items {
        sep.push_bind(m.media_id.as_str());
    }
    qb.push(") ORDER BY media_id, label");
    let mut by_media: HashMap<String, Vec<VariantRecord>> = HashMap::new();
    for row in qb.build().fetch_all(pool).await? {
        let (media_id, v) = rows::variant(&row)?;
        by_media.entry(media_id).or_default().push(v);
    }
    for m in &mut items {
        m.variants = by_media.remove(&m.media_id).unwrap_or_default();
    }
    Ok(items)
}

fn sort_expr(sort: SortKey) -> &'static str {
    match sort {
        SortKey::CreatedAtDesc | SortKey::CreatedAtAsc => "m.created_at",
        SortKey::CachedAtDesc => "coalesce(m.cached_at, -9223372036854775808)",
        SortKey::CachedAtAsc => "coalesce(m.cached_at, 9223372036854775807)",
        SortKey::DurationDesc => "coalesce(m.duration, -1.7976931348623157e308)",
        SortKey::DurationAsc => "coalesce(m.duration, 1.7976931348623157e308)",
    }
}

pub async fn query_media(pool: &SqlitePool, scope: ScopeId, q: &MediaQuery) -> Result<QueryPage> {
    let mut qb: QueryBuilder<Sqlite> =
        sql_query::page_query(scope, q, sort_expr(q.sort), SCOPE_IS_CURRENT);
    let fetched = qb.build().fetch_all(pool).await?;
    let (items, next) = sql_query::page_of(&fetched, q)?;
    let removed = q.status == Some(VariantStatus::Removed);
    let items = attach_variants(pool, scope, items, removed).await?;
    Ok(QueryPage { items, next })
}

pub(super) async fn scope_is_current(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM connections WHERE scope_id = ?")
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

pub(super) async fn variants_of(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    media: &str,
) -> Result<Vec<VariantRecord>> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = ? AND media_id = ? ORDER BY label"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(media)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| rows::variant(r).map(|(_, v)| v))
        .collect()
}

pub(super) async fn queue_blob(
    tx: &mut Transaction<'static, Sqlite>,
    key: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn bump_scope(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    (live, stored, bytes): (i64, i64, i64),
) -> Result<()> {
    if (live, stored, bytes) == (0, 0, 0) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE scopes SET live_count = live_count + ?, stored_count = stored_count + ?, \
         stored_bytes = stored_bytes + ? WHERE id = ?",
    )
    .bind(live)
    .bind(stored)
    .bind(bytes)
    .bind(scope)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn delete_media(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    id: &MediaId,
    now: i64,
) -> Result<DeleteOutcome> {
    if !scope_is_current(tx, scope).await? {
        return Ok(DeleteOutcome::default());
    }
    let variants = variants_of(tx, scope, id.as_str()).await?;
    if variants.is_empty() {
        return Ok(DeleteOutcome::default());
    }
    for key in variants.iter().filter_map(|v| v.blob_key.as_deref()) {
        queue_blob(tx, key, now).await?;
    }
    sqlx::query("DELETE FROM variants WHERE scope_id = ? AND media_id = ?")
        .bind(scope)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM media WHERE scope_id = ? AND media_id = ?")
        .bind(scope)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM jobs WHERE scope_id = ? AND media_id = ?")
        .bind(scope)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
    let totals = totals_of(&variants);
    bump_scope(
        tx,
        scope,
        (
            -(totals.live_count as i64),
            -(totals.stored_count as i64),
            -(totals.stored_bytes as i64),
        ),
    )
    .await?;
    Ok(DeleteOutcome {
        removed_count: totals.live_count,
        freed_bytes: totals.stored_bytes,
    })
}

pub async fn begin_upload(pool: &SqlitePool, scope: ScopeId, key: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO upload_intents (blob_key, scope_id, started_at) VALUES (?, ?, ?)")
        .bind(key)
        .bind(scope)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

async fn forget_intent(tx: &mut Transaction<'static, Sqlite>, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM upload_intents WHERE blob_key = ?")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the upload intent of a blob about to be committed. False when the
/// intent is gone (a restart already gave the blob to reclaim): the blob
/// must not be committed then.
pub(super) async fn take_intent(tx: &mut Transaction<'static, Sqlite>, key: &str) -> Result<bool> {
    forget_intent(tx, key).await
}

pub async fn abort_upload(
    tx: &mut Transaction<'static, Sqlite>,
    key: &str,
    now: i64,
) -> Result<()> {
    queue_blob(tx, key, now).await?;
    forget_intent(tx, key).await?;
    Ok(())
}

pub async fn commit_upload(
    tx: &mut Transaction<'static, Sqlite>,
    up: &NewStoredVariant,
) -> Result<CommitOutcome> {
    if !scope_is_current(tx, up.scope_id).await? {
        abort_upload(tx, &up.blob_key, up.now).await?;
        return Ok(CommitOutcome::ScopeRetired);
    }
    if !take_intent(tx, &up.blob_key).await? {
        queue_blob(tx, &up.blob_key, up.now).await?;
        return Ok(CommitOutcome::Superseded);
    }
    let media_id = up.media_id.as_str();
    let before = variants_of(tx, up.scope_id, media_id).await?;
    let old = before.iter().find(|v| v.label == up.label);
    let replaced = old
        .filter(|o| o.status == VariantStatus::Stored)
        .map_or(0, |o| o.size_bytes);
    if !admits(tx, up.scope_id, up.limit, up.size_bytes, replaced).await? {
        abort_upload(tx, &up.blob_key, up.now).await?;
        return Ok(CommitOutcome::OverLimit);
    }
    let new = VariantRecord {
        label: up.label.clone(),
        status: VariantStatus::Stored,
        size_bytes: up.size_bytes,
        content_type: up.content_type.clone(),
        access_count: old.map_or(0, |o| o.access_count),
        created_at: old.map_or(up.now, |o| o.created_at),
        stored_at: Some(up.now),
        last_accessed_at: old.map_or(up.now, |o| o.last_accessed_at),
        blob_key: Some(up.blob_key.clone()),
        checksum: Some(up.checksum.clone()),
        origin: Origin::Upload,
        upstream_url: None,
        upstream_size: None,
        last_error: None,
        // Client bytes: URLs handed out before never serve them.
        generation: generation::fresh(),
    };
    sqlx::query(
        "INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, access_count, \
         created_at, stored_at, last_accessed_at, blob_key, checksum, generation) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (scope_id, media_id, label) DO UPDATE SET status = excluded.status, \
         generation = excluded.generation, \
         size_bytes = excluded.size_bytes, content_type = excluded.content_type, \
         stored_at = excluded.stored_at, blob_key = excluded.blob_key, checksum = excluded.checksum, \
         origin = 'upload', upstream_url = NULL, upstream_size = NULL, last_error = NULL",
    )
    .bind(up.scope_id)
    .bind(media_id)
    .bind(&new.label)
    .bind(new.status.as_str())
    .bind(new.size_bytes as i64)
    .bind(&new.content_type)
    .bind(new.access_count as i64)
    .bind(new.created_at)
    .bind(new.stored_at)
    .bind(new.last_accessed_at)
    .bind(&new.blob_key)
    .bind(&new.checksum)
    .bind(new.generation)
    .execute(&mut **tx)
    .await?;
    if let Some(old_key) = old.and_then(|o| o.blob_key.as_deref()) {
        queue_blob(tx, old_key, up.now).await?;
    }
    // The upload satisfies any storing job of this variant; a worker still
    // fetching it will find its job gone and discard what it fetched.
    sqlx::query("DELETE FROM jobs WHERE scope_id = ? AND media_id = ? AND label = ?")
        .bind(up.scope_id)
        .bind(media_id)
        .bind(&up.label)
        .execute(&mut **tx)
        .await?;
    bump_scope(tx, up.scope_id, counter_delta(old, Some(&new))).await?;

    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (scope_id, media_id) DO NOTHING",
    )
    .bind(up.scope_id)
    .bind(media_id)
    .bind(up.media_id.sort_key())
    .bind(up.now)
    .execute(&mut **tx)
    .await?;
    let mut after: Vec<VariantRecord> = before
        .iter()
        .filter(|v| v.label != up.label)
        .cloned()
        .collect();
    after.push(new.clone());
    refresh_media(tx, up.scope_id, media_id, &after, up.duration).await?;
    enforce_limit(tx, up.scope_id, up.limit, (media_id, &up.label), up.now).await?;

    Ok(if old.is_some() {
        CommitOutcome::Replaced(new)
    } else {
        CommitOutcome::Created(new)
    })
}

/// Rewrites the media row's derived columns after its variants changed.
pub(super) async fn refresh_media(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    media_id: &str,
    variants: &[VariantRecord],
    duration: Option<f64>,
) -> Result<()> {
    let d = media_derived(variants);
    sqlx::query(
        "UPDATE media SET media_type = ?, cached_at = ?, live_count = ?, \
         duration = coalesce(?, duration) WHERE scope_id = ? AND media_id = ?",
    )
    .bind(d.media_type.map(|t| t.as_str()))
    .bind(d.cached_at)
    .bind(d.live_count)
    .bind(duration)
    .bind(scope)
    .bind(media_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn requeue_upload_intents(
    tx: &mut Transaction<'static, Sqlite>,
    started_before: i64,
    now: i64,
) -> Result<u64> {
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) \
         SELECT blob_key, ? FROM upload_intents WHERE started_at < ? ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(started_before)
    .execute(&mut **tx)
    .await?;
    let done = sqlx::query("DELETE FROM upload_intents WHERE started_at < ?")
        .bind(started_before)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

pub async fn current_variant(
    pool: &SqlitePool,
    scope: ScopeId,
    media: &MediaId,
    label: &Label,
) -> Result<Option<VariantRecord>> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.scope_id = ? AND v.media_id = ? \
         AND v.label = ? AND v.status <> 'removed' AND {SCOPE_IS_CURRENT}v.scope_id)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(media.as_str())
        .bind(label.as_str())
        .fetch_optional(pool)
        .await?
        .map(|r| rows::variant(&r).map(|(_, v)| v))
        .transpose()
}

pub async fn record_accesses(
    tx: &mut Transaction<'static, Sqlite>,
    hits: &[AccessHit],
) -> Result<()> {
    for h in hits {
        sqlx::query(
            "UPDATE variants SET access_count = access_count + ?, \
             last_accessed_at = max(last_accessed_at, ?) \
             WHERE scope_id = ? AND media_id = ? AND label = ?",
        )
        .bind(h.count as i64)
        .bind(h.last_at)
        .bind(h.scope_id)
        .bind(&h.media_id)
        .bind(&h.label)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
