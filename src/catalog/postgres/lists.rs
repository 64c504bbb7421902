//! List memberships, sync baselines, and recording what a listing observed.
//! A list add or sync runs under the scope row lock (see locks.rs), so two
//! nodes syncing the same connection apply their plans one after the other.

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::jobs::ensure_job;
use super::locks::lock_current_scope;
use super::media::{attach_variants, bump_scope, delete_locked, refresh_media, variants_of};
use crate::catalog::derive::counter_delta;
use crate::catalog::generation;
use crate::catalog::paging;
use crate::catalog::rows::{self, MEDIA_COLUMNS};
use crate::catalog::{
    ListMember, ListOutcome, ListSummary, MemberKey, Page, PageRequest, Result, ScopeId,
    VariantRecord,
};
use crate::model::VariantStatus;
use crate::model::list_plan::{Cached, ListMode, Snapshot, plan};
use crate::model::observed::ObservedMedia;

type Tx = Transaction<'static, Postgres>;

pub async fn apply_list(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    mode: ListMode,
    items: &[ObservedMedia],
    now: i64,
) -> Result<Option<ListOutcome>> {
    if !lock_current_scope(tx, scope).await? {
        return Ok(None);
    }
    let snap = snapshot(tx, scope, list_id, items).await?;
    let p = plan(mode, &snap, items);
    for id in &p.remove {
        delete_locked(tx, scope, id, now).await?;
    }
    let mut queued = 0;
    for &i in &p.queue {
        queued += record_media(tx, scope, &items[i], list_id, true, now).await?;
    }
    for &i in &p.refresh {
        queued += record_media(tx, scope, &items[i], list_id, false, now).await?;
    }
    let sync = mode == ListMode::Sync;
    for &i in &p.members {
        sqlx::query(
            "INSERT INTO list_members (scope_id, list_id, media_id, first_added_at, last_added_at, \
             last_seen_at, last_synced_at, in_baseline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (scope_id, list_id, media_id) DO UPDATE SET last_added_at = excluded.last_added_at, \
             last_seen_at = excluded.last_seen_at, \
             last_synced_at = coalesce(excluded.last_synced_at, list_members.last_synced_at), \
             in_baseline = list_members.in_baseline OR excluded.in_baseline",
        )
        .bind(scope)
        .bind(list_id)
        .bind(items[i].media_id.as_str())
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(sync.then_some(now))
        .bind(sync)
        .execute(&mut **tx)
        .await?;
    }
    for id in &p.drop_members {
        sqlx::query(
            "DELETE FROM list_members WHERE scope_id = $1 AND list_id = $2 AND media_id = $3",
        )
        .bind(scope)
        .bind(list_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO lists (scope_id, list_id, has_baseline, first_added_at, last_added_at, last_synced_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope_id, list_id) DO UPDATE SET \
         has_baseline = excluded.has_baseline, last_added_at = excluded.last_added_at, \
         last_synced_at = coalesce(excluded.last_synced_at, lists.last_synced_at)",
    )
    .bind(scope)
    .bind(list_id)
    .bind(p.baseline)
    .bind(now)
    .bind(now)
    .bind(sync.then_some(now))
    .execute(&mut **tx)
    .await?;
    Ok(Some(ListOutcome {
        counts: p.counts,
        queued,
    }))
}

async fn snapshot(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    items: &[ObservedMedia],
) -> Result<Snapshot> {
    let has_baseline =
        sqlx::query("SELECT has_baseline FROM lists WHERE scope_id = $1 AND list_id = $2")
            .bind(scope)
            .bind(list_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<bool, _>("has_baseline"))
            .transpose()?
            .unwrap_or(false);
    let mut members = HashMap::new();
    for r in sqlx::query(
        "SELECT media_id, in_baseline FROM list_members WHERE scope_id = $1 AND list_id = $2",
    )
    .bind(scope)
    .bind(list_id)
    .fetch_all(&mut **tx)
    .await?
    {
        members.insert(
            r.try_get::<String, _>("media_id")?,
            r.try_get::<bool, _>("in_baseline")?,
        );
    }
    let mut ids: Vec<String> = items
        .iter()
        .map(|m| m.media_id.as_str().to_owned())
        .collect();
    ids.extend(members.keys().cloned());
    ids.sort();
    ids.dedup();
    // Cached: something of it is stored or on its way. Media known only as
    // edge_only (or evicted) is not, so a list add queues it.
    let mut cached = HashMap::new();
    for r in sqlx::query(
        "SELECT m.media_id, m.fingerprint FROM media m WHERE m.scope_id = $1 \
         AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id \
         AND v.status IN ('pending', 'storing', 'stored')) AND m.media_id = ANY($2)",
    )
    .bind(scope)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    {
        cached.insert(
            r.try_get::<String, _>("media_id")?,
            Cached {
                fingerprint: r.try_get("fingerprint")?,
            },
        );
    }
    let present: HashSet<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
    let gone: Vec<String> = members
        .iter()
        .filter(|(id, b)| **b && !present.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let mut owned_elsewhere = HashSet::new();
    if !gone.is_empty() {
        for r in sqlx::query(
            "SELECT DISTINCT media_id FROM list_members WHERE scope_id = $1 AND list_id <> $2 \
             AND media_id = ANY($3)",
        )
        .bind(scope)
        .bind(list_id)
        .bind(gone)
        .fetch_all(&mut **tx)
        .await?
        {
            owned_elsewhere.insert(r.try_get::<String, _>("media_id")?);
        }
    }
    Ok(Snapshot {
        has_baseline,
        members,
        cached,
        owned_elsewhere,
    })
}

/// Records an observed item: its media row, new variants (stored ones
/// queued), fresh upstream URLs for known ones. With `requeue`, known
/// variants that should be stored but are not (edge_only, removed, failed)
/// are queued again. Returns the number of jobs created.
async fn record_media(
    tx: &mut Tx,
    scope: ScopeId,
    item: &ObservedMedia,
    list_id: &str,
    requeue: bool,
    now: i64,
) -> Result<u64> {
    let media_id = item.media_id.as_str();
    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at, duration, fingerprint, list_hint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope_id, media_id) DO UPDATE SET \
         duration = coalesce(excluded.duration, media.duration), fingerprint = excluded.fingerprint, \
         list_hint = excluded.list_hint",
    )
    .bind(scope)
    .bind(media_id)
    .bind(item.media_id.sort_key())
    .bind(now)
    .bind(item.duration)
    .bind(&item.fingerprint)
    .bind(list_id)
    .execute(&mut **tx)
    .await?;
    let before = variants_of(tx, scope, media_id).await?;
    let mut after: Vec<VariantRecord> = before.clone();
    let mut queued = 0;
    for v in &item.variants {
        let existing = before.iter().find(|e| e.label == v.label);
        let record = match existing {
            None => {
                let status = if v.store {
                    VariantStatus::Pending
                } else {
                    VariantStatus::EdgeOnly
                };
                let rec = VariantRecord {
                    label: v.label.clone(),
                    status,
                    size_bytes: 0,
                    content_type: v.content_type.clone(),
                    access_count: 0,
                    created_at: now,
                    stored_at: None,
                    last_accessed_at: now,
                    blob_key: None,
                    checksum: None,
                    origin: v.origin,
                    upstream_url: v.url.clone(),
                    upstream_size: v.size,
                    last_error: None,
                    generation: generation::fresh(),
                };
                // The job before the variant row: the lock order (locks.rs).
                if status == VariantStatus::Pending && v.store {
                    queued += ensure_job(tx, scope, media_id, &v.label, now).await?;
                }
                sqlx::query(
                    "INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, \
                     access_count, created_at, last_accessed_at, origin, upstream_url, upstream_size, \
                     generation) VALUES ($1, $2, $3, $4, 0, $5, 0, $6, $7, $8, $9, $10, $11)",
                )
                .bind(scope)
                .bind(media_id)
                .bind(&rec.label)
                .bind(status.as_str())
                .bind(&rec.content_type)
                .bind(now)
                .bind(now)
                .bind(v.origin.as_str())
                .bind(&v.url)
                .bind(v.size.map(|n| n as i64))
                .bind(rec.generation)
                .execute(&mut **tx)
                .await?;
                bump_scope(tx, scope, counter_delta(None, Some(&rec))).await?;
                rec
            }
            Some(e) => {
                let revive = requeue
                    && v.store
                    && matches!(e.status, VariantStatus::EdgeOnly | VariantStatus::Removed);
                let status = if revive {
                    VariantStatus::Pending
                } else {
                    e.status
                };
                // A revived variant is fetched from where this listing says,
                // even if its bytes once came from an upload.
                let origin = if revive { v.origin } else { e.origin };
                let generation = generation::after_revival(e, status);
                // The job before the variant row: the lock order (locks.rs).
                if status == VariantStatus::Pending && v.store {
                    queued += ensure_job(tx, scope, media_id, &v.label, now).await?;
                }
                sqlx::query(
                    "UPDATE variants SET status = $1, origin = $2, generation = $3, \
                     upstream_url = CASE WHEN $4 = 'upstream' THEN $5 ELSE upstream_url END, \
                     upstream_size = CASE WHEN $6 = 'upstream' THEN $7 ELSE upstream_size END \
                     WHERE scope_id = $8 AND media_id = $9 AND label = $10",
                )
                .bind(status.as_str())
                .bind(origin.as_str())
                .bind(generation)
                .bind(origin.as_str())
                .bind(&v.url)
                .bind(origin.as_str())
                .bind(v.size.map(|n| n as i64))
                .bind(scope)
                .bind(media_id)
                .bind(&v.label)
                .execute(&mut **tx)
                .await?;
                let mut rec = e.clone();
                rec.status = status;
                rec.origin = origin;
                rec.generation = generation;
                bump_scope(tx, scope, counter_delta(Some(e), Some(&rec))).await?;
                rec
            }
        };
        after.retain(|a| a.label != record.label);
        after.push(record);
    }
    refresh_media(tx, scope, media_id, &after, None).await?;
    Ok(queued)
}

pub async fn refresh_upstream_urls(
    tx: &mut Tx,
    scope: ScopeId,
    items: &[ObservedMedia],
) -> Result<()> {
    for item in items {
        for v in item.variants.iter().filter(|v| v.url.is_some()) {
            sqlx::query(
                "UPDATE variants SET upstream_url = $1, upstream_size = $2 \
                 WHERE scope_id = $3 AND media_id = $4 AND label = $5 AND origin = 'upstream'",
            )
            .bind(&v.url)
            .bind(v.size.map(|n| n as i64))
            .bind(scope)
            .bind(item.media_id.as_str())
            .bind(&v.label)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

pub async fn lists(pool: &PgPool, scope: ScopeId) -> Result<Vec<ListSummary>> {
    let rows = sqlx::query(
        "SELECT l.list_id, l.has_baseline, l.first_added_at, l.last_added_at, l.last_synced_at, \
           (SELECT count(*) FROM list_members lm WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id) AS media_count, \
           (SELECT count(*) FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
              WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS stored_count, \
           (SELECT coalesce(sum(v.size_bytes), 0)::BIGINT FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
              WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS total_size \
         FROM lists l WHERE l.scope_id = $1 \
           AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = l.scope_id) \
         ORDER BY l.first_added_at, l.list_id",
    )
    .bind(scope)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ListSummary {
                list_id: r.try_get("list_id")?,
                media_count: r.try_get::<i64, _>("media_count")? as u64,
                stored_count: r.try_get::<i64, _>("stored_count")? as u64,
                total_size_bytes: r.try_get::<i64, _>("total_size")? as u64,
                has_baseline: r.try_get("has_baseline")?,
                first_added_at: r.try_get("first_added_at")?,
                last_added_at: r.try_get("last_added_at")?,
                last_synced_at: r.try_get("last_synced_at")?,
            })
        })
        .collect()
}

pub async fn list_members(
    pool: &PgPool,
    scope: ScopeId,
    list_id: &str,
    page: &PageRequest<MemberKey>,
) -> Result<Page<ListMember, MemberKey>> {
    let fetched = paging::members_query::<Postgres>(scope, list_id, page)
        .build()
        .fetch_all(pool)
        .await?;
    let mut members = paging::members_page(&fetched, page.limit)?;
    if members.items.is_empty() {
        return Ok(members);
    }
    let ids: Vec<String> = members.items.iter().map(|m| m.media_id.clone()).collect();
    let sql =
        format!("SELECT {MEDIA_COLUMNS} FROM media WHERE scope_id = $1 AND media_id = ANY($2)");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(ids)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::media)
        .collect::<Result<Vec<_>>>()?;
    let mut found: HashMap<String, _> = attach_variants(pool, scope, found, true)
        .await?
        .into_iter()
        .map(|m| (m.media_id.clone(), m))
        .collect();
    for m in members.items.iter_mut() {
        m.media = found.remove(&m.media_id).filter(|r| !r.variants.is_empty());
    }
    Ok(members)
}
