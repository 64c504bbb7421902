//! The durable storing queue: one job per variant, claimed with a lease so
//! a worker that dies mid-fetch hands its job to another after the lease.

use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use super::eviction::{admits, enforce_limit};
use super::media::{
    abort_upload, bump_scope, queue_blob, refresh_media, scope_is_current, take_intent, variants_of,
};
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

/// Creates the variant's job, or revives it if it had failed for good.
/// Returns 1 when a job became runnable, 0 when one already was.
pub async fn ensure_job(
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    media: &str,
    label: &str,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO jobs (scope_id, media_id, label, run_after, created_at) VALUES (?, ?, ?, ?, ?) \
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
    tx: &mut Transaction<'static, Sqlite>,
    scope: ScopeId,
    media: &MediaId,
    label: &Label,
    now: i64,
) -> Result<QueueOutcome> {
    if !scope_is_current(tx, scope).await? {
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
    if matches!(v.status, VariantStatus::EdgeOnly | VariantStatus::Removed) {
        let mut rec = v.clone();
        rec.status = VariantStatus::Pending;
        rec.generation = generation::after_revival(v, rec.status);
        sqlx::query("UPDATE variants SET status = 'pending', generation = ? WHERE scope_id = ? AND media_id = ? AND label = ?")
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
    ensure_job(tx, scope, media.as_str(), label.as_str(), now).await?;
    Ok(QueueOutcome::Queued)
}

pub async fn claim_jobs(
    tx: &mut Transaction<'static, Sqlite>,
    owner: &str,
    limit: u64,
    lease_until: i64,
    now: i64,
) -> Result<Vec<Job>> {
    let ids: Vec<i64> = sqlx::query(
        "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id IN ( \
           SELECT j.id FROM jobs j WHERE j.failed_at IS NULL AND j.run_after <= ? \
             AND (j.lease_until IS NULL OR j.lease_until < ?) \
             AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = j.scope_id) \
           ORDER BY j.run_after, j.id LIMIT ?) RETURNING id",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<std::result::Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT j.id, j.scope_id, s.org_id, s.connection_id, j.media_id, j.label, j.attempts, \
           v.origin, v.upstream_url, v.upstream_size, v.content_type, m.list_hint \
         FROM jobs j JOIN scopes s ON s.id = j.scope_id \
           JOIN variants v ON v.scope_id = j.scope_id AND v.media_id = j.media_id AND v.label = j.label \
           LEFT JOIN media m ON m.scope_id = j.scope_id AND m.media_id = j.media_id \
         WHERE j.id IN (",
    );
    let mut sep = qb.separated(", ");
    for id in &ids {
        sep.push_bind(*id);
    }
    qb.push(") ORDER BY j.run_after, j.id");
    let mut jobs = Vec::with_capacity(ids.len());
    for r in qb.build().fetch_all(&mut **tx).await? {
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
            "UPDATE variants SET status = 'storing' WHERE scope_id = ? AND media_id = ? AND label = ? \
             AND status IN ('pending', 'storing')",
        )
        .bind(j.scope_id)
        .bind(&j.media_id)
        .bind(&j.label)
        .execute(&mut **tx)
        .await?;
    }
    Ok(jobs)
}

pub async fn extend_lease(pool: &SqlitePool, job: i64, owner: &str, until: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND failed_at IS NULL",
    )
    .bind(until)
    .bind(job)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn holds(tx: &mut Transaction<'static, Sqlite>, job: i64, owner: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM jobs WHERE id = ? AND lease_owner = ? AND failed_at IS NULL")
            .bind(job)
            .bind(owner)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

pub async fn complete_job(
    tx: &mut Transaction<'static, Sqlite>,
    job: &Job,
    owner: &str,
    blob: &FetchedBlob,
    limit: Option<StorageLimit>,
    now: i64,
) -> Result<CommitOutcome> {
    if !scope_is_current(tx, job.scope_id).await? {
        abort_upload(tx, &blob.blob_key, now).await?;
        return Ok(CommitOutcome::ScopeRetired);
    }
    let variants = variants_of(tx, job.scope_id, &job.media_id).await?;
    let old = variants.iter().find(|v| v.label == job.label);
    let (Some(old), true) = (old, holds(tx, job.id, owner).await?) else {
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
    sqlx::query(
        "UPDATE variants SET status = 'stored', size_bytes = ?, content_type = ?, stored_at = ?, \
         blob_key = ?, checksum = ?, last_error = NULL WHERE scope_id = ? AND media_id = ? AND label = ?",
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
    sqlx::query("DELETE FROM jobs WHERE id = ?")
        .bind(job.id)
        .execute(&mut **tx)
        .await?;
    bump_scope(tx, job.scope_id, counter_delta(Some(old), Some(&new))).await?;
    let mut after = variants.clone();
    after.retain(|a| a.label != new.label);
    after.push(new.clone());
    refresh_media(tx, job.scope_id, &job.media_id, &after, None).await?;
    enforce_limit(tx, job.scope_id, limit, (&job.media_id, &job.label), now).await?;
    Ok(CommitOutcome::Created(new))
}

async fn set_variant_after_job(
    tx: &mut Transaction<'static, Sqlite>,
    job: i64,
    status: VariantStatus,
    error: &str,
) -> Result<()> {
    // Only a variant still in flight changes; one stored meanwhile (by an
    // upload) keeps its state.
    sqlx::query(
        "UPDATE variants SET status = ?, last_error = ? WHERE status IN ('pending', 'storing') AND \
         (scope_id, media_id, label) = (SELECT scope_id, media_id, label FROM jobs WHERE id = ?)",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn retry_job(
    tx: &mut Transaction<'static, Sqlite>,
    job: i64,
    owner: &str,
    error: &str,
    run_after: i64,
    count_attempt: bool,
) -> Result<()> {
    if !holds(tx, job, owner).await? {
        return Ok(());
    }
    set_variant_after_job(tx, job, VariantStatus::Pending, error).await?;
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + ?, run_after = ?, lease_owner = NULL, lease_until = NULL, \
         last_error = ? WHERE id = ?",
    )
    .bind(i64::from(count_attempt))
    .bind(run_after)
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn fail_job(
    tx: &mut Transaction<'static, Sqlite>,
    job: i64,
    owner: &str,
    error: &str,
    now: i64,
) -> Result<()> {
    if !holds(tx, job, owner).await? {
        return Ok(());
    }
    set_variant_after_job(tx, job, VariantStatus::EdgeOnly, error).await?;
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + 1, failed_at = ?, lease_owner = NULL, lease_until = NULL, \
         last_error = ? WHERE id = ?",
    )
    .bind(now)
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn jobs(
    pool: &SqlitePool,
    scope: ScopeId,
    failed_only: bool,
    page: &PageRequest<JobKey>,
) -> Result<Page<JobRecord, JobKey>> {
    let rows = paging::jobs_query::<Sqlite>(scope, failed_only, page)
        .build()
        .fetch_all(pool)
        .await?;
    paging::jobs_page(&rows, page.limit)
}

pub async fn next_job_due(pool: &SqlitePool) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT min(max(run_after, coalesce(lease_until, 0))) AS due FROM jobs WHERE failed_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("due")?)
}

pub async fn release_all_leases(pool: &SqlitePool) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
