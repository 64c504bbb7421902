//! The storing pipeline: workers claim storing jobs from the catalog (with
//! a lease, so a dead worker's job is taken over), fetch the bytes from the
//! upstream (or derive them), stream them to the blob store with a checksum,
//! and commit. Failures retry with capped exponential backoff; after the
//! retry budget the variant stays visible, `edge_only`, with its error.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blobs::PutError;
use crate::catalog::{CommitOutcome, FetchedBlob, Job};
use crate::metrics::Series;
use crate::metrics::names::JOB_OUTCOMES;
use crate::model::time::now_ms;
use crate::model::{ConnectionId, Label, MediaType, VariantStatus};
use crate::upstream::FetchError;

use super::background::cut_on_stop;
use super::thumbnail::{THUMB_MAX_SIDE, make_thumbnail};
use super::{ConnectionContext, ServiceError, VaultService};

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Jobs running at once on this node.
    pub concurrency: usize,
    /// How long a claimed job stays this worker's without a heartbeat.
    pub lease: Duration,
    /// Failed attempts before a variant is given up.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            lease: Duration::from_secs(60),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

impl PipelineConfig {
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.min(16);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_cap)
    }
}

enum JobError {
    Retry {
        error: String,
        after: Option<Duration>,
        count: bool,
    },
    Fail(String),
}

fn retry(error: impl Into<String>) -> JobError {
    JobError::Retry {
        error: error.into(),
        after: None,
        count: true,
    }
}

/// The blob store has no room above its floor: wait for space (reclaim,
/// retention) without spending a try.
fn no_room(error: String) -> JobError {
    JobError::Retry {
        error,
        after: Some(Duration::from_secs(30)),
        count: false,
    }
}

/// How storing attempts ended (metrics).
static STORED: Series = Series::new(JOB_OUTCOMES, "outcome", "stored");
static RETRY: Series = Series::new(JOB_OUTCOMES, "outcome", "retry");
static FAILED: Series = Series::new(JOB_OUTCOMES, "outcome", "failed");
static GIVEN_BACK: Series = Series::new(JOB_OUTCOMES, "outcome", "given_back");
static OTHER: Series = Series::new(JOB_OUTCOMES, "outcome", "other");

/// Largest full image read into memory to make a thumbnail.
const MAX_THUMB_SOURCE: u64 = 64 * 1024 * 1024;

/// Claims and runs storing jobs until `stop` is cancelled, then waits for
/// the jobs under way: a job cut by the stop is given back at once, without
/// spending one of its tries, so that another node (or the next start)
/// takes it without waiting for its lease to run out.
pub async fn run_pipeline(service: VaultService, cfg: PipelineConfig, stop: CancellationToken) {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let running = TaskTracker::new();
    'claiming: while !stop.is_cancelled() {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let want = 1 + slots.available_permits() as u64;
        let now = now_ms();
        let lease_until = now + cfg.lease.as_millis() as i64;
        // Each claim gets its own token: a job ID can be reused once its job
        // is deleted, and a worker still busy with the old job must not be
        // able to act on the new one.
        let claim = format!("{owner}/{}", uuid::Uuid::new_v4().simple());
        let jobs = match service
            .catalog
            .claim_jobs(&claim, want, lease_until, now)
            .await
        {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot claim storing jobs");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            drop(first);
            let wait = match service.catalog.next_job_due().await {
                Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(20, 1000) as u64),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = service.pipeline_signal.wait() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
            continue;
        }
        let mut permit = Some(first);
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            let slot = match permit.take() {
                Some(p) => p,
                None => tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'claiming,
                    },
                    // Claimed but not started: given back untouched.
                    _ = stop.cancelled() => {
                        for job in std::iter::once(job).chain(jobs) {
                            service.give_back(&job, &claim).await;
                        }
                        break 'claiming;
                    }
                },
            };
            let (svc, cfg, owner, stop) =
                (service.clone(), cfg.clone(), claim.clone(), stop.clone());
            running.spawn(async move {
                svc.run_job(job, &owner, &cfg, &stop).await;
                drop(slot);
            });
        }
    }
    running.close();
    running.wait().await;
}

impl VaultService {
    /// Wakes the storing workers (new jobs were queued).
    pub fn store_soon(&self) {
        self.pipeline_signal.wake();
    }

    /// Ends a claim on `job` without an attempt, so it runs again at once.
    async fn give_back(&self, job: &Job, owner: &str) {
        let error = "interrupted by a server stop; storing resumes";
        GIVEN_BACK.increment(1);
        if let Err(e) = self
            .catalog
            .retry_job(job.id, owner, error, now_ms(), false)
            .await
        {
            // Its lease runs out instead.
            tracing::warn!(error = %format!("{e:#}"), job = job.id, "cannot give back a job");
        }
    }

    async fn run_job(&self, job: Job, owner: &str, cfg: &PipelineConfig, stop: &CancellationToken) {
        let heartbeat = {
            let (catalog, owner, lease, id) =
                (self.catalog.clone(), owner.to_owned(), cfg.lease, job.id);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let until = now_ms() + lease.as_millis() as i64;
                    match catalog.extend_lease(id, &owner, until).await {
                        Ok(true) => {}
                        // Lost: the job is another claim's now; its outcome
                        // will be refused when this one tries to record it.
                        Ok(false) => return,
                        // A passing catalog error: try again next beat.
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "cannot extend a job lease")
                        }
                    }
                }
            })
        };
        let result = match job.origin {
            crate::model::observed::Origin::Upstream => self.fetch_job(&job, cfg, stop).await,
            crate::model::observed::Origin::Derived => self.derive_job(&job, stop).await,
            crate::model::observed::Origin::Upload => Err(JobError::Fail(
                "an uploaded variant has no source to fetch from".into(),
            )),
        };
        heartbeat.abort();
        if stop.is_cancelled() && matches!(result, Err(JobError::Retry { .. })) {
            // Most likely the stop's doing (a cut body): not the variant's
            // fault, so no try is spent.
            self.give_back(&job, owner).await;
            return;
        }
        let now = now_ms();
        let limit = match &result {
            Ok(_) => self
                .job_context(&job)
                .await
                .and_then(|ctx| ctx.settings.storage_limit()),
            Err(_) => None,
        };
        let done = match result {
            Ok(blob) => match self
                .catalog
                .complete_job(&job, owner, &blob, limit, now)
                .await
            {
                Ok(CommitOutcome::Created(_) | CommitOutcome::Replaced(_)) => {
                    STORED.increment(1);
                    tracing::debug!(media = %job.media_id, label = %job.label, size = blob.size_bytes, "stored");
                    if job.label == "full" {
                        // A derived thumbnail may be waiting for this.
                        self.pipeline_signal.wake();
                    }
                    Ok(())
                }
                Ok(CommitOutcome::OverLimit) => {
                    OTHER.increment(1);
                    self.reclaim_soon();
                    let error = "the connection's storage limit is reached (block_new)";
                    self.catalog.fail_job(job.id, owner, error, now).await
                }
                Ok(_) => {
                    OTHER.increment(1);
                    self.reclaim_soon();
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(JobError::Retry {
                error,
                after,
                count,
            }) => {
                if count && job.attempts + 1 >= cfg.max_attempts {
                    FAILED.increment(1);
                    tracing::warn!(media = %job.media_id, label = %job.label, %error, "giving up after the retry budget");
                    self.catalog.fail_job(job.id, owner, &error, now).await
                } else {
                    RETRY.increment(1);
                    let wait = after.unwrap_or_else(|| cfg.backoff(job.attempts));
                    tracing::debug!(media = %job.media_id, label = %job.label, %error, ?wait, "will retry");
                    self.catalog
                        .retry_job(job.id, owner, &error, now + wait.as_millis() as i64, count)
                        .await
                }
            }
            Err(JobError::Fail(error)) => {
                FAILED.increment(1);
                tracing::warn!(media = %job.media_id, label = %job.label, %error, "storing failed");
                self.catalog.fail_job(job.id, owner, &error, now).await
            }
        };
        if let Err(e) = done {
            // The lease runs out and another attempt follows.
            tracing::error!(error = %format!("{e:#}"), job = job.id, "cannot record a job's outcome");
        }
    }

    /// Writes the bytes of `produce` under a fresh key recorded as an
    /// upload intent, so that a crash mid-write leaves nothing unaccounted.
    /// `expected` is the length announced, if any: it is reserved against
    /// the free-space floor up front (else the bytes are, as they arrive).
    async fn write_job_blob(
        &self,
        job: &Job,
        body: crate::blobs::ByteStream,
        expected: Option<u64>,
        stop: &CancellationToken,
    ) -> Result<(String, crate::blobs::PutOutcome), JobError> {
        // Below the free-space floor, wait (without spending a try) rather
        // than fill the disk.
        let reservation = match self.space.reserve(expected.unwrap_or(0)).await {
            Ok(r) => r,
            Err(ServiceError::InsufficientStorage(e)) => return Err(no_room(e)),
            Err(e) => return Err(retry(format!("blob store: {e}"))),
        };
        let body = reservation.meter(cut_on_stop(body, stop.clone()));
        let key = format!("{}/{}", job.scope_id, uuid::Uuid::new_v4().simple());
        self.catalog
            .begin_upload(job.scope_id, &key, now_ms())
            .await
            .map_err(|e| retry(format!("catalog: {e:#}")))?;
        let put = self
            .blobs
            .put(&key, body, self.config.max_upload_bytes)
            .await;
        match put {
            Ok(out) => Ok((key, out)),
            Err(e) => {
                let _ = self.catalog.abort_upload(&key, now_ms()).await;
                self.reclaim_soon();
                Err(match e {
                    PutError::TooLarge { limit } => {
                        JobError::Fail(format!("larger than the limit of {limit} bytes"))
                    }
                    PutError::Body(e) => retry(format!("the body was cut short: {e}")),
                    PutError::NoSpace => {
                        no_room("no room left in the blob store above --min-free-bytes".into())
                    }
                    PutError::Store(e) => retry(format!("blob store: {e:#}")),
                })
            }
        }
    }

    async fn job_context(&self, job: &Job) -> Option<ConnectionContext> {
        let id = ConnectionId::parse(&job.connection_id).ok()?;
        let principal = super::Principal {
            org_id: job.org_id,
            key_id: String::new(),
        };
        self.connection(&principal, id.as_str()).await.ok()
    }

    async fn fetch_job(
        &self,
        job: &Job,
        cfg: &PipelineConfig,
        stop: &CancellationToken,
    ) -> Result<FetchedBlob, JobError> {
        let upstream = self.upstream().map_err(|e| retry(e.to_string()))?.clone();
        let url = job
            .upstream_url
            .clone()
            .ok_or_else(|| JobError::Fail("no upstream URL is known".into()))?;
        // Before the response head nothing but whole catalog transactions
        // (a URL refresh) is written: a stop may drop it.
        let head = async {
            match upstream.fetch(&url).await {
                Err(FetchError::Expired) => {
                    // The signed URL expired: list again for a fresh one.
                    let fresh = self.fresh_url(job).await?;
                    Ok(upstream.fetch(&fresh).await)
                }
                other => Ok(other),
            }
        };
        let resp = tokio::select! {
            r = head => r?,
            _ = stop.cancelled() => return Err(retry("the server is stopping")),
        };
        let resp = resp.map_err(|e| match e {
            FetchError::Gone => JobError::Fail(e.to_string()),
            FetchError::RateLimited(after) => JobError::Retry {
                error: e.to_string(),
                after: Some(after.unwrap_or_else(|| cfg.backoff(job.attempts))),
                count: true,
            },
            FetchError::Expired | FetchError::Transient(_) => retry(e.to_string()),
        })?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| MediaType::from_content_type(v).is_some())
            .unwrap_or_else(|| job.content_type.clone());
        let declared = resp.content_length();
        if let (Some(d), Some(s)) = (declared, job.upstream_size)
            && d != s
        {
            return Err(retry(format!(
                "the upstream announced {d} bytes where its listing said {s}"
            )));
        }
        let body = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
        let expected = declared.or(job.upstream_size);
        let (key, out) = self.write_job_blob(job, body, expected, stop).await?;
        if let Some(want) = expected.filter(|w| *w != out.size_bytes) {
            let _ = self.catalog.abort_upload(&key, now_ms()).await;
            self.reclaim_soon();
            return Err(retry(format!(
                "received {} bytes where {want} were announced",
                out.size_bytes
            )));
        }
        Ok(FetchedBlob {
            blob_key: key,
            content_type,
            size_bytes: out.size_bytes,
            checksum: out.sha256,
        })
    }

    async fn fresh_url(&self, job: &Job) -> Result<String, JobError> {
        let list = job
            .list_hint
            .clone()
            .ok_or_else(|| retry("the rendition URL expired and no list is known to refresh it"))?;
        let ctx = self
            .job_context(job)
            .await
            .ok_or_else(|| JobError::Fail("the connection is gone".into()))?;
        self.refresh_urls(&ctx, &list).await.map_err(|e| match e {
            ServiceError::UpstreamSession { message, .. } => retry(message),
            other => retry(format!("cannot refresh the expired URL: {other}")),
        })?;
        let media = Self::media_id_of(&job.media_id).map_err(|e| JobError::Fail(e.to_string()))?;
        let label = Label::parse(&job.label).map_err(JobError::Fail)?;
        let v = self
            .catalog
            .current_variant(job.scope_id, &media, &label)
            .await
            .map_err(|e| retry(format!("catalog: {e:#}")))?
            .ok_or_else(|| JobError::Fail("the variant is gone".into()))?;
        match v.upstream_url {
            Some(u) if Some(&u) != job.upstream_url.as_ref() => Ok(u),
            _ => Err(retry("the upstream still lists an expired URL")),
        }
    }

    async fn derive_job(
        &self,
        job: &Job,
        stop: &CancellationToken,
    ) -> Result<FetchedBlob, JobError> {
        let media = Self::media_id_of(&job.media_id).map_err(|e| JobError::Fail(e.to_string()))?;
        let full_label = Label::parse("full").map_err(JobError::Fail)?;
        let full = self
            .catalog
            .current_variant(job.scope_id, &media, &full_label)
            .await
            .map_err(|e| retry(format!("catalog: {e:#}")))?
            .ok_or_else(|| {
                JobError::Fail("there is no full variant to make a thumbnail from".into())
            })?;
        match full.status {
            VariantStatus::Stored => {}
            VariantStatus::Pending | VariantStatus::Storing => {
                // Wait for the full variant without spending a try.
                return Err(JobError::Retry {
                    error: "waiting for the full variant".into(),
                    after: Some(Duration::from_millis(500)),
                    count: false,
                });
            }
            _ => return Err(JobError::Fail("the full variant is not stored".into())),
        }
        if full.size_bytes > MAX_THUMB_SOURCE {
            return Err(JobError::Fail(
                "the full image is too large to thumbnail".into(),
            ));
        }
        let key = full
            .blob_key
            .ok_or_else(|| JobError::Fail("the full variant has no bytes".into()))?;
        let read = self
            .blobs
            .get(&key, None)
            .await
            .map_err(|e| retry(format!("blob store: {e:#}")))?
            .ok_or_else(|| retry("the full variant's bytes are missing"))?;
        let source: Vec<u8> = read
            .body
            .try_fold(
                Vec::with_capacity(read.len as usize),
                |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                },
            )
            .await
            .map_err(|e| retry(format!("cannot read the full variant: {e}")))?;
        let jpeg = tokio::task::spawn_blocking(move || make_thumbnail(&source, THUMB_MAX_SIDE))
            .await
            .map_err(|e| retry(format!("thumbnail task failed: {e}")))?
            .map_err(JobError::Fail)?;
        let len = jpeg.len() as u64;
        let body = Box::pin(futures::stream::once(async move {
            Ok(bytes::Bytes::from(jpeg))
        }));
        let (key, out) = self.write_job_blob(job, body, Some(len), stop).await?;
        Ok(FetchedBlob {
            blob_key: key,
            content_type: "image/jpeg".into(),
            size_bytes: out.size_bytes,
            checksum: out.sha256,
        })
    }
}
