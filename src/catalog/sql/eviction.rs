//! Evictions: a stored variant loses its bytes but keeps its record, as
//! `removed` with size 0, so a later sync or proxy hit can store it again.
//! Storage limits evict at store time, in the storing transaction. Every
//! entry point here runs under the scope row lock.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::dialect::{GREATEST, Tx};
use super::receipts;
use super::scopes::{lock_current_scope, scope_totals};
use super::variants::ItemEdit;
use crate::catalog::{ReceiptId, ReceiptKind, Result, Retention, ScopeId};
use crate::model::VariantStatus;
use crate::model::settings::{LimitStrategy, StorageLimit};

#[async_trait]
impl Retention for SqlCatalog {
    async fn evict_expired(
        &self,
        scope: ScopeId,
        stored_before: Option<i64>,
        accessed_before: Option<i64>,
        limit: u64,
        now: i64,
    ) -> Result<(u64, u64)> {
        in_tx!(self, "evict_expired", |tx| async move {
            // Evicts up to `limit` variants past their retention or access expiry.
            // Access expiry counts from the last access or, if later, from when the
            // bytes were stored: a variant stored today is not "unused for N days".
            if !lock_current_scope(tx, scope).await? {
                return Ok((0, 0));
            }
            let sql = format!(
                "SELECT media_id, label FROM variants WHERE scope_id = $1 AND status = 'stored' \
                 AND (stored_at < $2 OR {GREATEST}(stored_at, last_accessed_at) < $3) \
                 ORDER BY stored_at, media_id, label LIMIT $4"
            );
            let due: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(scope)
                .bind(stored_before.unwrap_or(i64::MIN))
                .bind(accessed_before.unwrap_or(i64::MIN))
                .bind(limit.min(i64::MAX as u64) as i64)
                .fetch_all(&mut **tx)
                .await?;
            let mut tally = Tally::new();
            for (media, label) in due {
                tally.evict(tx, scope, &media, &label, now).await?;
            }
            tally.close(tx, scope, now).await?;
            Ok(tally.evicted)
        })
    }

    async fn enforce_storage_limit(
        &self,
        scope: ScopeId,
        limit: StorageLimit,
        now: i64,
    ) -> Result<(u64, u64)> {
        in_tx!(self, "enforce_storage_limit", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok((0, 0));
            }
            enforce_limit(tx, scope, Some(limit), ("", ""), now).await
        })
    }
}

/// What one eviction transaction evicted, under the erasure receipt it
/// writes at its end if it evicted anything (its ID is chosen first: each
/// evicted variant's line and blob carry it).
struct Tally {
    receipt: ReceiptId,
    /// (variants, bytes).
    evicted: (u64, u64),
}

impl Tally {
    fn new() -> Self {
        Self {
            receipt: ReceiptId::random(),
            evicted: (0, 0),
        }
    }

    async fn evict(
        &mut self,
        tx: &mut Tx,
        scope: ScopeId,
        media: &str,
        label: &str,
        now: i64,
    ) -> Result<()> {
        self.evicted.1 += evict_locked(tx, scope, media, label, Some(self.receipt), now).await?;
        self.evicted.0 += 1;
        Ok(())
    }

    /// Writes the receipt, if anything was evicted; answers it then.
    async fn close(&self, tx: &mut Tx, scope: ScopeId, now: i64) -> Result<Option<ReceiptId>> {
        if self.evicted.0 == 0 {
            return Ok(None);
        }
        let kind = ReceiptKind::Eviction;
        receipts::create_as(tx, self.receipt, scope, kind, self.evicted, false, now).await?;
        Ok(Some(self.receipt))
    }
}

/// Turns a stored variant into a `removed` tombstone (its bytes queued,
/// for `receipt` if the eviction has one). The caller holds the scope
/// lock. Returns the bytes it held.
pub async fn evict_locked(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
    label: &str,
    receipt: Option<ReceiptId>,
    now: i64,
) -> Result<u64> {
    let mut edit = ItemEdit::load(tx, scope, media).await?;
    let Some(old) = edit
        .get(label)
        .filter(|v| v.status == VariantStatus::Stored)
    else {
        return Ok(0);
    };
    let freed = old.size_bytes;
    let mut gone = old.clone();
    gone.status = VariantStatus::Removed;
    gone.size_bytes = 0;
    gone.stored_at = None;
    gone.blob_key = None;
    gone.checksum = None;
    edit.put(gone);
    edit.receipt = receipt;
    edit.save(tx, None, now).await?;
    Ok(freed)
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
    // A repair (fsck), not a policy: no receipt.
    evict_locked(tx, scope, media, label, None, now).await
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
    let Some(limit) = limit else {
        return Ok((0, 0));
    };
    let order = match limit.strategy {
        LimitStrategy::BlockNew => return Ok((0, 0)),
        LimitStrategy::PurgeOldest => "stored_at ASC",
        LimitStrategy::PurgeLargest => "size_bytes DESC",
        LimitStrategy::PurgeSmallest => "size_bytes ASC",
    };
    let sql = format!(
        "SELECT media_id, label FROM variants WHERE scope_id = $1 AND status = 'stored' \
         AND NOT (media_id = $2 AND label = $3) ORDER BY {order}, media_id, label LIMIT 1"
    );
    let mut tally = Tally::new();
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
        tally.evict(tx, scope, &media, &label, now).await?;
    }
    if let Some(receipt) = tally.close(tx, scope, now).await? {
        super::outbox::storage_limit_reached(tx, scope, &limit, tally.evicted, &receipt, now)
            .await?;
    }
    Ok(tally.evicted)
}
