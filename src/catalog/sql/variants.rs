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

use sqlx::Row;

use super::blob_queue::queue_blob;
use super::dialect::{self, Db, Tx};
use super::rows::VARIANT_COLUMNS;
use crate::catalog::derive::{counter_delta, media_derived};
use crate::catalog::{AccessHit, Result, Revoked, ScopeId, VariantRecord};
use crate::model::observed::ObservedMedia;
use crate::model::{MediaId, VariantStatus};

/// One media item's variants, being changed.
pub struct ItemEdit {
    scope: ScopeId,
    media_id: String,
    before: Vec<VariantRecord>,
    after: Vec<VariantRecord>,
    delete: bool,
}

impl ItemEdit {
    /// Reads the item's variants. The caller holds the scope row lock.
    pub async fn load(tx: &mut Tx, scope: ScopeId, media_id: &str) -> Result<Self> {
        let sql = format!(
            "SELECT {VARIANT_COLUMNS} FROM variants WHERE scope_id = $1 AND media_id = $2 \
             ORDER BY label"
        );
        let before: Vec<VariantRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(media_id)
            .fetch_all(&mut **tx)
            .await?;
        Ok(Self {
            scope,
            media_id: media_id.to_owned(),
            after: before.clone(),
            before,
            delete: false,
        })
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

    /// Deletes the whole item: every variant record and the media row.
    pub fn delete_all(&mut self) {
        self.after.clear();
        self.delete = true;
    }

    /// Writes the change: changed variant rows, the counter delta, the
    /// blobs no longer referenced, and the media row (its derived columns,
    /// and `duration` when known).
    pub async fn save(self, tx: &mut Tx, duration: Option<f64>, now: i64) -> Result<()> {
        // A stored variant deleted, evicted or replaced may be held in a
        // node's memory: the commit revokes it. Changes that delivery does
        // not read (a fresh upstream URL, which every sync of a signed
        // listing writes) revoke nothing.
        let revokes = self.before.iter().any(|old| {
            old.status == VariantStatus::Stored
                && !self
                    .after
                    .iter()
                    .find(|v| v.label == old.label)
                    .is_some_and(|new| delivered_alike(old, new))
        });
        if revokes {
            dialect::revoke(tx, &Revoked::Scope(self.scope)).await?;
        }
        for old in &self.before {
            let new = self.after.iter().find(|v| v.label == old.label);
            if let Some(key) = old.blob_key.as_deref()
                && new.and_then(|n| n.blob_key.as_deref()) != Some(key)
            {
                queue_blob(tx, key, now).await?;
            }
        }
        for new in &self.after {
            if !self.before.contains(new) {
                write_variant(tx, self.scope, &self.media_id, new).await?;
            }
        }
        let delta = counter_delta(&self.before, &self.after);
        bump_scope(tx, self.scope, delta).await?;
        if self.delete {
            for table in ["variants", "media"] {
                let sql = format!("DELETE FROM {table} WHERE scope_id = $1 AND media_id = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(self.scope)
                    .bind(&self.media_id)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(());
        }
        let d = media_derived(&self.after);
        sqlx::query(
            "UPDATE media SET media_type = $1, cached_at = $2, live_count = $3, \
             duration = coalesce($4, duration) WHERE scope_id = $5 AND media_id = $6",
        )
        .bind(d.media_type.map(|t| t.as_str()))
        .bind(d.cached_at)
        .bind(d.live_count)
        .bind(duration)
        .bind(self.scope)
        .bind(&self.media_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
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

/// Inserts or updates one variant row. Access counts and times are written
/// only with a new row: they are counted outside the scope lock (see
/// [`record_access`]), so writing back the values read under it could lose
/// hits counted meanwhile.
async fn write_variant(
    tx: &mut Tx,
    scope: ScopeId,
    media_id: &str,
    v: &VariantRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO variants (scope_id, media_id, label, status, size_bytes, content_type, \
         access_count, created_at, stored_at, last_accessed_at, blob_key, checksum, origin, \
         upstream_url, upstream_size, last_error, generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (scope_id, media_id, label) DO UPDATE SET status = excluded.status, \
         size_bytes = excluded.size_bytes, content_type = excluded.content_type, \
         stored_at = excluded.stored_at, blob_key = excluded.blob_key, \
         checksum = excluded.checksum, origin = excluded.origin, \
         upstream_url = excluded.upstream_url, upstream_size = excluded.upstream_size, \
         last_error = excluded.last_error, generation = excluded.generation",
    )
    .bind(scope)
    .bind(media_id)
    .bind(&v.label)
    .bind(v.status.as_str())
    .bind(v.size_bytes as i64)
    .bind(&v.content_type)
    .bind(v.access_count as i64)
    .bind(v.created_at)
    .bind(v.stored_at)
    .bind(v.last_accessed_at)
    .bind(&v.blob_key)
    .bind(&v.checksum)
    .bind(v.origin.as_str())
    .bind(&v.upstream_url)
    .bind(v.upstream_size.map(|n| n as i64))
    .bind(&v.last_error)
    .bind(v.generation)
    .execute(&mut **tx)
    .await?;
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

/// Creates or updates the media row of an item a listing observed, with
/// what the listing says of it (not the columns derived from variants).
pub async fn record_observed_media(
    tx: &mut Tx,
    scope: ScopeId,
    item: &ObservedMedia,
    list_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO media (scope_id, media_id, sort_id, created_at, duration, fingerprint, list_hint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope_id, media_id) DO UPDATE SET \
         duration = coalesce(excluded.duration, media.duration), fingerprint = excluded.fingerprint, \
         list_hint = excluded.list_hint",
    )
    .bind(scope)
    .bind(item.media_id.as_str())
    .bind(item.media_id.sort_key())
    .bind(now)
    .bind(item.duration)
    .bind(&item.fingerprint)
    .bind(list_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a claimed job's variant `storing`, unless it was stored or
/// evicted meanwhile. Informative only: pending and storing count alike.
pub async fn mark_storing(
    conn: &mut <Db as sqlx::Database>::Connection,
    scope: ScopeId,
    media_id: &str,
    label: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE variants SET status = 'storing' WHERE scope_id = $1 AND media_id = $2 \
         AND label = $3 AND status IN ('pending', 'storing')",
    )
    .bind(scope)
    .bind(media_id)
    .bind(label)
    .execute(conn)
    .await?;
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
/// blob keys they held (`None` for records without bytes). No writer
/// touches a retired scope's rows, so the delta needs no lock.
pub async fn drain_retired(tx: &mut Tx, scope: ScopeId, limit: i64) -> Result<Vec<Option<String>>> {
    let rows = sqlx::query(
        "DELETE FROM variants WHERE scope_id = $1 AND (media_id, label) IN \
           (SELECT media_id, label FROM variants WHERE scope_id = $1 \
            ORDER BY media_id, label LIMIT $2) \
         RETURNING blob_key, status, size_bytes",
    )
    .bind(scope)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    let (mut live, mut stored, mut bytes) = (0, 0, 0);
    let mut keys = Vec::with_capacity(rows.len());
    for r in &rows {
        // The counting rule of `derive::totals_of`, on the columns it reads.
        let status: &str = r.try_get("status")?;
        live -= i64::from(status != VariantStatus::Removed.as_str());
        if status == VariantStatus::Stored.as_str() {
            stored -= 1;
            bytes -= r.try_get::<i64, _>("size_bytes")?;
        }
        keys.push(r.try_get::<Option<String>, _>("blob_key")?);
    }
    bump_scope(tx, scope, (live, stored, bytes)).await?;
    Ok(keys)
}
