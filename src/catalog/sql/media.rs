//! Media and variant reads, queries, deletes, delivery look-ups and access
//! counts.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::Row as _;

use super::SqlCatalog;
use super::dialect::{self, Tx};
use super::items::{self, unique_ids};
use super::job_rows::drop_jobs;
use super::receipts;
use super::rows::{self, VARIANT_COLUMNS};
use super::scopes::{SCOPE_IS_CURRENT, lock_current_scope};
use super::variants::{ItemEdit, record_access};
use super::{query, query_run};
use crate::catalog::derive::totals_of;
use crate::catalog::{
    AccessHit, DeleteOutcome, MediaQuery, MediaRecord, MediaStore, QueryPage, ReceiptKind, Result,
    ScopeId, VariantRecord,
};
use crate::model::time::now_ms;
use crate::model::{Label, MediaId, VariantStatus};

#[async_trait]
impl MediaStore for SqlCatalog {
    async fn media(&self, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let rows = sqlx::query(MEDIA_SQL.as_str())
            .bind(scope)
            .bind(dialect::list(&unique_ids(ids)))
            .fetch_all(self.db.reader())
            .await?;
        let items = items::fold(&rows);
        crate::metrics::timer!(crate::metrics::names::CATALOG_DURATION, "media").record(started);
        items
    }

    async fn query_media(&self, scope: ScopeId, q: &MediaQuery) -> Result<QueryPage> {
        let started = std::time::Instant::now();
        let fetched = query_run::page_rows(self, scope, q).await?;
        let (items, next) = query::page_of(&fetched, q)?;
        let removed = q.status == Some(VariantStatus::Removed);
        let items = attach_variants(self, scope, items, removed).await?;
        crate::metrics::timer!(crate::metrics::names::CATALOG_DURATION, "query_media")
            .record(started);
        Ok(QueryPage { items, next })
    }

    async fn delete_media(&self, scope: ScopeId, id: &MediaId) -> Result<DeleteOutcome> {
        let id = id.as_str();
        let now = now_ms();
        in_tx!(self, "delete_media", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(DeleteOutcome::default());
            }
            delete_locked(tx, scope, id, true, now).await
        })
    }

    async fn current_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
    ) -> Result<Option<VariantRecord>> {
        let key = (scope, media.as_str().to_owned(), label.as_str().to_owned());
        // Timed only when the catalog is read (a cache miss).
        let read =
            crate::metrics::timer!(crate::metrics::names::CATALOG_DURATION, "current_variant")
                .time(current_variant(self, scope, media, label));
        self.db.cached_variant(key, read).await
    }

    async fn record_accesses(&self, hits: &[AccessHit]) -> Result<()> {
        if dialect::SHARED {
            // Each hit is its own statement (autocommit): access counts need
            // no atomicity across hits, and a transaction holding many
            // variant locks in arbitrary order could deadlock with an
            // eviction holding some of them.
            let mut conn = self.db.writer().acquire().await?;
            for h in hits {
                record_access(&mut conn, h).await?;
            }
            Ok(())
        } else {
            // One writer: one transaction (one sync to disk) for the batch.
            in_tx!(self, "record_accesses", |tx| async move {
                for h in hits {
                    record_access(tx, h).await?;
                }
                Ok(())
            })
        }
    }
}

/// The items among the list bound as `$2` in scope `$1`, with their
/// variants, if the scope is current. Built once, from constants only: no
/// request formats it.
static MEDIA_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} AND {SCOPE_IS_CURRENT}$1)",
        items::items_select("", "$1", 2)
    )
});

impl SqlCatalog {
    /// What the database plans for [`MediaStore::media`] (for tests).
    pub async fn explain_media(&self, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<String>> {
        let sql = format!("{}{}", dialect::EXPLAIN, *MEDIA_SQL);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(dialect::list(&unique_ids(ids)))
            .fetch_all(self.db.reader())
            .await?;
        dialect::explain_lines(rows)
    }
}

/// Fills in the items' variants (only non-removed ones unless `removed`).
pub async fn attach_variants(
    catalog: &SqlCatalog,
    scope: ScopeId,
    mut items: Vec<MediaRecord>,
    removed: bool,
) -> Result<Vec<MediaRecord>> {
    if items.is_empty() {
        return Ok(items);
    }
    let ids: Vec<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
    // A join driven by the list rather than `IN (list)`, for which SQLite
    // builds a temporary index of the list on every call; the variants are
    // put in label order here instead of by a sort in SQL. CROSS JOIN makes
    // SQLite keep the list as the outer loop (a plain join, without
    // ANALYZE figures, may scan the scope's variants once per value);
    // PostgreSQL plans it as any inner join.
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM {} CROSS JOIN variants v WHERE v.scope_id = $1 \
         AND v.media_id = value AND ($3 OR v.status <> 'removed')",
        dialect::list_table(2)
    );
    let mut by_media: HashMap<String, Vec<VariantRecord>> = HashMap::new();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(dialect::list(&ids))
        .bind(removed)
        .fetch_all(catalog.db.reader())
        .await?
    {
        let media_id = row.try_get("media_id")?;
        by_media
            .entry(media_id)
            .or_default()
            .push(rows::variant(&row)?);
    }
    for m in &mut items {
        m.variants = by_media.remove(&m.media_id).unwrap_or_default();
        m.variants.sort_unstable_by(|a, b| a.label.cmp(&b.label));
    }
    Ok(items)
}

/// Deletes an item. The caller holds the scope lock and knows the scope is
/// current. `receipted`: a client asked for it, and it gets an erasure
/// receipt (a sync's removal of what left the upstream list gets none).
pub async fn delete_locked(
    tx: &mut Tx,
    scope: ScopeId,
    id: &str,
    receipted: bool,
    now: i64,
) -> Result<DeleteOutcome> {
    let mut edit = ItemEdit::load(tx, scope, id).await?;
    if edit.before().is_empty() {
        return Ok(DeleteOutcome::default());
    }
    let totals = totals_of(edit.before());
    let counts = (totals.live_count, totals.stored_bytes);
    // Tombstones alone (`success: false`): nothing was removed, no receipt.
    let receipt = match receipted && totals.live_count > 0 {
        true => Some(receipts::create(tx, scope, ReceiptKind::Delete, counts, false, now).await?),
        false => None,
    };
    // Jobs before variants: the lock order (mod.rs).
    drop_jobs(tx, scope, id, None).await?;
    edit.delete_all();
    edit.receipt = receipt;
    edit.save(tx, None, now).await?;
    Ok(DeleteOutcome {
        removed_count: totals.live_count,
        freed_bytes: totals.stored_bytes,
        receipt,
    })
}

/// One indexed query (variant primary key plus the `connections_by_scope`
/// probe).
async fn current_variant(
    catalog: &SqlCatalog,
    scope: ScopeId,
    media: &MediaId,
    label: &Label,
) -> Result<Option<VariantRecord>> {
    let sql = format!(
        "SELECT {VARIANT_COLUMNS} FROM variants v WHERE v.scope_id = $1 AND v.media_id = $2 \
         AND v.label = $3 AND v.status <> 'removed' AND {SCOPE_IS_CURRENT}v.scope_id)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(scope)
        .bind(media.as_str())
        .bind(label.as_str())
        .fetch_optional(catalog.db.reader())
        .await?)
}
