//! List memberships, sync baselines, and recording what a listing observed.

use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use super::media::{
    attach_variants, bump_scope, delete_media, refresh_media, scope_is_current, variants_of,
};
use crate::catalog::derive::counter_delta;
use crate::catalog::generation;
use crate::catalog::paging;
use crate::catalog::rows::{self, MEDIA_COLUMNS};
use crate::catalog::{
    ListMember, ListOutcome, ListSummary, MemberKey, Page, PageRequest, Result, ScopeId,
    VariantRecord,
};
use crate::model::list_plan::{Cached, ListMode, Snapshot, plan};
use crate::model::observed::ObservedMedia;
use crate::model::{MediaId, VariantStatus};

/// Bound on the IDs in one `IN (...)`, well under SQLite's variable limit.
const CHUNK: usize = 400;

pub async fn apply_list(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    list_id: &str,
    mode: ListMode,
    items: &[ObservedMedia],
    now: i64,
) -> Result<Option<ListOutcome>> {
    if !scope_is_current(tx, scope).await? {
        return Ok(None);
    }
    let snap = snapshot(tx, scope, list_id, items).await?;
    let p = plan(mode, &snap, items);
    for id in &p.remove {
        delete_media(
            tx,
            scope,
            &MediaId::parse(id).map_err(anyhow::Error::msg)?,
            now,
        )
        .await?;
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
             last_seen_at, last_synced_at, in_baseline) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (scope_id, list_id, media_id) DO UPDATE SET last_added_at = excluded.last_added_at, \
             last_seen_at = excluded.last_seen_at, \
             last_synced_at = coalesce(excluded.last_synced_at, list_members.last_synced_at), \
             in_baseline = max(list_members.in_baseline, excluded.in_baseline)",
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
        sqlx::query("DELETE FROM list_members WHERE scope_id = ? AND list_id = ? AND media_id = ?")
            .bind(scope)
            .bind(list_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO lists (scope_id, list_id, has_baseline, first_added_at, last_added_at, last_synced_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope_id, list_id) DO UPDATE SET \
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
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    list_id: &str,
    items: &[ObservedMedia],
) -> Result<Snapshot> {
    let has_baseline =
        sqlx::query("SELECT has_baseline FROM lists WHERE scope_id = ? AND list_id = ?")
            .bind(scope)
            .bind(list_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<bool, _>("has_baseline"))
            .transpose()?
            .unwrap_or(false);
    let mut members = HashMap::new();
    for r in sqlx::query(
        "SELECT media_id, in_baseline FROM list_members WHERE scope_id = ? AND list_id = ?",
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
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT m.media_id, m.fingerprint FROM media m WHERE m.scope_id = ",
        );
        qb.push_bind(scope);
        qb.push(
            " AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id \
             AND v.status IN ('pending', 'storing', 'stored')) AND m.media_id IN (",
        );
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        qb.push(")");
        for r in qb.build().fetch_all(&mut **tx).await? {
            cached.insert(
                r.try_get::<String, _>("media_id")?,
                Cached {
                    fingerprint: r.try_get("fingerprint")?,
                },
            );
        }
    }
    let present: HashSet<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
    let gone: Vec<&String> = members
        .iter()
        .filter(|(id, b)| **b && !present.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    let mut owned_elsewhere = HashSet::new();
    for chunk in gone.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT DISTINCT media_id FROM list_members WHERE scope_id = ",
        );
        qb.push_bind(scope)
            .push(" AND list_id <> ")
            .push_bind(list_id)
            .push(" AND media_id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        qb.push(")");
        for r in qb.build().fetch_all(&mut **tx).await? {
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
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    item: &ObservedMedia,
    list_id: &str,
    requeue: bool,
    now: i64,
) -> Result<u64> {
    let media_id = item.media_id.as_str();
    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at, duration, fingerprint, list_hint) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope_id, media_id) DO UPDATE SET \
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
                sqlx::query(
                    "INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, \
                     access_count, created_at, last_accessed_at, origin, upstream_url, upstream_size, \
                     generation) VALUES (?, ?, ?, ?, 0, ?, 0, ?, ?, ?, ?, ?, ?)",
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
                sqlx::query(
                    "UPDATE variants SET status = ?, origin = ?, generation = ?, \
                     upstream_url = CASE WHEN ? = 'upstream' THEN ? ELSE upstream_url END, \
                     upstream_size = CASE WHEN ? = 'upstream' THEN ? ELSE upstream_size END \
                     WHERE scope_id = ? AND media_id = ? AND label = ?",
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
        if record.status == VariantStatus::Pending && v.store {
            queued += super::jobs::ensure_job(tx, scope, media_id, &v.label, now).await?;
        }
        after.retain(|a| a.label != record.label);
        after.push(record);
    }
    refresh_media(tx, scope, media_id, &after, None).await?;
    Ok(queued)
}

pub async fn refresh_upstream_urls(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    items: &[ObservedMedia],
) -> Result<()> {
    for item in items {
        for v in item.variants.iter().filter(|v| v.url.is_some()) {
            sqlx::query(
                "UPDATE variants SET upstream_url = ?, upstream_size = ? \
                 WHERE scope_id = ? AND media_id = ? AND label = ? AND origin = 'upstream'",
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

pub async fn lists(pool: &SqlitePool, scope: ScopeId) -> Result<Vec<ListSummary>> {
    let rows = sqlx::query(
        "SELECT l.list_id, l.has_baseline, l.first_added_at, l.last_added_at, l.last_synced_at, \
           (SELECT count(*) FROM list_members lm WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id) AS media_count, \
           (SELECT count(*) FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
              WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS stored_count, \
           (SELECT coalesce(sum(v.size_bytes), 0) FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
              WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS total_size \
         FROM lists l WHERE l.scope_id = ? \
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
    pool: &SqlitePool,
    scope: ScopeId,
    list_id: &str,
    page: &PageRequest<MemberKey>,
) -> Result<Page<ListMember, MemberKey>> {
    let fetched = paging::members_query::<Sqlite>(scope, list_id, page)
        .build()
        .fetch_all(pool)
        .await?;
    let mut members = paging::members_page(&fetched, page.limit)?;
    // A page holds at most MAX_PAGE members: one chunk of IDs.
    for chunk in members.items.chunks_mut(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {MEDIA_COLUMNS} FROM media WHERE scope_id = "
        ));
        qb.push_bind(scope).push(" AND media_id IN (");
        let mut sep = qb.separated(", ");
        for m in chunk.iter() {
            sep.push_bind(m.media_id.clone());
        }
        qb.push(")");
        let found = qb
            .build()
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
        for m in chunk.iter_mut() {
            m.media = found.remove(&m.media_id).filter(|r| !r.variants.is_empty());
        }
    }
    Ok(members)
}
