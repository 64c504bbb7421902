//! Fingerprints of the catalog rows a migration moves, to tell whether the
//! source or the target changed between two runs: the source (its server
//! ran again) must be copied again; the target (cluster nodes already
//! wrote to it) must never be overwritten.

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool, ValueRef};

use super::rows::TABLES;

/// A hash of every row the migration copies from the source, in rowid
/// order.
pub async fn source(src: &SqlitePool) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    for t in TABLES {
        hasher.update(t.name.as_bytes());
        // Table names and filters are constants, never input.
        let sql = format!("SELECT * FROM {} WHERE {} ORDER BY rowid", t.name, t.filter);
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(src);
        while let Some(row) = rows.try_next().await? {
            hash_row(&mut hasher, &row)?;
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hash_row(hasher: &mut Sha256, row: &SqliteRow) -> anyhow::Result<()> {
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            hasher.update([0u8]);
            continue;
        }
        // Every value by its bytes as stored: text and blobs as they are,
        // numbers through their text form.
        let bytes: Vec<u8> = match row.try_get_unchecked::<Vec<u8>, _>(i) {
            Ok(b) => b,
            Err(_) => row.try_get_unchecked::<String, _>(i)?.into_bytes(),
        };
        hasher.update([1u8]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(())
}

/// A digest of every row of the target's tables, computed by PostgreSQL
/// (an order-free sum of row hashes: nothing is held in memory).
pub async fn target(pg: &PgPool) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for t in TABLES {
        let sql = format!(
            "SELECT count(*)::TEXT || ':' || coalesce(sum(hashtext(x::TEXT)::NUMERIC), 0)::TEXT \
             FROM {} x",
            t.name
        );
        let part: String = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pg).await?;
        parts.push(format!("{}={part}", t.name));
    }
    Ok(parts.join(","))
}
