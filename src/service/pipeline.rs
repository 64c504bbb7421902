//! The storing pipeline: workers claim storing jobs from the catalog (with
//! a lease, so a dead worker's job is taken over), fetch the bytes from the
//! upstream (or derive them), stream them to the blob store with a checksum,
//! and commit. Failures retry with capped exponential backoff; after the
//! retry budget the variant stays visible, `edge_only`, with its error.

use std::time::Duration;

use futures::TryStreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::blobs::PutError;
use crate::catalog::{CommitOutcome, FetchedBlob, Job, JobDone};
use crate::metrics::Series;
use crate::metrics::names::JOB_OUTCOMES;
use crate::model::time::now_ms;
use crate::model::{ConnectionId, Label, MediaType, VariantStatus};
use crate::upstream::FetchError;

use super::background::cut_on_stop;
use super::group_commit::GroupCommit;
pub use super::storing_loop::run_pipeline;
use super::storing_loop::{Lease, Worker};
use super::thumbnail::{THUMB_MAX_SIDE, make_thumbnail};
use super::{ConnectionContext, ServiceError, VaultService};

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Upstream fetches running at once on this node; as many derived
    /// variants (thumbnails) may be made beside them.
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

/// How a failed write of a job's blob ends the attempt.
fn put_error(e: PutError) -> JobError {
    match e {
        PutError::TooLarge { limit } => {
            JobError::Fail(format!("larger than the limit of {limit} bytes"))
        }
        PutError::Body(e) => retry(format!("the body was cut short: {e}")),
        PutError::NoSpace => {
            no_room("no room left in the blob store above --min-free-bytes".into())
        }
        PutError::Store(e) => retry(format!("blob store: {e:#}")),
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

impl VaultService {
    /// Wakes the storing workers (new jobs were queued).
    pub fn store_soon(&self) {
        self.pipeline_signal.wake();
    }

    /// Ends a claim on `job` without an attempt, so it runs again at once.
    pub(super) async fn give_back(&self, job: &Job, owner: &str) {
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

    /// Runs a claimed job in one of the pipeline's slots; `lease` keeps the
    /// claim alive until the outcome is written.
    pub(super) async fn run_job(
        &self,
        job: Job,
        w: &Worker,
        slot: OwnedSemaphorePermit,
        lease: Lease,
    ) {
        let (owner, cfg, stop, commits) = (w.owner.as_str(), &w.cfg, &w.stop, &w.commits);
        let result = match job.origin {
            crate::model::observed::Origin::Upstream => self.fetch_job(&job, cfg, stop).await,
            crate::model::observed::Origin::Derived => self.derive_job(&job, stop).await,
            crate::model::observed::Origin::Upload => Err(JobError::Fail(
                "an uploaded variant has no source to fetch from".into(),
            )),
        };
        // The slots bound fetches, not syncs or commits: the next job
        // starts while this one's bytes are made durable and its outcome is
        // written. Finished fetches waiting for their sync or their group
        // commit are bounded apart (each holds an open file, and a blocking
        // thread while it syncs; and a kill loses the fetches not yet
        // committed, to be fetched again), so a slow disk or a slow commit
        // holds fetch slots back.
        let settling = match &result {
            Ok(_) => w.settling.clone().acquire_owned().await.ok(),
            Err(_) => None,
        };
        drop(slot);
        w.freed.wake();
        let result = match result {
            Ok(blob) => self.settle(blob).await,
            Err(e) => Err(e),
        };
        self.record_outcome(&job, owner, cfg, stop, commits, result)
            .await;
        drop(settling);
        drop(lease);
    }

    /// Makes a written blob durable and visible under its key: only then
    /// may its variant be committed as stored (invariant 3).
    async fn settle(&self, blob: FetchedBlob) -> Result<FetchedBlob, JobError> {
        match self.blobs.settle(&blob.blob_key).await {
            Ok(()) => Ok(blob),
            Err(e) => Err(put_error(e)),
        }
    }

    /// Writes how a job's attempt ended, while its lease is still kept.
    async fn record_outcome(
        &self,
        job: &Job,
        owner: &str,
        cfg: &PipelineConfig,
        stop: &CancellationToken,
        commits: &GroupCommit,
        result: Result<FetchedBlob, JobError>,
    ) {
        if result.is_err() {
            // Whatever was written under the claim's key (often nothing)
            // goes to reclaim: the one place a failed attempt's intent ends.
            match self.catalog.abort_upload(&job.blob_key, now_ms()).await {
                Ok(()) => self.reclaim_soon(),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot end a job's upload intent")
                }
            }
        }
        if stop.is_cancelled() && matches!(result, Err(JobError::Retry { .. })) {
            // Most likely the stop's doing (a cut body): not the variant's
            // fault, so no try is spent.
            self.give_back(job, owner).await;
            return;
        }
        let now = now_ms();
        let done = match result {
            Ok(blob) => match self.commit(commits, job, owner, &blob).await {
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

    /// Hands the finished fetch to the group commit and waits for its turn.
    async fn commit(
        &self,
        commits: &GroupCommit,
        job: &Job,
        owner: &str,
        blob: &FetchedBlob,
    ) -> crate::catalog::Result<CommitOutcome> {
        // The group commit reads the connection's storage limit.
        let done = JobDone {
            job: job.clone(),
            owner: owner.to_owned(),
            blob: blob.clone(),
            limit: None,
        };
        commits.complete(done)?.await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the storing pipeline stopped before the commit"
            ))
        })
    }

    /// Writes the bytes of `produce` under the job's key, which its claim
    /// recorded as an upload intent: a crash mid-write leaves nothing
    /// unaccounted.
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
        // The claim recorded the key as an upload intent.
        let key = job.blob_key.clone();
        // Settled by run_job, once the fetch slot is given back.
        let put = self
            .blobs
            .put_unsettled(&key, body, self.config.max_upload_bytes)
            .await;
        match put {
            Ok(out) => Ok((key, out)),
            // The outcome aborts the claim's intent, whatever failed.
            Err(e) => Err(put_error(e)),
        }
    }

    /// The storage limit of a job's connection, as its settings are now
    /// (none if the connection is gone: its commit is refused anyway).
    pub(super) async fn storage_limit(
        &self,
        job: &Job,
    ) -> Option<crate::model::settings::StorageLimit> {
        self.job_context(job)
            .await
            .and_then(|ctx| ctx.settings.storage_limit())
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
            // Not settled, so its file goes now (reclaim, which the outcome
            // queues, may run in another process that cannot see it).
            if let Err(e) = self.blobs.delete(&key).await {
                tracing::warn!(error = %format!("{e:#}"), "cannot drop an unsettled write");
            }
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
