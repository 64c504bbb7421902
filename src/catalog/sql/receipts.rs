//! Erasure receipts: written in the transaction of the change they cover,
//! their digest lines written as the variants' records are deleted (at
//! once for a delete, as a retired scope is drained for a purge), their
//! blobs tagged on the reclaim queue. A receipt is done when no queued
//! deletion of its blobs is left and its retired scope (if any) is gone:
//! the reclaimer forgets a queued blob only once the blob store deleted it.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::dialect::{self, Tx};
use super::outbox;
use crate::catalog::paging::{fetch_bound, finish};
use crate::catalog::{
    Page, PageRequest, ReceiptId, ReceiptKey, ReceiptKeyRecord, ReceiptKind, ReceiptRecord,
    Receipts, Result, ScopeId,
};
use crate::model::VariantStatus;
use crate::model::webhook::WebhookEvent;

/// Writes a receipt for a change of `scope`'s connection (its org and
/// connection ID are the scope row's). `drains`: the scope was retired by
/// the change; it names the receipt, whose lines its drain writes and which
/// waits until the scope is gone.
pub async fn create(
    tx: &mut Tx,
    scope: ScopeId,
    kind: ReceiptKind,
    (purged_count, freed_bytes): (u64, u64),
    drains: bool,
    now: i64,
) -> Result<ReceiptId> {
    let id = ReceiptId::random();
    create_as(
        tx,
        id,
        scope,
        kind,
        (purged_count, freed_bytes),
        drains,
        now,
    )
    .await?;
    Ok(id)
}

/// [`create`] under an ID chosen before: an eviction tags its lines and
/// blobs as it goes, and knows its counts only at the end (one
/// transaction either way).
pub async fn create_as(
    tx: &mut Tx,
    id: ReceiptId,
    scope: ScopeId,
    kind: ReceiptKind,
    (purged_count, freed_bytes): (u64, u64),
    drains: bool,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO receipts (id, org_id, kind, connection_id, requested_at, purged_count, \
           freed_bytes) \
         SELECT $1, org_id, $2, connection_id, $3, $4, $5 FROM scopes WHERE id = $6",
    )
    .bind(id.to_string())
    .bind(kind.as_str())
    .bind(now)
    .bind(purged_count as i64)
    .bind(freed_bytes as i64)
    .bind(scope)
    .execute(&mut **tx)
    .await?;
    if drains {
        sqlx::query("UPDATE scopes SET receipt_id = $1 WHERE id = $2")
            .bind(id.to_string())
            .bind(scope)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One line of a receipt's digest, without its newline: no field holds a
/// tab or a newline (IDs, labels and hex), and two lines of one receipt
/// never share their media ID and label, so no line is a prefix of
/// another and sorting them with or without the newline is the same.
fn line(media_id: &str, label: &str, checksum: &str, size_bytes: u64) -> String {
    format!("{media_id}\t{label}\t{checksum}\t{size_bytes}")
}

/// The line of a removed variant, if it held bytes (stored, with their
/// checksum); a pending one holds none and has no line.
pub fn removed_line(
    media_id: &str,
    label: &str,
    status: &str,
    checksum: Option<&str>,
    size_bytes: u64,
) -> Option<String> {
    let checksum = checksum.filter(|_| status == VariantStatus::Stored.as_str())?;
    Some(line(media_id, label, checksum, size_bytes))
}

/// Adds digest lines to a receipt, one statement for all.
pub async fn record_lines(tx: &mut Tx, receipt: ReceiptId, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    // `WHERE true`: see `blob_queue::queue_blobs`.
    let sql = format!(
        "INSERT INTO receipt_lines (receipt_id, line) SELECT $1, value FROM {} WHERE true \
         ON CONFLICT DO NOTHING",
        dialect::list_table(2)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(receipt.to_string())
        .bind(dialect::list(lines))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const RECEIPT_COLUMNS: &str = "id, org_id, kind, connection_id, requested_at, purged_count, \
     freed_bytes, bytes_gone_at, digest";

fn receipt_row(r: &dialect::Row) -> Result<ReceiptRecord> {
    Ok(ReceiptRecord {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        kind: r.try_get("kind")?,
        connection_id: r.try_get("connection_id")?,
        requested_at: r.try_get("requested_at")?,
        purged_count: r.try_get::<i64, _>("purged_count")? as u64,
        freed_bytes: r.try_get::<i64, _>("freed_bytes")? as u64,
        bytes_gone_at: r.try_get("bytes_gone_at")?,
        digest: r.try_get("digest")?,
    })
}

#[async_trait]
impl Receipts for SqlCatalog {
    async fn receipt(
        &self,
        org: crate::catalog::OrgId,
        id: &ReceiptId,
    ) -> Result<Option<ReceiptRecord>> {
        let sql = format!("SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(org)
            .fetch_optional(self.db.reader())
            .await?;
        row.as_ref().map(receipt_row).transpose()
    }

    async fn connection_receipts(
        &self,
        org: crate::catalog::OrgId,
        connection_id: &str,
        page: &PageRequest<ReceiptKey>,
    ) -> Result<Page<ReceiptRecord, ReceiptKey>> {
        // Newest first: after the key means older than it. With no key,
        // a key past every receipt ("~" sorts after every ID's "r").
        let (at, id) = match &page.after {
            Some(k) => (k.requested_at, k.id.as_str()),
            None => (i64::MAX, "~"),
        };
        let sql = format!(
            "SELECT {RECEIPT_COLUMNS} FROM receipts WHERE org_id = $1 AND connection_id = $2 \
               AND (requested_at < $3 OR (requested_at = $3 AND id < $4)) \
             ORDER BY requested_at DESC, id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(connection_id)
            .bind(at)
            .bind(id)
            .bind(fetch_bound(page.limit))
            .fetch_all(self.db.reader())
            .await?;
        let items = rows.iter().map(receipt_row).collect::<Result<Vec<_>>>()?;
        Ok(finish(items, page.limit, |r| ReceiptKey {
            requested_at: r.requested_at,
            id: r.id.clone(),
        }))
    }

    async fn receipts_done(&self, limit: u64) -> Result<Vec<ReceiptId>> {
        let rows = sqlx::query(
            "SELECT id FROM receipts r WHERE bytes_gone_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM scopes s WHERE s.receipt_id = r.id) \
               AND NOT EXISTS (SELECT 1 FROM reclaim_blobs b WHERE b.receipt_id = r.id) \
             ORDER BY requested_at, id LIMIT $1",
        )
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(self.db.reader())
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = r.try_get("id")?;
            ids.extend(ReceiptId::parse(&text));
        }
        Ok(ids)
    }

    async fn receipt_lines(
        &self,
        id: &ReceiptId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<String>> {
        // Every line is non-empty, so "" is before the first.
        let rows = sqlx::query(
            "SELECT line FROM receipt_lines WHERE receipt_id = $1 AND line > $2 \
             ORDER BY line LIMIT $3",
        )
        .bind(id.to_string())
        .bind(after.unwrap_or(""))
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("line")?)).collect()
    }

    async fn finish_receipt(&self, id: &ReceiptId, digest: &str, now: i64) -> Result<bool> {
        let id = &id.to_string();
        in_tx!(self, "finish_receipt", |tx| async move {
            let row = sqlx::query(
                "UPDATE receipts SET bytes_gone_at = $1, digest = $2 \
                 WHERE id = $3 AND bytes_gone_at IS NULL \
                 RETURNING org_id, kind, connection_id, purged_count, freed_bytes",
            )
            .bind(now)
            .bind(digest)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            let done = row.is_some();
            // Its lines go afterwards, a batch at a time
            // (`prune_receipt_lines`): a million in one transaction would
            // hold SQLite's writer for seconds.
            if let Some(r) = row {
                // A purge's second vault_plus.purge.completed: its bytes are gone.
                if r.try_get::<String, _>("kind")? == ReceiptKind::Purge.as_str() {
                    let event = WebhookEvent::purge_completed(
                        &r.try_get::<String, _>("connection_id")?,
                        r.try_get::<i64, _>("purged_count")? as u64,
                        r.try_get::<i64, _>("freed_bytes")? as u64,
                        id,
                        true,
                    );
                    outbox::emit(tx, r.try_get("org_id")?, &event, now).await?;
                }
            }
            Ok(done)
        })
    }

    /// One finished receipt's lines at a time, by its key range (a
    /// condition on lines of several receipts at once would make SQLite
    /// scan every line); the receipt is marked pruned once none is left.
    async fn prune_receipt_lines(&self, limit: u64) -> Result<bool> {
        let limit = limit.clamp(1, i64::MAX as u64) as i64;
        in_tx!(self, "prune_receipt_lines", |tx| async move {
            let Some(row) = sqlx::query(
                "SELECT id FROM receipts WHERE bytes_gone_at IS NOT NULL \
                 AND lines_pruned_at IS NULL ORDER BY bytes_gone_at, id LIMIT 1",
            )
            .fetch_optional(&mut **tx)
            .await?
            else {
                return Ok(false);
            };
            let id: String = row.try_get("id")?;
            let done = sqlx::query(
                "DELETE FROM receipt_lines WHERE receipt_id = $1 AND line IN \
                   (SELECT line FROM receipt_lines WHERE receipt_id = $1 ORDER BY line LIMIT $2)",
            )
            .bind(&id)
            .bind(limit)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if (done as i64) < limit {
                sqlx::query("UPDATE receipts SET lines_pruned_at = $1 WHERE id = $2")
                    .bind(crate::model::time::now_ms())
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(true)
        })
    }

    async fn receipt_keys(&self) -> Result<Vec<ReceiptKeyRecord>> {
        let rows =
            sqlx::query("SELECT id, slot, secret, created_at FROM receipt_keys ORDER BY slot")
                .fetch_all(self.db.reader())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(ReceiptKeyRecord {
                    id: r.try_get("id")?,
                    slot: r.try_get("slot")?,
                    secret: r.try_get("secret")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_receipt_key(&self, key: &ReceiptKeyRecord) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO receipt_keys (id, slot, secret, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&key.id)
        .bind(key.slot)
        .bind(&key.secret)
        .bind(key.created_at)
        .execute(self.db.writer())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}
