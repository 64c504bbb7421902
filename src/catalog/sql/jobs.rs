//! The durable storing queue: one job per variant, leased to one worker on
//! any node at a time, so a node that dies mid-fetch hands its jobs to the
//! others once their leases lapse.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::SqlCatalog;
use super::dialect::{self, Db, SKIP_LOCKED, Tx};
use super::job_commit::{JointFailed, commit_batch};
use super::job_rows::{ensure_jobs, holds, job_target};
use super::rows::JOB_COLUMNS;
use super::scopes::lock_current_scope;
use super::variants::{ItemEdit, mark_storing};
use crate::catalog::generation;
use crate::catalog::paging;
use crate::catalog::{
    CommitOutcome, Job, JobCounts, JobDone, JobKey, JobQueue, JobRecord, Page, PageRequest,
    QueueOutcome, Result, ScopeId, new_blob_key,
};
use crate::model::observed::Origin;
use crate::model::{Label, MediaId, VariantStatus};

#[async_trait]
impl JobQueue for SqlCatalog {
    async fn queue_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<QueueOutcome> {
        in_tx!(self, "queue_variant", |tx| async move {
            if !lock_current_scope(tx, scope).await? {
                return Ok(QueueOutcome::Unknown);
            }
            let mut edit = ItemEdit::load(tx, scope, media.as_str()).await?;
            let Some(v) = edit.get(label.as_str()).cloned() else {
                return Ok(QueueOutcome::Unknown);
            };
            if v.status == VariantStatus::Stored {
                return Ok(QueueOutcome::Stored);
            }
            if v.origin == Origin::Upload {
                // An upload that never completed has nothing to fetch from.
                return Ok(QueueOutcome::Unknown);
            }
            // The job before the variant row: the lock order (mod.rs).
            ensure_jobs(tx, scope, &[(media.as_str(), label.as_str())], now).await?;
            if matches!(v.status, VariantStatus::EdgeOnly | VariantStatus::Removed) {
                let mut rec = v.clone();
                rec.status = VariantStatus::Pending;
                rec.generation = generation::after_revival(&v, rec.status);
                edit.put(rec);
                edit.save(tx, None, now).await?;
            }
            Ok(QueueOutcome::Queued)
        })
    }

    /// Where nodes share the database, the claim transaction touches only
    /// job rows, and marking the variants `storing` happens after it
    /// commits, one row per statement: holding job locks, or other variant
    /// rows, while waiting for a variant row could deadlock with a list
    /// sync that writes a variant's job and then the variant. With one
    /// writer, both share a transaction and one statement.
    async fn claim_jobs(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<Job>> {
        let jobs = in_tx!(self, "claim_jobs", |tx| async move {
            let jobs = claim(tx, owner, limit, lease_until, now).await?;
            if !dialect::SHARED {
                mark_storing(tx, &jobs).await?;
            }
            Ok(jobs)
        })?;
        if dialect::SHARED {
            let mut conn = self.db.writer().acquire().await?;
            for j in &jobs {
                mark_storing(&mut conn, std::slice::from_ref(j)).await?;
            }
        }
        Ok(jobs)
    }

    async fn extend_lease(&self, job_id: i64, owner: &str, lease_until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 \
             AND failed_at IS NULL",
        )
        .bind(lease_until)
        .bind(job_id)
        .bind(owner)
        .execute(self.db.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_jobs(&self, done: &[JobDone], now: i64) -> Result<Vec<Result<CommitOutcome>>> {
        // Items in one order in every batch, so that two nodes' batches
        // lock variant rows in the same order and cannot deadlock.
        let mut order: Vec<usize> = (0..done.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |d: &JobDone| (d.job.scope_id, d.job.media_id.clone());
            key(&done[a]).cmp(&key(&done[b]))
        });
        let order = &order;
        let joint = in_tx!(self, "commit_jobs", |tx| commit_batch(
            tx, done, order, true, now
        ));
        match joint {
            // Only a joint commit that failed in its statements runs again
            // (rolled back, so nothing happened): a failed COMMIT may have
            // committed after all, and is the caller's error as before.
            Err(e) if e.downcast_ref::<JointFailed>().is_some() => {
                tracing::warn!(error = %format!("{e:#}"),
                    "a joint commit of finished fetches failed; committing them one at a time");
                // Its own name in the catalog latency metric, so that a
                // joint path broken on one backend shows.
                in_tx!(self, "commit_jobs_one_at_a_time", |tx| commit_batch(
                    tx, done, order, false, now
                ))
            }
            other => other,
        }
    }

    async fn retry_job(
        &self,
        job_id: i64,
        owner: &str,
        error: &str,
        run_after: i64,
        count_attempt: bool,
    ) -> Result<()> {
        let outcome = JobEnd::Retry {
            run_after,
            count_attempt,
        };
        in_tx!(self, "retry_job", |tx| end_attempt(
            tx, job_id, owner, error, outcome
        ))
    }

    async fn fail_job(&self, job_id: i64, owner: &str, error: &str, now: i64) -> Result<()> {
        let end = JobEnd::Fail { now };
        in_tx!(self, "fail_job", |tx| end_attempt(
            tx, job_id, owner, error, end
        ))
    }

    async fn jobs(
        &self,
        scope: ScopeId,
        failed_only: bool,
        page: &PageRequest<JobKey>,
    ) -> Result<Page<JobRecord, JobKey>> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {JOB_COLUMNS} FROM jobs j WHERE j.scope_id = "
        ));
        qb.push_bind(scope)
            .push(" AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = j.scope_id)");
        // Spelled out rather than bound, so the partial index of failed
        // jobs applies.
        if failed_only {
            qb.push(" AND j.failed_at IS NOT NULL");
        }
        if let Some(after) = page.after {
            qb.push(" AND j.id > ").push_bind(after.id);
        }
        qb.push(" ORDER BY j.id LIMIT ")
            .push_bind(paging::fetch_bound(page.limit));
        let jobs = qb.build_query_as().fetch_all(self.db.reader()).await?;
        Ok(paging::finish(jobs, page.limit, |j: &JobRecord| JobKey {
            id: j.id,
        }))
    }

    async fn release_all_leases(&self) -> Result<u64> {
        if dialect::SHARED {
            // Other nodes may be running the jobs they hold: ending their
            // leases would run those jobs twice at once. A dead node's
            // leases lapse by themselves (`lease_until`), after which any
            // node's `claim_jobs` takes them over.
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
        )
        .execute(self.db.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn job_counts(&self, now: i64) -> Result<JobCounts> {
        let counts = sqlx::query_as(
            "SELECT \
               coalesce(sum(CASE WHEN failed_at IS NULL AND (lease_until IS NULL OR lease_until < $1) THEN 1 ELSE 0 END), 0) AS waiting, \
               coalesce(sum(CASE WHEN failed_at IS NULL AND lease_until >= $1 THEN 1 ELSE 0 END), 0) AS running, \
               coalesce(sum(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed \
             FROM jobs",
        )
        .bind(now)
        .fetch_one(self.db.reader())
        .await?;
        Ok(counts)
    }

    async fn next_job_due(&self) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT min({}(run_after, coalesce(lease_until, 0))) AS due FROM jobs \
             WHERE failed_at IS NULL",
            dialect::GREATEST
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.db.reader())
            .await?;
        Ok(row.try_get("due")?)
    }
}

/// Leases due jobs of current scopes to `owner`. An expired lease matches
/// `lease_until < now` again, so any node can take it over. A derived
/// variant (a thumbnail) is not claimed while its source is still on its
/// way: it is made once the full variant is stored, beside the other
/// fetches, rather than by a worker that takes it early only to wait.
async fn claim(
    tx: &mut Tx,
    owner: &str,
    limit: u64,
    lease_until: i64,
    now: i64,
) -> Result<Vec<Job>> {
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
           SELECT j.id FROM jobs j WHERE j.failed_at IS NULL AND j.run_after <= $3 \
             AND (j.lease_until IS NULL OR j.lease_until < $3) \
             AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = j.scope_id) \
             AND NOT EXISTS (SELECT 1 FROM variants d JOIN variants f ON f.scope_id = d.scope_id \
               AND f.media_id = d.media_id AND f.label = 'full' \
               WHERE d.scope_id = j.scope_id AND d.media_id = j.media_id AND d.label = j.label \
                 AND d.origin = 'derived' AND f.status IN ('pending', 'storing')) \
           ORDER BY j.run_after, j.id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id"
    );
    let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(&mut **tx)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut jobs = claimed(tx, &ids).await?;
    let mut qb =
        QueryBuilder::<Db>::new("INSERT INTO upload_intents (blob_key, scope_id, started_at) ");
    for j in &mut jobs {
        j.blob_key = new_blob_key(j.scope_id);
    }
    qb.push_values(&jobs, |mut row, j| {
        row.push_bind(&j.blob_key)
            .push_bind(j.scope_id)
            .push_bind(now);
    });
    qb.build().execute(&mut **tx).await?;
    Ok(jobs)
}

/// The claimed jobs, with what their workers need of variant and media.
async fn claimed(tx: &mut Tx, ids: &[i64]) -> Result<Vec<Job>> {
    let sql = format!(
        "SELECT j.id, j.scope_id, s.org_id, s.connection_id, j.media_id, j.label, j.attempts, \
           v.origin, v.upstream_url, v.upstream_size, v.content_type, m.list_hint \
         FROM jobs j JOIN scopes s ON s.id = j.scope_id \
           JOIN variants v ON v.scope_id = j.scope_id AND v.media_id = j.media_id AND v.label = j.label \
           LEFT JOIN media m ON m.scope_id = j.scope_id AND m.media_id = j.media_id \
         WHERE {} ORDER BY j.run_after, j.id",
        dialect::in_list("j.id", 1)
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(ids))
        .fetch_all(&mut **tx)
        .await?)
}

/// How a failed attempt ends.
#[derive(Clone, Copy)]
enum JobEnd {
    /// The job runs again at `run_after`; the variant returns to `pending`.
    Retry { run_after: i64, count_attempt: bool },
    /// The job stays listed as failed; the variant stays, `edge_only`.
    Fail { now: i64 },
}

/// Ends a failed attempt, if `owner` still holds the job. Takes the job's
/// scope row lock first (the lock order: scope, job, variant). The counters
/// do not move (pending, storing and edge_only all count as live and not
/// stored), but a list sync of the same scope on another node reads the
/// variant and writes its status back under this lock: without it, a
/// failure committed in between would be overwritten and the variant left
/// `storing` with no job.
async fn end_attempt(tx: &mut Tx, job: i64, owner: &str, error: &str, end: JobEnd) -> Result<()> {
    let Some((scope, media, label)) = job_target(tx, job).await? else {
        return Ok(());
    };
    lock_current_scope(tx, scope).await?;
    if !holds(tx, job, owner).await? {
        return Ok(());
    }
    // Only a variant still in flight changes; one stored meanwhile (by an
    // upload) keeps its state.
    let mut edit = ItemEdit::load(tx, scope, &media).await?;
    if let Some(v) = edit.get(&label)
        && matches!(v.status, VariantStatus::Pending | VariantStatus::Storing)
    {
        let mut v = v.clone();
        v.status = match end {
            JobEnd::Retry { .. } => VariantStatus::Pending,
            JobEnd::Fail { .. } => VariantStatus::EdgeOnly,
        };
        v.last_error = Some(error.to_owned());
        edit.put(v);
        edit.save(tx, None, crate::model::time::now_ms()).await?;
        if let JobEnd::Fail { now } = end {
            super::outbox::media_failed(tx, scope, &media, &label, error, now).await?;
        }
    }
    let (attempts, run_after, failed_at) = match end {
        JobEnd::Retry {
            run_after,
            count_attempt,
        } => (i64::from(count_attempt), Some(run_after), None),
        JobEnd::Fail { now } => (1, None, Some(now)),
    };
    sqlx::query(
        "UPDATE jobs SET attempts = attempts + $1, run_after = coalesce($2, run_after), \
         failed_at = $3, lease_owner = NULL, lease_until = NULL, last_error = $4 WHERE id = $5",
    )
    .bind(attempts)
    .bind(run_after)
    .bind(failed_at)
    .bind(error)
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
