//! Putting blobs on the reclaim queue, in the transaction that stops
//! referencing them, so that no blob is ever forgotten between the two.

use super::dialect::{self, Tx};
use crate::catalog::{ReceiptId, Result};

pub async fn queue_blob(tx: &mut Tx, key: &str, now: i64) -> Result<()> {
    queue_blob_for(tx, key, None, now).await
}

/// Queues a blob whose deletion an erasure receipt waits for. A key
/// queued already keeps its place; it takes the receipt if it had none, so
/// that no receipt can miss a blob it names.
pub async fn queue_blob_for(
    tx: &mut Tx,
    key: &str,
    receipt: Option<ReceiptId>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at, receipt_id) VALUES ($1, $2, $3) \
         ON CONFLICT (blob_key) DO UPDATE \
         SET receipt_id = coalesce(reclaim_blobs.receipt_id, excluded.receipt_id)",
    )
    .bind(key)
    .bind(now)
    .bind(receipt.map(|r| r.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn queue_blobs(tx: &mut Tx, keys: &[String], now: i64) -> Result<()> {
    queue_blobs_for(tx, keys, None, now).await
}

/// Queues many blobs in one statement (for a receipt, see
/// [`queue_blob_for`]).
pub async fn queue_blobs_for(
    tx: &mut Tx,
    keys: &[String],
    receipt: Option<ReceiptId>,
    now: i64,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // `WHERE true`: SQLite reads `ON` after a bare `SELECT ... FROM` as a
    // join constraint; a WHERE clause ends the ambiguity (SQLite's upsert
    // documentation says so).
    let sql = format!(
        "INSERT INTO reclaim_blobs (blob_key, queued_at, receipt_id) SELECT value, $2, $3 \
         FROM {} WHERE true ON CONFLICT (blob_key) DO UPDATE \
         SET receipt_id = coalesce(reclaim_blobs.receipt_id, excluded.receipt_id)",
        dialect::list_table(1)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(keys))
        .bind(now)
        .bind(receipt.map(|r| r.to_string()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
