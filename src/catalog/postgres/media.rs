//! Media and variant records: reads, queries, deletes, upload commits,
//! delivery look-ups and access counts.

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::eviction::{admits, enforce_limit};
use super::locks::lock_current_scope;
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

type Tx = Transaction<'static, Postgres>;

/// Condition that the scope is still some connection's current one (one
/// probe of the unique `connections_by_scope` index). Reads use it so that
/// nothing of a purge committed on any node is visible afterwards, even to
/// a request that looked the connection up just before.
const SCOPE_IS_CURRENT: &str = "EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = ";

pub async fn media(pool: &PgPool, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = ids.iter().map(|m| m.as_str().to_owned()).collect();
    let sql = format!(
        "SELECT {MEDIA_COLUMNS} FROM media m WHERE m.scope_id = $1 AND m.live_count > 0 \
         AND {SCOPE_IS_CURRENT}$1) AND m.media_id = ANY($2)"
    );
    let items = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(ids)
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
    pool: &PgPool,
    scope: ScopeId,
    mut items: Vec<MediaRecord>,
    removed: bool,
) -> Result<Vec<MediaRecord>> {
    if items.is_empty() {
        return Ok(items);
    }
    let ids: Vec<String> = items.iter().map(|m| m.media_id.clone()).collect();
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = $1 AND media_id = ANY($2) \
         AND ($3 OR status <> 'removed') ORDER BY media_id, label"
    );
    let mut by_media: HashMap<String, Vec<VariantRecord>> = HashMap::new();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(ids)
        .bind(removed)
        .fetch_all(pool)
        .await?
    {
        let (media_id, v) = rows::variant(&row)?;
        by_media.entry(media_id).or_default().push(v);
    }
    for m in &mut items {
        m.variants = by_media.remove(&m.media_id).unwrap_or_default();
    }
    Ok(items)
}

/// The sort expression; missing values take the extreme that sorts last,
/// as `SortKey::value_of` does (typed literals: a bare
/// -9223372036854775808 would be NUMERIC in PostgreSQL).
fn sort_expr(sort: SortKey) -> &'static str {
    match sort {
        SortKey::CreatedAtDesc | SortKey::CreatedAtAsc => "m.created_at",
        SortKey::CachedAtDesc => "coalesce(m.cached_at, '-9223372036854775808'::BIGINT)",
        SortKey::CachedAtAsc => "coalesce(m.cached_at, '9223372036854775807'::BIGINT)",
        SortKey::DurationDesc => "coalesce(m.duration, '-1.7976931348623157e308'::FLOAT8)",
        SortKey::DurationAsc => "coalesce(m.duration, '1.7976931348623157e308'::FLOAT8)",
    }
}

pub async fn query_media(pool: &PgPool, scope: ScopeId, q: &MediaQuery) -> Result<QueryPage> {
    let mut qb: QueryBuilder<Postgres> =
        sql_query::page_query(scope, q, sort_expr(q.sort), SCOPE_IS_CURRENT);
    let fetched = qb.build().fetch_all(pool).await?;
    let (items, next) = sql_query::page_of(&fetched, q)?;
    let removed = q.status == Some(VariantStatus::Removed);
    let items = attach_variants(pool, scope, items, removed).await?;
    Ok(QueryPage { items, next })
}

pub(super) async fn variants_of(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
) -> Result<Vec<VariantRecord>> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = $1 AND media_id = $2 ORDER BY label"
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

pub(super) async fn queue_blob(tx: &mut Tx, key: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds a delta to the scope's counters. Callers hold the scope row lock
/// and computed the delta from variant rows read under it.
pub(super) async fn bump_scope(
    tx: &mut Tx,
    scope: ScopeId,
    (live, stored, bytes): (i64, i64, i64),
) -> Result<()> {
    if (live, stored, bytes) == (0, 0, 0) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE scopes SET live_count = live_count + $1, stored_count = stored_count + $2, \
         stored_bytes = stored_bytes + $3 WHERE id = $4",
    )
    .bind(live)
    .bind(stored)
    .bind(bytes)
    .bind(scope)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes an item. The caller holds the scope lock and knows the scope is
/// current.
pub(super) async fn delete_locked(
    tx: &mut Tx,
    scope: ScopeId,
    id: &str,
    now: i64,
) -> Result<DeleteOutcome> {
    let variants = variants_of(tx, scope, id).await?;
    if variants.is_empty() {
        return Ok(DeleteOutcome::default());
    }
    // Jobs before variants: the lock order (see locks.rs).
    sqlx::query("DELETE FROM jobs WHERE scope_id = $1 AND media_id = $2")
        .bind(scope)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for key in variants.iter().filter_map(|v| v.blob_key.as_deref()) {
        queue_blob(tx, key, now).await?;
    }
    sqlx::query("DELETE FROM variants WHERE scope_id = $1 AND media_id = $2")
        .bind(scope)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM media WHERE scope_id = $1 AND media_id = $2")
        .bind(scope)
        .bind(id)
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

pub async fn delete_media(
    tx: &mut Tx,
    scope: ScopeId,
    id: &MediaId,
    now: i64,
) -> Result<DeleteOutcome> {
    if !lock_current_scope(tx, scope).await? {
        return Ok(DeleteOutcome::default());
    }
    delete_locked(tx, scope, id.as_str(), now).await
}

pub async fn begin_upload(pool: &PgPool, scope: ScopeId, key: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO upload_intents (blob_key, scope_id, started_at) VALUES ($1, $2, $3)")
        .bind(key)
        .bind(scope)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends the upload intent of a blob. False when the intent is gone (a
/// restart already gave the blob to reclaim): the blob must not be
/// committed then. Deleting the row locks it, so of two nodes racing for
/// one intent exactly one sees true.
pub(super) async fn take_intent(tx: &mut Tx, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM upload_intents WHERE blob_key = $1")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn abort_upload(tx: &mut Tx, key: &str, now: i64) -> Result<()> {
    queue_blob(tx, key, now).await?;
    take_intent(tx, key).await?;
    Ok(())
}

pub async fn commit_upload(tx: &mut Tx, up: &NewStoredVariant) -> Result<CommitOutcome> {
    if !lock_current_scope(tx, up.scope_id).await? {
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
    // The upload satisfies any storing job of this variant; a worker still
    // fetching it will find its job gone and discard what it fetched. The
    // job goes before the variant is written: the lock order (locks.rs).
    sqlx::query("DELETE FROM jobs WHERE scope_id = $1 AND media_id = $2 AND label = $3")
        .bind(up.scope_id)
        .bind(media_id)
        .bind(&up.label)
        .execute(&mut **tx)
        .await?;
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
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
    bump_scope(tx, up.scope_id, counter_delta(old, Some(&new))).await?;

    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at) VALUES ($1, $2, $3, $4) \
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
    tx: &mut Tx,
    scope: ScopeId,
    media_id: &str,
    variants: &[VariantRecord],
    duration: Option<f64>,
) -> Result<()> {
    let d = media_derived(variants);
    sqlx::query(
        "UPDATE media SET media_type = $1, cached_at = $2, live_count = $3, \
         duration = coalesce($4, duration) WHERE scope_id = $5 AND media_id = $6",
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

pub async fn requeue_upload_intents(tx: &mut Tx, started_before: i64, now: i64) -> Result<u64> {
    // One statement: the intents deleted are exactly the keys queued, even
    // if another node commits one of these uploads meanwhile.
    let row = sqlx::query(
        "WITH gone AS (DELETE FROM upload_intents WHERE started_at < $1 RETURNING blob_key), \
              queued AS (INSERT INTO reclaim_blobs (blob_key, queued_at) \
                         SELECT blob_key, $2 FROM gone ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT count(*) AS n FROM gone",
    )
    .bind(started_before)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<i64, _>("n")? as u64)
}

/// One indexed query (variant primary key plus the `connections_by_scope`
/// probe), never cached: a purge or delete on any node is seen by the very
/// next request on every node.
pub async fn current_variant(
    pool: &PgPool,
    scope: ScopeId,
    media: &MediaId,
    label: &Label,
) -> Result<Option<VariantRecord>> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.scope_id = $1 AND v.media_id = $2 \
         AND v.label = $3 AND v.status <> 'removed' AND {SCOPE_IS_CURRENT}v.scope_id)"
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

/// Each hit is its own statement (autocommit): access counts need no
/// atomicity across hits, and a transaction holding many variant locks in
/// arbitrary order could deadlock with an eviction holding some of them.
pub async fn record_accesses(pool: &PgPool, hits: &[AccessHit]) -> Result<()> {
    for h in hits {
        sqlx::query(
            "UPDATE variants SET access_count = access_count + $1, \
             last_accessed_at = greatest(last_accessed_at, $2) \
             WHERE scope_id = $3 AND media_id = $4 AND label = $5",
        )
        .bind(h.count as i64)
        .bind(h.last_at)
        .bind(h.scope_id)
        .bind(&h.media_id)
        .bind(&h.label)
        .execute(pool)
        .await?;
    }
    Ok(())
}
