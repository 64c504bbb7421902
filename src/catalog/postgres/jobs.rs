//! The durable storing queue: one job per variant, leased to one worker on
//! any node at a time, so a node that dies mid-fetch hands its jobs to the
//! others once their leases lapse.

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::eviction::{admits, enforce_limit};
use super::locks::lock_current_scope;
use super::media::{abort_upload, bump_scope, queue_blob, refresh_media, take_intent, variants_of};
use crate::catalog::derive::counter_delta;
use crate::catalog::generation;
use crate::catalog::paging;
use crate::catalog::{
    CommitOutcome, FetchedBlob, Job, JobKey, JobRecord, Page, PageRequest, QueueOutcome, Result,
    ScopeId,
};
use crate::model::observed::Origin;
use crate::model::settings::StorageLimit;
use crate::model::{Label, MediaId, MediaType, VariantStatus};

type Tx = Transaction<'static, Postgres>;

/// Creates the variant's job, or revives it if it had failed for good.
/// Returns 1 when a job became runnable, 0 when one already was. Callers
/// that also write the variant call this first (lock order, locks.rs).
pub async fn ensure_job(
    tx: &mut Tx,
    scope: ScopeId,
    media: &str,
    label: &str,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (scope_id, media_id, label, run_after, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (scope_id, media_id, label) DO UPDATE SET failed_at = NULL, attempts = 0, \
         run_after = excluded.run_after, last_error = NULL WHERE jobs.failed_at IS NOT NULL",
    )
    .bind(scope)
    .bind(media)
    .bind(label)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

pub async fn queue_variant(
    tx: &mut Tx,
    scope: ScopeId,
    media: &MediaId,
    label: &Label,
    now: i64,
) -> Result<QueueOutcome> {
    if !lock_current_scope(tx, scope).await? {
        return Ok(QueueOutcome::Unknown);
    }
    let variants = variants_of(tx, scope, media.as_str()).await?;
    let Some(v) = variants.iter().find(|v| v.label == label.as_str()) else {
        return Ok(QueueOutcome::Unknown);
    };
    if v.status == VariantStatus::Stored {
        return Ok(QueueOutcome::Stored);
    }
    if v.origin == Origin::Upload {
        // An upload that never completed has nothing to fetch from.
        return Ok(QueueOutcome::Unknown);
    }
    ensure_job(tx, scope, media.as_str(), label.as_str(), now).await?;
    if matches!(v.status, VariantStatus::EdgeOnly | VariantStatus::Removed) {
        let mut rec = v.clone();
        rec.status = VariantStatus::Pending;
        rec.generation = generation::after_revival(v, rec.status);
        sqlx::query(
            "UPDATE variants SET status = 'pending', generation = $1 \
             WHERE scope_id = $2 AND media_id = $3 AND label = $4",
        )
        .bind(rec.generation)
        .bind(scope)
        .bind(media.as_str())
        .bind(label.as_str())
        .execute(&mut **tx)
        .await?;
        bump_scope(tx, scope, counter_delta(Some(v), Some(&rec))).await?;
        let mut after = variants.clone();
        after.retain(|a| a.label != rec.label);
        after.push(rec);
        refresh_media(tx, scope, media.as_str(), &after, None).await?;
    }
    Ok(QueueOutcome::Queued)
}

/// Leases due jobs to `owner`. `FOR UPDATE SKIP LOCKED` makes concurrent
/// claimers on any node pass over each other's rows instead of waiting, and
/// a row another claimer leased and committed meanwhile is re-checked
/// against the WHERE clause before it is locked, so no job is handed out
/// twice. An expired lease matches `lease_until < now` again, so any node
/// can take it over.
///
/// The claim transaction touches only job rows. Marking the variants
/// `storing` happens after it commits, one row per statement: holding job
/// locks while waiting for variant rows could deadlock with a list sync
/// that writes variants before their jobs. The mark is only informative
/// (pending and storing count alike), and it never overwrites a variant
/// stored or evicted meanwhile.
pub async fn claim_jobs(
    pool: &PgPool,
    owner: &str,
    limit: u64,
    lease_until: i64,
    now: i64,
) -> Result<Vec<Job>> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "WITH picked AS ( \
           SELECT j.id FROM jobs j WHERE j.failed_at IS NULL AND j.run_after <= $3 \
             AND (j.lease_until IS NULL OR j.lease_until < $3) \
             AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = j.scope_id) \
           ORDER BY j.run_after, j.id LIMIT $4 FOR UPDATE OF j SKIP LOCKED), \
         leased AS ( \
           UPDATE jobs SET lease_owner = $1, lease_until = $2 FROM picked \
           WHERE jobs.id = picked.id RETURNING jobs.*) \
         SELECT j.id, j.scope_id, s.org_id, s.connection_id, j.media_id, j.label, j.attempts, \
           j.run_after, v.origin, v.upstream_url, v.upstream_size, v.content_type, m.list_hint \
         FROM leased j JOIN scopes s ON s.id = j.scope_id \
           JOIN variants v ON v.scope_id = j.scope_id AND v.media_id = j.media_id AND v.label = j.label \
           LEFT JOIN media m ON m.scope_id = j.scope_id AND m.media_id = j.media_id \
         ORDER BY j.run_after, j.id",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        jobs.push(Job {
            id: r.try_get("id")?,
            scope_id: r.try_get("scope_id")?,
            org_id: r.try_get("org_id")?,
            connection_id: r.try_get("connection_id")?,
            media_id: r.try_get("media_id")?,
            label: r.try_get("label")?,
            attempts: r.try_get::<i64, _>("attempts")? as u32,
            origin: Origin::parse(&r.try_get::<String, _>("origin")?).unwrap_or(Origin::Upstream),
            upstream_url: r.try_get("upstream_url")?,
            upstream_size: r
                .try_get::<Option<i64>, _>("upstream_size")?
                .map(|n| n as u64),
            content_type: r.try_get("content_type")?,
            list_hint: r.try_get("list_hint")?,
        });
    }
    for j in &jobs {
        sqlx::query(
            "UPDATE variants SET status = 'storing' WHERE scope_id = $1 AND media_id = $2 \
             AND label = $3 AND status IN ('pending', 'storing')",
        )
        .bind(j.scope_id)
        .bind(&j.media_id)
        .bind(&j.label)
        .execute(pool)
        .await?;
    }
    Ok(jobs)
}

pub async fn extend_lease(pool: &PgPool, job: i64, owner: &str, until: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND failed_at IS NULL",
    )
    .bind(until)
    .bind(job)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `owner` still holds the job; locks the job row so the answer
/// holds until the transaction ends (another node cannot re-lease it
/// meanwhile).
async fn holds(tx: &mut Tx, job: i64, owner: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND failed_at IS NULL FOR UPDATE",
    )
    .bind(job)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

pub async fn complete_job(
    tx: &mut Tx,
    job: &Job,
    owner: &str,
    blob: &FetchedBlob,
    limit: Option<StorageLimit>,
    now: i64,
) -> Result<CommitOutcome> {
    if !lock_current_scope(tx, job.scope_id).await? {
        abort_upload(tx, &blob.blob_key, now).await?;
        return Ok(CommitOutcome::ScopeRetired);
    }
    // Job row before variant rows (lock order).
    let held = holds(tx, job.id, owner).await?;
    let variants = variants_of(tx, job.scope_id, &job.media_id).await?;
    let old = variants.iter().find(|v| v.label == job.label);
    let (Some(old), true) = (old, held) else {
        abort_upload(tx, &blob.blob_key, now).await?;
        return Ok(CommitOutcome::Superseded);
    };
    let replaced = if old.status == VariantStatus::Stored {
        old.size_bytes
    } else {
        0
    };
    if !admits(tx, job.scope_id, limit, blob.size_bytes, replaced).await? {
        abort_upload(tx, &blob.blob_key, now).await?;
        return Ok(CommitOutcome::OverLimit);
    }
    if !take_intent(tx, &blob.blob_key).await? {
        queue_blob(tx, &blob.blob_key, now).await?;
        return Ok(CommitOutcome::Superseded);
    }
    let mut new = old.clone();
    new.status = VariantStatus::Stored;
    new.size_bytes = blob.size_bytes;
    // The response's own type wins over the guess made at listing time,
    // provided it is media at all.
    if MediaType::from_content_type(&blob.content_type).is_some() {
        new.content_type = blob.content_type.clone();
    }
    new.stored_at = Some(now);
    new.blob_key = Some(blob.blob_key.clone());
    new.checksum = Some(blob.checksum.clone());
    new.last_error = None;
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(job.id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE variants SET status = 'stored', size_bytes = $1, content_type = $2, stored_at = $3, \
         blob_key = $4, checksum = $5, last_error = NULL \
         WHERE scope_id = $6 AND media_id = $7 AND label = $8",
    )
    .bind(new.size_bytes as i64)
    .bind(&new.content_type)
    .bind(now)
    .bind(&blob.blob_key)
    .bind(&blob.checksum)
    .bind(job.scope_id)
    .bind(&job.media_id)
    .bind(&job.label)
    .execute(&mut **tx)
    .await?;
    if let Some(old_key) = old.blob_key.as_deref() {
        queue_blob(tx, old_key, now).await?;
    }
    bump_scope(tx, job.scope_id, counter_delta(Some(old), Some(&new))).await?;
    let mut after = variants.clone();
    after.retain(|a| a.label != new.label);
    after.push(new.clone());
    refresh_media(tx, job.scope_id, &job.media_id, &after, None).await?;
    enforce_limit(tx, job.scope_id, limit, (&job.media_id, &job.label), now).await?;
    Ok(CommitOutcome::Created(new))
}

/// Takes the job's scope row lock (first in the lock order: scope, job,
/// variant). The counters do not move after a failed attempt (pending,
/// storing and edge_only all count as live and not stored), but a list sync
/// of the same scope on another node reads the variant and writes its
/// status back under this lock: without it, a failure committed in between
/// would be overwritten and the variant left `storing` with no job.
async fn lock_scope_of_job(tx: &mut Tx, job: i64) -> Result<()> {
    let scope: Option<i64> = sqlx::query_scalar("SELECT scope_id FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(scope) = scope {
        lock_current_scope(tx, scope).await?;
    }
    Ok(())
}

/// Sets the job's variant after a failed attempt (the caller holds the
/// scope lock). Only a variant still in flight changes; one stored
/// meanwhile (by an upload) keeps its state.
async fn set_variant_after_job(
    tx: &mut Tx,
    job: i64,
    status: VariantStatus,
    error: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE variants SET status = $1, last_error = $2 WHERE status IN ('pending', 'storing') AND \
         (scope_id, media_id, label) = (SELECT scope_id, media_id, label FROM jobs WHERE id = $3)",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn retry_job(
    tx: &mut Tx,
    job: i64,
    owner: &str,
    error: &str,
    run_after: i64,
    count_attempt: bool,
) -> Result<()> {
    lock_scope_of_job(tx, job).await?;
    if !holds(tx, job, owner).await? {
        return Ok(());
    }
    set_variant_after_job(tx, job, VariantStatus::Pending, error).await?;
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + $1, run_after = $2, lease_owner = NULL, \
         lease_until = NULL, last_error = $3 WHERE id = $4",
    )
    .bind(i64::from(count_attempt))
    .bind(run_after)
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn fail_job(tx: &mut Tx, job: i64, owner: &str, error: &str, now: i64) -> Result<()> {
    lock_scope_of_job(tx, job).await?;
    if !holds(tx, job, owner).await? {
        return Ok(());
    }
    set_variant_after_job(tx, job, VariantStatus::EdgeOnly, error).await?;
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + 1, failed_at = $1, lease_owner = NULL, \
         lease_until = NULL, last_error = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn jobs(
    pool: &PgPool,
    scope: ScopeId,
    failed_only: bool,
    page: &PageRequest<JobKey>,
) -> Result<Page<JobRecord, JobKey>> {
    let rows = paging::jobs_query::<Postgres>(scope, failed_only, page)
        .build()
        .fetch_all(pool)
        .await?;
    paging::jobs_page(&rows, page.limit)
}

pub async fn next_job_due(pool: &PgPool) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT min(greatest(run_after, coalesce(lease_until, 0))) AS due FROM jobs \
         WHERE failed_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("due")?)
}
