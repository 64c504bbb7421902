//! Group commit for the storing pipeline. A variant's bytes become stored
//! in a catalog transaction; written one each, every variant pays a
//! database sync, one after the other on SQLite's single writer. Workers
//! hand their finished fetches to the pipeline's loop instead, which
//! commits everything waiting in one transaction: under load one sync
//! serves many variants, and a lone fetch waits for no one (no timer: a
//! batch is what queued while the previous commit ran). A variant counts as
//! stored only once its transaction committed, as before.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::VaultService;
use crate::catalog::{CommitOutcome, JobDone, OrgId, Result};
use crate::model::settings::StorageLimit;
use crate::model::time::now_ms;

/// Fetches in one transaction at most (a job hands over one, and at most
/// the fetch and thumbnail slots run at once, so in practice a batch is at
/// most twice the pipeline's concurrency).
const MAX_BATCH: usize = 256;

struct Write {
    done: JobDone,
    reply: oneshot::Sender<Result<CommitOutcome>>,
}

/// The workers' end: hands writes to the loop that commits them.
#[derive(Clone)]
pub struct GroupCommit {
    writes: mpsc::UnboundedSender<Write>,
}

/// The committing loop's end: the writes handed over and not yet written.
pub struct Pending {
    queue: mpsc::UnboundedReceiver<Write>,
    ready: Vec<Write>,
}

pub fn group_commit() -> (GroupCommit, Pending) {
    let (writes, queue) = mpsc::unbounded_channel();
    let ready = Vec::new();
    (GroupCommit { writes }, Pending { queue, ready })
}

impl GroupCommit {
    /// Hands over a finished fetch; the answer comes once it is committed
    /// ([`crate::catalog::JobQueue::commit_jobs`]).
    pub fn complete(&self, done: JobDone) -> Result<oneshot::Receiver<Result<CommitOutcome>>> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write { done, reply })
            .map_err(|_| anyhow::anyhow!("the storing pipeline has stopped"))?;
        Ok(answer)
    }
}

impl Pending {
    /// Waits until a fetch is handed over (cancel-safe: nothing received is
    /// lost when another branch of a `select!` wins).
    pub async fn arrived(&mut self) {
        if self.ready.is_empty() {
            self.queue.recv_many(&mut self.ready, MAX_BATCH).await;
        }
    }

    /// Commits every fetch waiting, in one transaction, and answers each.
    /// False when there was none.
    pub async fn commit(&mut self, service: &VaultService) -> bool {
        while self.ready.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(w) => self.ready.push(w),
                Err(_) => break,
            }
        }
        if self.ready.is_empty() {
            return false;
        }
        let (mut done, replies): (Vec<JobDone>, Vec<_>) =
            self.ready.drain(..).map(|w| (w.done, w.reply)).unzip();
        // Each connection's storage limit, read once per batch, just
        // before the commit: as fresh as a read per fetch, for a read per
        // connection.
        let mut limits: HashMap<(OrgId, &str), Option<StorageLimit>> = HashMap::new();
        let mut found = Vec::with_capacity(done.len());
        for d in &done {
            let key = (d.job.org_id, d.job.connection_id.as_str());
            let limit = match limits.get(&key) {
                Some(l) => *l,
                None => {
                    let l = service.storage_limit(&d.job).await;
                    limits.insert(key, l);
                    l
                }
            };
            found.push(limit);
        }
        for (d, limit) in done.iter_mut().zip(found) {
            d.limit = limit;
        }
        match service.catalog.commit_jobs(&done, now_ms()).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Nothing was written: every worker hears why.
                let why = format!("{e:#}");
                for reply in replies {
                    let _ = reply.send(Err(anyhow::anyhow!("{why}")));
                }
            }
        }
        true
    }
}
