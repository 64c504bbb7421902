//! List memberships, sync baselines, and recording what a listing observed.
//! A list add or sync runs under the scope row lock, so two nodes syncing
//! the same connection apply their plans one after the other.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::SqlCatalog;
use super::dialect::{self, Db, Tx};
use super::job_rows::ensure_jobs;
use super::list_runs as runs;
use super::media::{attach_variants, delete_locked};
use super::outbox;
use super::rows::{MEDIA_COLUMNS, MEMBER_COLUMNS};
use super::scopes::lock_current_scope;
use super::variants::{ItemEdit, refresh_upstream_url};
use crate::catalog::generation;
use crate::catalog::paging;
use crate::catalog::{
    ListMember, ListOutcome, ListStore, ListSummary, MemberKey, Page, PageRequest, Result, ScopeId,
    VariantRecord,
};
use crate::model::VariantStatus;
use crate::model::list_plan::{Cached, ListMode, ListRun, Plan, Snapshot};
use crate::model::observed::{ObservedMedia, Origin};

#[async_trait]
impl ListStore for SqlCatalog {
    async fn apply_list(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>> {
        in_tx!(self, "apply_list", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(None);
            }
            let run = runs::begin(tx, scope, list_id, mode, now).await?;
            let mut outcome = runs::page(tx, scope, list_id, &run, items, now).await?;
            let last = runs::finish(tx, scope, list_id, &run, now).await?;
            outcome.counts += last.counts;
            outcome.queued += last.queued;
            if mode == ListMode::Sync {
                outbox::list_synced(tx, scope, list_id, &outcome.counts, now).await?;
            }
            Ok(Some(outcome))
        })
    }

    async fn begin_list_run(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        now: i64,
    ) -> Result<Option<ListRun>> {
        in_tx!(self, "begin_list_run", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(None);
            }
            Ok(Some(runs::begin(tx, scope, list_id, mode, now).await?))
        })
    }

    async fn apply_list_page(
        &self,
        scope: ScopeId,
        list_id: &str,
        run: &ListRun,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>> {
        in_tx!(self, "apply_list_page", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(None);
            }
            Ok(Some(runs::page(tx, scope, list_id, run, items, now).await?))
        })
    }

    async fn finish_list_run(
        &self,
        scope: ScopeId,
        list_id: &str,
        run: &ListRun,
        pages: &ListOutcome,
        now: i64,
    ) -> Result<Option<ListOutcome>> {
        in_tx!(self, "finish_list_run", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(None);
            }
            let last = runs::finish(tx, scope, list_id, run, now).await?;
            if run.mode == ListMode::Sync {
                let mut counts = pages.counts;
                counts += last.counts;
                counts.seen = pages.counts.seen;
                outbox::list_synced(tx, scope, list_id, &counts, now).await?;
            }
            Ok(Some(last))
        })
    }

    async fn refresh_upstream_urls(&self, scope: ScopeId, items: &[ObservedMedia]) -> Result<()> {
        in_tx!(self, "refresh_upstream_urls", |tx| async move {
            for item in items {
                for v in item.variants.iter().filter(|v| v.url.is_some()) {
                    let (media, url) = (item.media_id.as_str(), v.url.as_deref());
                    refresh_upstream_url(tx, scope, media, &v.label, url, v.size).await?;
                }
            }
            Ok(())
        })
    }

    async fn lists(&self, scope: ScopeId) -> Result<Vec<ListSummary>> {
        Ok(sqlx::query_as(
            "SELECT l.list_id, l.has_baseline, l.first_added_at, l.last_added_at, l.last_synced_at, \
               (SELECT count(*) FROM list_members lm WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id) AS media_count, \
               (SELECT count(*) FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
                  WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS stored_count, \
               (SELECT CAST(coalesce(sum(v.size_bytes), 0) AS BIGINT) FROM list_members lm JOIN variants v ON v.scope_id = lm.scope_id AND v.media_id = lm.media_id \
                  WHERE lm.scope_id = l.scope_id AND lm.list_id = l.list_id AND v.status = 'stored') AS total_size_bytes \
             FROM lists l WHERE l.scope_id = $1 \
               AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = l.scope_id) \
             ORDER BY l.first_added_at, l.list_id",
        )
        .bind(scope)
        .fetch_all(self.db.reader())
        .await?)
    }

    async fn list_members(
        &self,
        scope: ScopeId,
        list_id: &str,
        page: &PageRequest<MemberKey>,
    ) -> Result<Page<ListMember, MemberKey>> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {MEMBER_COLUMNS} FROM list_members lm WHERE lm.scope_id = "
        ));
        qb.push_bind(scope)
            .push(" AND lm.list_id = ")
            .push_bind(list_id.to_owned())
            .push(" AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = lm.scope_id)");
        if let Some(after) = &page.after {
            qb.push(" AND (lm.first_added_at, lm.media_id) > (")
                .push_bind(after.first_added_at)
                .push(", ")
                .push_bind(after.media_id.clone())
                .push(")");
        }
        qb.push(" ORDER BY lm.first_added_at, lm.media_id LIMIT ")
            .push_bind(paging::fetch_bound(page.limit));
        let fetched = qb.build_query_as().fetch_all(self.db.reader()).await?;
        let mut members = paging::finish(fetched, page.limit, |m: &ListMember| MemberKey {
            first_added_at: m.first_added_at,
            media_id: m.media_id.clone(),
        });
        if members.items.is_empty() {
            return Ok(members);
        }
        let ids: Vec<&str> = members.items.iter().map(|m| m.media_id.as_str()).collect();
        let sql = format!(
            "SELECT {MEDIA_COLUMNS} FROM media WHERE scope_id = $1 AND {}",
            dialect::in_list("media_id", 2)
        );
        let found = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(dialect::list(&ids))
            .fetch_all(self.db.reader())
            .await?;
        let mut found: HashMap<String, _> = attach_variants(self, scope, found, true)
            .await?
            .into_iter()
            .map(|m| (m.media_id.clone(), m))
            .collect();
        for m in members.items.iter_mut() {
            m.media = found.remove(&m.media_id).filter(|r| !r.variants.is_empty());
        }
        Ok(members)
    }
}

/// Which members of the list a snapshot reads: a page reads only those it
/// lists, a run's last step those its pages did not mark, so no step reads
/// the whole list.
pub(super) enum Members {
    Listed,
    UnseenBy(i64),
}

pub(super) async fn snapshot(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    items: &[ObservedMedia],
    only: Members,
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
    let listed: Vec<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
    let (filter, q) = match only {
        Members::Listed => (dialect::in_list("media_id", 3), None),
        Members::UnseenBy(g) => ("seen_generation < $3".to_owned(), Some(g)),
    };
    let sql = format!(
        "SELECT media_id, in_baseline FROM list_members WHERE scope_id = $1 AND list_id = $2 \
         AND {filter}"
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(list_id);
    let query = match q {
        Some(g) => query.bind(g),
        None => query.bind(dialect::list(&listed)),
    };
    let mut members = HashMap::new();
    for r in query.fetch_all(&mut **tx).await? {
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
    let sql = format!(
        "SELECT m.media_id, m.fingerprint FROM media m WHERE m.scope_id = $1 \
         AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id \
         AND v.status IN ('pending', 'storing', 'stored')) AND {}",
        dialect::in_list("m.media_id", 2)
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(dialect::list(&ids))
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
        let sql = format!(
            "SELECT DISTINCT media_id FROM list_members WHERE scope_id = $1 AND list_id <> $2 \
             AND {}",
            dialect::in_list("media_id", 3)
        );
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(list_id)
            .bind(dialect::list(&gone))
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

/// Applies a plan: removals, recording and queueing, memberships. Returns
/// the number of jobs created.
pub(super) async fn apply_plan(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    mode: ListMode,
    p: &Plan,
    items: &[ObservedMedia],
    now: i64,
) -> Result<u64> {
    for id in &p.remove {
        delete_locked(tx, scope, id, false, now).await?;
    }
    let pick = |at: &[usize]| at.iter().map(|&i| &items[i]).collect::<Vec<_>>();
    let mut queued = record_media(tx, scope, &pick(&p.queue), list_id, true, now).await?;
    queued += record_media(tx, scope, &pick(&p.refresh), list_id, false, now).await?;
    let sync = mode == ListMode::Sync;
    // An item listed twice is one membership (one row may not be upserted
    // twice by one statement).
    let mut listed = HashSet::with_capacity(p.members.len());
    let mut members = pick(&p.members);
    members.retain(|m| listed.insert(m.media_id.as_str()));
    for chunk in super::row_chunks(&members) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO list_members (scope_id, list_id, media_id, first_added_at, \
             last_added_at, last_seen_at, last_synced_at, in_baseline) ",
        );
        qb.push_values(chunk, |mut row, item| {
            row.push_bind(scope)
                .push_bind(list_id.to_owned())
                .push_bind(item.media_id.as_str().to_owned())
                .push_bind(now)
                .push_bind(now)
                .push_bind(now)
                .push_bind(sync.then_some(now))
                .push_bind(sync);
        });
        qb.push(
            " ON CONFLICT (scope_id, list_id, media_id) DO UPDATE SET \
             last_added_at = excluded.last_added_at, last_seen_at = excluded.last_seen_at, \
             last_synced_at = coalesce(excluded.last_synced_at, list_members.last_synced_at), \
             in_baseline = list_members.in_baseline OR excluded.in_baseline",
        );
        qb.build().execute(&mut **tx).await?;
    }
    if !p.drop_members.is_empty() {
        let sql = format!(
            "DELETE FROM list_members WHERE scope_id = $1 AND list_id = $2 AND {}",
            dialect::in_list("media_id", 3)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(list_id)
            .bind(dialect::list(&p.drop_members))
            .execute(&mut **tx)
            .await?;
    }
    Ok(queued)
}

/// Records observed items: their media rows (what the listing says of
/// them), new variants (stored ones queued), fresh upstream URLs for known
/// ones, with one statement per kind of row for all of them. With
/// `requeue`, known variants that should be stored but are not (edge_only,
/// removed, failed) are queued again. Returns the number of jobs created.
async fn record_media(
    tx: &mut Tx,
    scope: ScopeId,
    items: &[&ObservedMedia],
    list_id: &str,
    requeue: bool,
    now: i64,
) -> Result<u64> {
    if items.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
    let mut edits = ItemEdit::load_many(tx, scope, &ids).await?;
    // `load_many` answers one edit per distinct ID, in first-listed order.
    let mut at = HashMap::with_capacity(ids.len());
    for id in &ids {
        let next = at.len();
        at.entry(*id).or_insert(next);
    }
    let mut jobs = Vec::new();
    let mut queued_keys = HashSet::new();
    for item in items {
        let media_id = item.media_id.as_str();
        let edit = &mut edits[at[media_id]];
        edit.listed(item, list_id, now);
        for v in &item.variants {
            let record = match edit.get(&v.label) {
                None => VariantRecord {
                    label: v.label.clone(),
                    status: if v.store {
                        VariantStatus::Pending
                    } else {
                        VariantStatus::EdgeOnly
                    },
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
                },
                Some(e) => {
                    let revive = requeue
                        && v.store
                        && matches!(e.status, VariantStatus::EdgeOnly | VariantStatus::Removed);
                    let mut rec = e.clone();
                    if revive {
                        rec.status = VariantStatus::Pending;
                        // A revived variant is fetched from where this listing
                        // says, even if its bytes once came from an upload.
                        rec.origin = v.origin;
                    }
                    rec.generation = generation::after_revival(e, rec.status);
                    if rec.origin == Origin::Upstream {
                        rec.upstream_url = v.url.clone();
                        rec.upstream_size = v.size;
                    }
                    rec
                }
            };
            if record.status == VariantStatus::Pending
                && v.store
                && queued_keys.insert((media_id, v.label.as_str()))
            {
                jobs.push((media_id, v.label.as_str()));
            }
            edit.put(record);
        }
    }
    // The jobs before the variant rows: the lock order (mod.rs).
    let queued = ensure_jobs(tx, scope, &jobs, now).await?;
    ItemEdit::save_all(edits, tx, now).await?;
    Ok(queued)
}
