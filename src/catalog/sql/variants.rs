//! The one writer of variant rows, and of everything that follows from
//! them.
//!
//! A change to a media item's variants is made on an [`ItemEdit`]: its
//! variants are read under the scope row lock, changed in memory, and
//! written back by [`ItemEdit::save`], which in the same step applies the
//! scope's counter delta, queues every blob the change stopped referencing,
//! and rewrites the media row's derived columns. The catalog's totals thus
//! follow its variant records by construction (what invariant 1 of
//! `docs/DESIGN.md`, totals equal the bytes really held, rests on): no
//! other code updates the counters, the derived columns or a variant's
//! state.
//!
//! The other writes to variant rows here change none of those and need no
//! scope lock: the `storing` mark of a claimed job (pending and storing
//! count alike), access counts, and fresh upstream URLs. Draining a retired
//! scope deletes its rows in bulk and lowers the retired scope's counters
//! by what it deleted: they start as the purge's answer and count what is
//! left to drain, so the reclaim backlog is read from the scope rows alone.

use std::collections::HashMap;

use sqlx::{FromRow, QueryBuilder, Row};

use super::blob_queue::queue_blob_for;
use super::dialect::{self, Db, Tx};
use super::receipts;
use super::rows::VARIANT_COLUMNS;
use crate::catalog::derive::{counter_delta, media_derived};
use crate::catalog::{AccessHit, Job, ReceiptId, Result, Revoked, ScopeId, VariantRecord};
use crate::model::observed::ObservedMedia;
use crate::model::{MediaId, VariantStatus};

/// One media item's variants, being changed.
pub struct ItemEdit {
    scope: ScopeId,
    media_id: String,
    before: Vec<VariantRecord>,
    after: Vec<VariantRecord>,
    delete: bool,
    /// `media.duration` when the change knows it (an upload, a listing).
    duration: Option<f64>,
    /// What a listing says of the media row, if a listing made the change:
    /// then the row is created if missing.
    listing: Option<Listing>,
    /// The erasure receipt of the change, if it has one: the bytes the
    /// change stops referencing are its lines and its blobs.
    pub receipt: Option<ReceiptId>,
}

/// The media row's columns a listing sets (its derived columns follow from
/// the variants).
struct Listing {
    sort_id: String,
    fingerprint: String,
    list_hint: String,
    created_at: i64,
}

impl ItemEdit {
    fn new(scope: ScopeId, media_id: &str, before: Vec<VariantRecord>) -> Self {
        Self {
            scope,
            media_id: media_id.to_owned(),
            after: before.clone(),
            before,
            delete: false,
            duration: None,
            listing: None,
            receipt: None,
        }
    }

    /// Reads the item's variants. The caller holds the scope row lock. By
    /// the item's key rather than through [`ItemEdit::load_many`]: this is
    /// every stored fetch's and delete's read, and a list parameter costs
    /// SQLite a temporary index per statement.
    pub async fn load(tx: &mut Tx, scope: ScopeId, media_id: &str) -> Result<Self> {
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = $1 AND media_id = $2 \
             ORDER BY label"
        );
        let before = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(media_id)
            .fetch_all(&mut **tx)
            .await?;
        Ok(Self::new(scope, media_id, before))
    }

    /// Reads the variants of several items in one statement: one edit per
    /// distinct ID, in the order of first appearance. The caller holds the
    /// scope row lock.
    pub async fn load_many(tx: &mut Tx, scope: ScopeId, media_ids: &[&str]) -> Result<Vec<Self>> {
        if let [one] = media_ids {
            return Ok(vec![Self::load(tx, scope, one).await?]);
        }
        let mut edits: Vec<Self> = Vec::with_capacity(media_ids.len());
        let mut at = HashMap::with_capacity(media_ids.len());
        for id in media_ids {
            at.entry(*id).or_insert_with(|| {
                edits.push(Self::new(scope, id, Vec::new()));
                edits.len() - 1
            });
        }
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = $1 AND {} \
             ORDER BY media_id, label",
            dialect::in_list("media_id", 2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(dialect::list(media_ids))
            .fetch_all(&mut **tx)
            .await?;
        for r in &rows {
            let id: &str = r.try_get("media_id")?;
            let v = VariantRecord::from_row(r)?;
            let edit = &mut edits[at[id]];
            edit.before.push(v.clone());
            edit.after.push(v);
        }
        Ok(edits)
    }

    /// The item's media ID.
    pub fn media_id(&self) -> &str {
        &self.media_id
    }

    /// The variants as they were read.
    pub fn before(&self) -> &[VariantRecord] {
        &self.before
    }

    /// The variant with this label, as changed so far.
    pub fn get(&self, label: &str) -> Option<&VariantRecord> {
        self.after.iter().find(|v| v.label == label)
    }

    /// Adds the variant, or replaces the one with its label.
    pub fn put(&mut self, v: VariantRecord) {
        self.after.retain(|a| a.label != v.label);
        self.after.push(v);
    }

    /// Records what a listing of `list_id` says of the item (its latest
    /// listing, if it was listed twice): the media row is written with it,
    /// and created if missing.
    pub fn listed(&mut self, item: &ObservedMedia, list_id: &str, now: i64) {
        self.duration = item.duration;
        self.listing = Some(Listing {
            sort_id: item.media_id.sort_key(),
            fingerprint: item.fingerprint.clone(),
            list_hint: list_id.to_owned(),
            created_at: now,
        });
    }

    /// Deletes the whole item: every variant record and the media row.
    pub fn delete_all(&mut self) {
        self.after.clear();
        self.delete = true;
    }

    /// Writes the change: changed variant rows, the counter delta, the
    /// blobs no longer referenced, and the media row (its derived columns,
    /// and `duration` when known).
    pub async fn save(mut self, tx: &mut Tx, duration: Option<f64>, now: i64) -> Result<()> {
        self.duration = duration;
        Self::save_all(vec![self], tx, now).await
    }

    /// Writes the changes of several items (of distinct IDs) as
    /// [`ItemEdit::save`] writes one, with one statement per kind of row
    /// rather than per item: what lets a page of a big listing be applied
    /// in a few statements.
    pub async fn save_all(edits: Vec<Self>, tx: &mut Tx, now: i64) -> Result<()> {
        // A stored variant deleted, evicted or replaced may be held in a
        // node's memory: the commit revokes it. Changes that delivery does
        // not read (a fresh upstream URL, which every sync of a signed
        // listing writes) revoke nothing.
        let mut revoked: Vec<ScopeId> = edits
            .iter()
            .filter(|e| e.revokes())
            .map(|e| e.scope)
            .collect();
        revoked.dedup();
        for scope in revoked {
            dialect::revoke(tx, &Revoked::Scope(scope)).await?;
        }
        for e in &edits {
            let mut lines = Vec::new();
            for old in &e.before {
                let new = e.after.iter().find(|v| v.label == old.label);
                if let Some(key) = old.blob_key.as_deref()
                    && new.and_then(|n| n.blob_key.as_deref()) != Some(key)
                {
                    queue_blob_for(tx, key, e.receipt, now).await?;
                    if e.receipt.is_some() {
                        let status = old.status.as_str();
                        let checksum = old.checksum.as_deref();
                        let (id, label, size) = (&e.media_id, &old.label, old.size_bytes);
                        lines.extend(receipts::removed_line(id, label, status, checksum, size));
                    }
                }
            }
            if let Some(receipt) = e.receipt {
                receipts::record_lines(tx, receipt, &lines).await?;
            }
        }
        let changed: Vec<(&Self, &VariantRecord)> = edits
            .iter()
            .flat_map(|e| {
                e.after
                    .iter()
                    .filter(|v| !e.before.contains(v))
                    .map(move |v| (e, v))
            })
            .collect();
        for chunk in super::row_chunks(&changed) {
            write_variants(tx, chunk).await?;
        }
        let mut deltas: Vec<(ScopeId, (i64, i64, i64))> = Vec::new();
        for e in &edits {
            let d = counter_delta(&e.before, &e.after);
            match deltas.last_mut() {
                Some((s, sum)) if *s == e.scope => {
                    *sum = (sum.0 + d.0, sum.1 + d.1, sum.2 + d.2);
                }
                _ => deltas.push((e.scope, d)),
            }
        }
        for (scope, delta) in deltas {
            bump_scope(tx, scope, delta).await?;
        }
        let (deleted, kept): (Vec<&Self>, Vec<&Self>) = edits.iter().partition(|e| e.delete);
        for e in deleted {
            for table in ["variants", "media"] {
                let sql = format!("DELETE FROM {table} WHERE scope_id = $1 AND media_id = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(e.scope)
                    .bind(&e.media_id)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let (listed, other): (Vec<&Self>, Vec<&Self>) =
            kept.into_iter().partition(|e| e.listing.is_some());
        for chunk in super::row_chunks(&listed) {
            write_listed_media(tx, chunk).await?;
        }
        for chunk in super::row_chunks(&other) {
            write_media_derived(tx, chunk).await?;
        }
        Ok(())
    }

    fn revokes(&self) -> bool {
        self.before.iter().any(|old| {
            old.status == VariantStatus::Stored
                && !self
                    .after
                    .iter()
                    .find(|v| v.label == old.label)
                    .is_some_and(|new| delivered_alike(old, new))
        })
    }
}

/// Creates or updates the media rows of listed items: what the listing says
/// and the derived columns, one statement for all (a row written once, not
/// inserted and then updated: each write of a derived column rewrites the
/// query indexes that hold it).
async fn write_listed_media(tx: &mut Tx, edits: &[&ItemEdit]) -> Result<()> {
    let mut qb = QueryBuilder::<Db>::new(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at, duration, fingerprint, \
         list_hint, media_type, cached_at, live_count) ",
    );
    qb.push_values(edits, |mut row, e| {
        let l = e.listing.as_ref().expect("partitioned by listing");
        let d = media_derived(&e.after);
        row.push_bind(e.scope)
            .push_bind(e.media_id.clone())
            .push_bind(l.sort_id.clone())
            .push_bind(l.created_at)
            .push_bind(e.duration)
            .push_bind(l.fingerprint.clone())
            .push_bind(l.list_hint.clone())
            .push_bind(d.media_type.map(|t| t.as_str()))
            .push_bind(d.cached_at)
            .push_bind(d.live_count);
    });
    qb.push(
        " ON CONFLICT (scope_id, media_id) DO UPDATE SET \
         duration = coalesce(excluded.duration, media.duration), \
         fingerprint = excluded.fingerprint, list_hint = excluded.list_hint, \
         media_type = excluded.media_type, cached_at = excluded.cached_at, \
         live_count = excluded.live_count",
    );
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// Rewrites the media rows' derived columns (and `duration` where known)
/// from their variants, one statement for all of them.
async fn write_media_derived(tx: &mut Tx, edits: &[&ItemEdit]) -> Result<()> {
    // `UPDATE ... FROM (VALUES ...)`: both databases name the columns of a
    // VALUES list column1, column2, ...
    let mut qb = QueryBuilder::<Db>::new(
        "UPDATE media SET media_type = v.column3, cached_at = v.column4, \
         live_count = v.column5, duration = coalesce(v.column6, media.duration) FROM (",
    );
    qb.push_values(edits, |mut row, e| {
        let d = media_derived(&e.after);
        row.push_bind(e.scope)
            .push_bind(e.media_id.clone())
            .push_bind(d.media_type.map(|t| t.as_str()))
            .push_bind(d.cached_at)
            .push_bind(d.live_count)
            .push_bind(e.duration);
    });
    qb.push(") AS v WHERE media.scope_id = v.column1 AND media.media_id = v.column2");
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// Whether a media URL request is answered the same from either record:
/// every field delivery reads of a stored variant.
fn delivered_alike(a: &VariantRecord, b: &VariantRecord) -> bool {
    (
        a.status,
        a.generation,
        &a.blob_key,
        &a.checksum,
        &a.content_type,
        a.size_bytes,
        a.created_at,
        a.stored_at,
    ) == (
        b.status,
        b.generation,
        &b.blob_key,
        &b.checksum,
        &b.content_type,
        b.size_bytes,
        b.created_at,
        b.stored_at,
    )
}

/// Inserts or updates variant rows (of distinct items and labels), one
/// statement for all. Access counts and times are written only with a new
/// row: they are counted outside the scope lock (see [`record_access`]), so
/// writing back the values read under it could lose hits counted meanwhile.
async fn write_variants(tx: &mut Tx, rows: &[(&ItemEdit, &VariantRecord)]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Db>::new(
        "INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, \
         access_count, created_at, stored_at, last_accessed_at, blob_key, checksum, origin, \
         upstream_url, upstream_size, last_error, generation) ",
    );
    qb.push_values(rows, |mut row, (e, v)| {
        row.push_bind(e.scope)
            .push_bind(e.media_id.clone())
            .push_bind(v.label.clone())
            .push_bind(v.status.as_str())
            .push_bind(v.size_bytes as i64)
            .push_bind(v.content_type.clone())
            .push_bind(v.access_count as i64)
            .push_bind(v.created_at)
            .push_bind(v.stored_at)
            .push_bind(v.last_accessed_at)
            .push_bind(v.blob_key.clone())
            .push_bind(v.checksum.clone())
            .push_bind(v.origin.as_str())
            .push_bind(v.upstream_url.clone())
            .push_bind(v.upstream_size.map(|n| n as i64))
            .push_bind(v.last_error.clone())
            .push_bind(v.generation);
    });
    qb.push(
        " ON CONFLICT (scope_id, media_id, label) DO UPDATE SET status = excluded.status, \
         size_bytes = excluded.size_bytes, content_type = excluded.content_type, \
         stored_at = excluded.stored_at, blob_key = excluded.blob_key, \
         checksum = excluded.checksum, origin = excluded.origin, \
         upstream_url = excluded.upstream_url, upstream_size = excluded.upstream_size, \
         last_error = excluded.last_error, generation = excluded.generation",
    );
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// Adds a delta to the scope's counters; only [`ItemEdit::save`] calls it,
/// with the delta of the rows it wrote under the scope lock, and
/// [`drain_retired`] with the rows it deleted.
async fn bump_scope(
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

/// Creates the media row of an uploaded item if it has none yet.
pub async fn ensure_media_row(
    tx: &mut Tx,
    scope: ScopeId,
    media: &MediaId,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (scope_id, media_id) DO NOTHING",
    )
    .bind(scope)
    .bind(media.as_str())
    .bind(media.sort_key())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks claimed jobs' variants `storing`, unless stored or evicted
/// meanwhile, one statement for all. Informative only: pending and storing
/// count alike.
pub async fn mark_storing(
    conn: &mut <Db as sqlx::Database>::Connection,
    jobs: &[Job],
) -> Result<()> {
    for chunk in super::row_chunks(jobs) {
        // `UPDATE ... FROM (VALUES ...)`: both databases name the columns
        // of a VALUES list column1, column2, ...
        let mut qb = QueryBuilder::<Db>::new("UPDATE variants SET status = 'storing' FROM (");
        qb.push_values(chunk, |mut row, j| {
            row.push_bind(j.scope_id)
                .push_bind(j.media_id.clone())
                .push_bind(j.label.clone());
        });
        qb.push(
            ") AS j WHERE variants.scope_id = j.column1 AND variants.media_id = j.column2 \
             AND variants.label = j.column3 AND variants.status IN ('pending', 'storing')",
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds counted hits; a hit on a variant that is gone changes nothing.
pub async fn record_access(
    conn: &mut <Db as sqlx::Database>::Connection,
    h: &AccessHit,
) -> Result<()> {
    let sql = format!(
        "UPDATE variants SET access_count = access_count + $1, \
         last_accessed_at = {}(last_accessed_at, $2) \
         WHERE scope_id = $3 AND media_id = $4 AND label = $5",
        dialect::GREATEST
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(h.count as i64)
        .bind(h.last_at)
        .bind(h.scope_id)
        .bind(&h.media_id)
        .bind(&h.label)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores the fresh upstream URL of a known variant fetched from upstream.
pub async fn refresh_upstream_url(
    tx: &mut Tx,
    scope: ScopeId,
    media_id: &str,
    label: &str,
    url: Option<&str>,
    size: Option<u64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE variants SET upstream_url = $1, upstream_size = $2 \
         WHERE scope_id = $3 AND media_id = $4 AND label = $5 AND origin = 'upstream'",
    )
    .bind(url)
    .bind(size.map(|n| n as i64))
    .bind(scope)
    .bind(media_id)
    .bind(label)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes up to `limit` variant records of a retired scope, answering the
/// blob keys they held (`None` for records without bytes), and writes the
/// lines of its erasure receipt, if it has one. No writer touches a
/// retired scope's rows, so the delta needs no lock.
pub async fn drain_retired(
    tx: &mut Tx,
    scope: ScopeId,
    receipt: Option<ReceiptId>,
    limit: i64,
) -> Result<Vec<Option<String>>> {
    let rows = sqlx::query(
        "DELETE FROM variants WHERE scope_id = $1 AND (media_id, label) IN \
           (SELECT media_id, label FROM variants WHERE scope_id = $1 \
            ORDER BY media_id, label LIMIT $2) \
         RETURNING media_id, label, blob_key, status, size_bytes, checksum",
    )
    .bind(scope)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    let (mut live, mut stored, mut bytes) = (0, 0, 0);
    let mut keys = Vec::with_capacity(rows.len());
    let mut lines = Vec::new();
    for r in &rows {
        // The counting rule of `derive::totals_of`, on the columns it reads.
        let status: &str = r.try_get("status")?;
        live -= i64::from(status != VariantStatus::Removed.as_str());
        let size: i64 = r.try_get("size_bytes")?;
        if status == VariantStatus::Stored.as_str() {
            stored -= 1;
            bytes -= size;
        }
        if receipt.is_some() {
            let media_id: String = r.try_get("media_id")?;
            let label: String = r.try_get("label")?;
            let checksum: Option<String> = r.try_get("checksum")?;
            let (checksum, size) = (checksum.as_deref(), size as u64);
            lines.extend(receipts::removed_line(
                &media_id, &label, status, checksum, size,
            ));
        }
        keys.push(r.try_get::<Option<String>, _>("blob_key")?);
    }
    if let Some(receipt) = receipt {
        receipts::record_lines(tx, receipt, &lines).await?;
    }
    bump_scope(tx, scope, (live, stored, bytes)).await?;
    Ok(keys)
}
