//! The storing pipeline's loops: the one place that writes for the
//! pipeline. One commits the fetches the workers finished (group commit),
//! batch after batch; beside it, the other starts claimed jobs in the free
//! slots and claims more before the backlog of claimed jobs runs dry. Claiming ahead means a slot that frees
//! starts its next job at once, rather than after a claim transaction, and
//! one claim serves several slots. Derived variants (thumbnails) have slots
//! of their own, so making them runs beside the fetches rather than taking
//! their turns.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::{Catalog, Job};
use crate::model::observed::Origin;
use crate::model::time::now_ms;

use super::VaultService;
use super::group_commit::{GroupCommit, Pending, group_commit};
use super::pipeline::PipelineConfig;
use super::signal::Signal;

/// What a storing job's task holds.
pub(super) struct Worker {
    pub cfg: PipelineConfig,
    /// The claim's token: the job is this worker's while it holds it.
    pub owner: String,
    pub stop: CancellationToken,
    pub commits: GroupCommit,
    /// Woken when the job gives its slot back.
    pub freed: Signal,
    /// Permits for finished fetches waiting to be settled (synced) and
    /// committed.
    pub settling: Arc<Semaphore>,
}

/// Keeps a claimed job's lease alive from its claim until its outcome is
/// written (it may wait in the backlog first); dropping it stops that.
pub(super) struct Lease(JoinHandle<()>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn keep_leased(catalog: Arc<dyn Catalog>, owner: String, lease: Duration, id: i64) -> Lease {
    Lease(tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = now_ms() + lease.as_millis() as i64;
            match catalog.extend_lease(id, &owner, until).await {
                Ok(true) => {}
                // Lost: the job is another claim's now; its outcome will be
                // refused when this one tries to record it.
                Ok(false) => return,
                // A passing catalog error: try again next beat.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot extend a job lease"),
            }
        }
    }))
}

struct Claimed {
    job: Job,
    owner: String,
    lease: Lease,
}

/// Claims and runs storing jobs until `stop` is cancelled, then waits for
/// the jobs under way: a job cut by the stop is given back at once, without
/// spending one of its tries, so that another node (or the next start)
/// takes it without waiting for its lease to run out. So are jobs claimed
/// and not started.
pub async fn run_pipeline(service: VaultService, cfg: PipelineConfig, stop: CancellationToken) {
    let (commits, pending) = group_commit();
    // Commits run beside the loop that starts jobs: a slot freed while a
    // batch commits starts its next job at once, not after the commit.
    let all_done = CancellationToken::new();
    let committing = commit_loop(&service, pending, &all_done);
    let starting = async {
        start_loop(&service, &cfg, &stop, &commits).await;
        all_done.cancel();
    };
    tokio::join!(committing, starting);
}

/// Commits what the workers hand over, batch after batch, until `done`
/// (every job has ended, so every worker has had its answer).
async fn commit_loop(service: &VaultService, mut pending: Pending, done: &CancellationToken) {
    loop {
        tokio::select! {
            _ = pending.arrived() => {}
            _ = done.cancelled() => return,
        }
        pending.commit(service).await;
    }
}

/// Starts claimed jobs in free slots and claims ahead, until `stop` and
/// the end of every job under way.
async fn start_loop(
    service: &VaultService,
    cfg: &PipelineConfig,
    stop: &CancellationToken,
    commits: &GroupCommit,
) {
    let node = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let concurrency = cfg.concurrency.max(1);
    let fetches = Arc::new(Semaphore::new(concurrency));
    let derivations = Arc::new(Semaphore::new(concurrency));
    let slots_of = |job: &Job| match job.origin {
        Origin::Derived => derivations.clone(),
        _ => fetches.clone(),
    };
    // Enough for every slot's write of the last batch and the next ones
    // while a sync or a commit runs; few enough that a kill cuts at most
    // this many finished fetches (besides those in flight) before their
    // commit.
    let settling = Arc::new(Semaphore::new(4 * concurrency));
    let freed = Signal::default();
    let running = TaskTracker::new();
    let mut backlog: VecDeque<Claimed> = VecDeque::new();
    loop {
        if stop.is_cancelled() {
            for c in backlog.drain(..) {
                // Nothing was written under its key: the intent just ends.
                let _ = service
                    .catalog
                    .abort_upload(&c.job.blob_key, now_ms())
                    .await;
                service.give_back(&c.job, &c.owner).await;
            }
            running.close();
            if running.is_empty() {
                break;
            }
        }
        let mut started = false;
        let mut i = 0;
        while i < backlog.len() {
            let Ok(slot) = slots_of(&backlog[i].job).try_acquire_owned() else {
                i += 1;
                continue;
            };
            let c = backlog.remove(i).expect("in range");
            let worker = Worker {
                cfg: cfg.clone(),
                owner: c.owner,
                stop: stop.clone(),
                commits: commits.clone(),
                freed: freed.clone(),
                settling: settling.clone(),
            };
            let svc = service.clone();
            running.spawn(async move { svc.run_job(c.job, &worker, slot, c.lease).await });
            started = true;
        }
        // Claim when half the backlog is gone: enough for every free slot
        // and a backlog of twice the slots, so that one claim transaction
        // serves about as many jobs as there are slots.
        let mut claimed = false;
        if !stop.is_cancelled() && backlog.len() <= concurrency {
            let free = fetches.available_permits() + derivations.available_permits();
            let want = (2 * concurrency + free).saturating_sub(backlog.len());
            // Each claim gets its own token: a job ID can be reused once its
            // job is deleted, and a worker still busy with the old job must
            // not be able to act on the new one.
            let owner = format!("{node}/{}", uuid::Uuid::new_v4().simple());
            let now = now_ms();
            let lease_until = now + cfg.lease.as_millis() as i64;
            match service
                .catalog
                .claim_jobs(&owner, want as u64, lease_until, now)
                .await
            {
                Ok(jobs) => {
                    claimed = !jobs.is_empty();
                    backlog.extend(jobs.into_iter().map(|job| Claimed {
                        lease: keep_leased(
                            service.catalog.clone(),
                            owner.clone(),
                            cfg.lease,
                            job.id,
                        ),
                        job,
                        owner: owner.clone(),
                    }));
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot claim storing jobs"),
            }
        }
        if started || claimed {
            continue;
        }
        let wait = if backlog.is_empty() && !stop.is_cancelled() {
            match service.catalog.next_job_due().await {
                Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(20, 1000) as u64),
                _ => Duration::from_secs(1),
            }
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = freed.wait() => {}
            _ = service.pipeline_signal.wait() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled(), if !stop.is_cancelled() => {}
            _ = running.wait(), if stop.is_cancelled() => {}
        }
    }
}
