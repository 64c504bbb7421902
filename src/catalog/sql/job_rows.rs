//! Job rows: third in the lock order, so a transaction that writes a
//! variant and its job touches the job first.

use std::collections::{HashMap, HashSet};

use sqlx::QueryBuilder;

use super::dialect::{self, Db, FOR_UPDATE, Tx};
use crate::catalog::{Result, ScopeId};

/// Creates the variants' jobs, or revives those that had failed for good,
/// one statement for all (`jobs` lists distinct media and label pairs).
/// Returns how many jobs became runnable (those already runnable do not
/// count).
pub async fn ensure_jobs(
    tx: &mut Tx,
    scope: ScopeId,
    jobs: &[(&str, &str)],
    now: i64,
) -> Result<u64> {
    let mut made = 0;
    for chunk in super::row_chunks(jobs) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO jobs (scope_id, media_id, label, run_after, created_at) ",
        );
        qb.push_values(chunk, |mut row, (media, label)| {
            row.push_bind(scope)
                .push_bind(media.to_string())
                .push_bind(label.to_string())
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(
            " ON CONFLICT (scope_id, media_id, label) DO UPDATE SET failed_at = NULL, \
             attempts = 0, run_after = excluded.run_after, last_error = NULL \
             WHERE jobs.failed_at IS NOT NULL",
        );
        made += qb.build().execute(&mut **tx).await?.rows_affected();
    }
    Ok(made)
}

/// Drops the jobs of an item (`label: None`) or of one of its variants: a
/// worker still fetching finds its job gone and discards what it fetched.
pub async fn drop_jobs(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
    label: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM jobs WHERE scope_id = $1 AND media_id = $2 \
         AND (CAST($3 AS TEXT) IS NULL OR label = $3)",
    )
    .bind(scope)
    .bind(media)
    .bind(label)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `owner` still holds the job; locks the job row so the answer
/// holds until the transaction ends (another node cannot re-lease it
/// meanwhile).
pub async fn holds(tx: &mut Tx, job: i64, owner: &str) -> Result<bool> {
    Ok(held(tx, &[(job, owner)]).await?.contains(&job))
}

/// Of `jobs` (job ID, owner), those their owner still holds, locked as
/// [`holds`] locks one.
pub async fn held(tx: &mut Tx, jobs: &[(i64, &str)]) -> Result<HashSet<i64>> {
    let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
    let sql = format!(
        "SELECT id, lease_owner FROM jobs WHERE {} AND failed_at IS NULL{FOR_UPDATE}",
        dialect::in_list("id", 1)
    );
    let owners: HashMap<i64, Option<String>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(&ids))
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
    Ok(jobs
        .iter()
        .filter(|(id, owner)| owners.get(id).is_some_and(|o| o.as_deref() == Some(*owner)))
        .map(|(id, _)| *id)
        .collect())
}

/// Deletes the jobs of stored variants, one statement for all.
pub async fn end_jobs(tx: &mut Tx, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!("DELETE FROM jobs WHERE {}", dialect::in_list("id", 1));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(ids))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The variant a job stores: (scope, media ID, label).
pub async fn job_target(tx: &mut Tx, job: i64) -> Result<Option<(ScopeId, String, String)>> {
    Ok(
        sqlx::query_as("SELECT scope_id, media_id, label FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(&mut **tx)
            .await?,
    )
}
