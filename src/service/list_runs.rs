//! A list add or sync, read from the upstream and applied as it is read
//! (issue 13: a big first sync is not a wall). The listing is read ahead
//! into a bounded queue while the catalog applies what has arrived, several
//! pages to a transaction when it falls behind; each transaction wakes the
//! storing pipeline, so fetching starts while later pages are still being
//! read. A sync's removals need the whole listing, so the catalog does them
//! once, after the last page. Progress of the runs in flight on this server
//! shows in `status`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::{ListOutcome, ScopeId};
use crate::model::admission::admit;
use crate::model::list_plan::ListMode;
use crate::model::observed::ObservedMedia;
use crate::model::time::{format_iso_ms, now_ms};
use crate::model::views::{ConnectionStatusView, ListRunView};

use super::{ConnectionContext, Principal, ServiceError, ServiceResult, VaultService};

/// The list runs in flight on this server.
#[derive(Default)]
pub struct ListRuns {
    next_id: AtomicU64,
    running: Mutex<BTreeMap<u64, (ScopeId, ListRunView)>>,
}

/// A run's entry in [`ListRuns`], gone when the run ends however it ends
/// (answered, failed, or dropped with a request the client gave up on).
struct Entry<'a> {
    runs: &'a ListRuns,
    id: u64,
}

impl ListRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (ScopeId, ListRunView)>> {
        // Each update leaves the map whole: a poisoned lock is still usable.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, scope: ScopeId, list_id: &str, mode: ListMode) -> Entry<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let view = ListRunView {
            list_id: list_id.to_owned(),
            mode: match mode {
                ListMode::Add => "add",
                ListMode::Sync => "sync",
            }
            .into(),
            started_at: format_iso_ms(now_ms()),
            pages_planned: 0,
            items_planned: 0,
            jobs_queued: 0,
        };
        self.lock().insert(id, (scope, view));
        Entry { runs: self, id }
    }

    /// The runs of one scope, oldest first.
    pub fn of(&self, scope: ScopeId) -> Vec<ListRunView> {
        let running = self.lock();
        let mine = running.values().filter(|(s, _)| *s == scope);
        mine.map(|(_, v)| v.clone()).collect()
    }
}

impl Entry<'_> {
    fn planned(&self, pages: u64, items: u64, queued: u64) {
        if let Some((_, v)) = self.runs.lock().get_mut(&self.id) {
            v.pages_planned += pages;
            v.items_planned += items;
            v.jobs_queued += queued;
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.id);
    }
}

/// Pages read at most in one run (10,000,000 items): an upstream that never
/// says it is done is an error, not an endless sync.
const MAX_PAGES: u64 = 100_000;

/// Pages read ahead of the catalog at most (4,000 items at the upstream's
/// page size, two full batches): what bounds a run's memory.
const READ_AHEAD_PAGES: usize = 40;

/// Pages applied in one transaction at most, so that one transaction holds
/// the writer (and the scope row lock) for a bounded time.
const BATCH_PAGES: usize = 20;

/// The items of several pages as one: an item listed twice (an offset
/// listing that shifted between pages) is planned once, as last listed,
/// as it would be in one page after another.
fn batched(items: impl Iterator<Item = ObservedMedia>) -> Vec<ObservedMedia> {
    let items: Vec<ObservedMedia> = items.collect();
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut last: Vec<ObservedMedia> = (items.into_iter().rev())
        .filter(|m| seen.insert(m.media_id.clone()))
        .collect();
    last.reverse();
    last
}

fn purged() -> ServiceError {
    ServiceError::Conflict("the connection was purged while the list was being read".into())
}

impl VaultService {
    /// Reads `list` page by page and applies each page as it comes.
    pub(super) async fn run_list(
        &self,
        ctx: &ConnectionContext,
        list: &str,
        mode: ListMode,
    ) -> ServiceResult<ListOutcome> {
        let upstream = self.upstream()?;
        let (conn, scope) = (ctx.connection.id.as_str(), ctx.connection.scope_id);
        // The first page before the run begins, so a list the upstream
        // refuses leaves nothing behind.
        let mut page = upstream.list_page(conn, list, 0).await?;
        let run = self
            .catalog
            .begin_list_run(scope, list, mode, now_ms())
            .await?;
        let run = run.ok_or_else(purged)?;
        let entry = self.list_runs.start(scope, list, mode);
        // The listing is read ahead of the catalog into a bounded queue, and
        // each transaction applies every page that arrived while the one
        // before it committed: one commit (one fsync on SQLite) per batch of
        // pages rather than per page, batches as big as the catalog falls
        // behind (group commit, as the storing pipeline's).
        let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD_PAGES);
        let read = async move {
            let mut pages = 1;
            loop {
                let next = page.next;
                if tx.send(page).await.is_err() {
                    // The applying side stopped (it failed): read no more.
                    return Ok(());
                }
                let Some(offset) = next else { return Ok(()) };
                if pages == MAX_PAGES {
                    return Err(ServiceError::Upstream(format!(
                        "list {list} has more than {MAX_PAGES} pages"
                    )));
                }
                page = upstream.list_page(conn, list, offset).await?;
                pages += 1;
            }
        };
        let apply = async move {
            let mut total = ListOutcome::default();
            let mut seen = 0;
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH_PAGES
                    && let Ok(more) = rx.try_recv()
                {
                    batch.push(more);
                }
                let pages = batch.len() as u64;
                let listed: u64 = batch.iter().map(|p| p.seen).sum();
                let observed = batched(
                    batch
                        .iter()
                        .flat_map(|p| &p.items)
                        .map(|m| admit(&ctx.settings, m)),
                );
                let applied = self
                    .catalog
                    .apply_list_page(scope, list, &run, &observed, now_ms())
                    .await?;
                let o = applied.ok_or_else(purged)?;
                if o.queued > 0 {
                    self.pipeline_signal.wake();
                }
                entry.planned(pages, listed, o.queued);
                seen += listed;
                total.counts += o.counts;
                total.queued += o.queued;
            }
            Ok::<_, ServiceError>((total, seen))
        };
        let (read, applied) = tokio::join!(read, apply);
        let (mut total, seen) = applied?;
        read?;
        // Items the upstream listed but a cache must skip (not viewable,
        // not ready, broken) are seen too.
        total.counts.seen = seen;
        let last = self
            .catalog
            .finish_list_run(scope, list, &run, &total, now_ms())
            .await?;
        let last = last.ok_or_else(purged)?;
        total.counts += last.counts;
        total.queued += last.queued;
        total.counts.seen = seen;
        Ok(total)
    }

    /// `status` with the list runs in flight on this server.
    pub async fn connection_status(
        &self,
        who: &Principal,
        connection: &str,
    ) -> ServiceResult<ConnectionStatusView> {
        let (ctx, status) = self.status_of(who, connection).await?;
        let mut view: ConnectionStatusView = status.into();
        view.syncs = self.list_runs.of(ctx.connection.scope_id);
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::batched;
    use crate::model::observed::ObservedMedia;
    use crate::model::{MediaId, MediaType};

    fn item(id: &str, fingerprint: &str) -> ObservedMedia {
        ObservedMedia {
            media_id: MediaId::parse(id).unwrap(),
            media_type: MediaType::Image,
            duration: None,
            fingerprint: fingerprint.into(),
            admitted: true,
            variants: Vec::new(),
        }
    }

    #[test]
    fn an_item_listed_twice_is_planned_once_as_last_listed() {
        let pages = [
            item("1", "a"),
            item("2", "a"),
            item("1", "b"),
            item("3", "a"),
        ];
        let got: Vec<_> = batched(pages.into_iter())
            .into_iter()
            .map(|m| format!("{}:{}", m.media_id.as_str(), m.fingerprint))
            .collect();
        assert_eq!(got, ["2:a", "1:b", "3:a"]);
    }
}
