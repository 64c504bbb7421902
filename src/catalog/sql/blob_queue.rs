//! Putting blobs on the reclaim queue, in the transaction that stops
//! referencing them, so that no blob is ever forgotten between the two.

use super::dialect::{self, Tx};
use crate::catalog::Result;

pub async fn queue_blob(tx: &mut Tx, key: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues many blobs in one statement.
pub async fn queue_blobs(tx: &mut Tx, keys: &[String], now: i64) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // `WHERE true`: SQLite reads `ON` after a bare `SELECT ... FROM` as a
    // join constraint; a WHERE clause ends the ambiguity (SQLite's upsert
    // documentation says so).
    let sql = format!(
        "INSERT INTO reclaim_blobs (blob_key, queued_at) SELECT value, $2 FROM {} WHERE true \
         ON CONFLICT DO NOTHING",
        dialect::list_table(1)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(keys))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
