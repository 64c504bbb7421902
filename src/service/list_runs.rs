//! A list add or sync, read from the upstream and applied a page at a time
//! (docs/DESIGN.md: a big first sync is not a wall). Each page is planned
//! and committed in its own transaction and wakes the storing pipeline, so
//! fetching starts while later pages are still being read; the next page is
//! read while the current one is applied. A sync's removals need the whole
//! listing, so the catalog does them once, after the last page. Progress of
//! the runs in flight on this server shows in `status`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::{ListOutcome, ScopeId};
use crate::model::admission::admit;
use crate::model::list_plan::ListMode;
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
    fn planned(&self, items: u64, queued: u64) {
        if let Some((_, v)) = self.runs.lock().get_mut(&self.id) {
            v.pages_planned += 1;
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
        let mut total = ListOutcome::default();
        let (mut seen, mut pages) = (0, 0);
        loop {
            let observed: Vec<_> = page.items.iter().map(|m| admit(&ctx.settings, m)).collect();
            let next = async {
                match page.next {
                    Some(offset) => Some(upstream.list_page(conn, list, offset).await),
                    None => None,
                }
            };
            let apply = self
                .catalog
                .apply_list_page(scope, list, &run, &observed, now_ms());
            let (applied, next) = tokio::join!(apply, next);
            let o = applied?.ok_or_else(purged)?;
            if o.queued > 0 {
                self.pipeline_signal.wake();
            }
            entry.planned(page.seen, o.queued);
            seen += page.seen;
            pages += 1;
            if pages == MAX_PAGES && next.is_some() {
                return Err(ServiceError::Upstream(format!(
                    "list {list} has more than {MAX_PAGES} pages"
                )));
            }
            total.counts += o.counts;
            total.queued += o.queued;
            match next {
                Some(p) => page = p?,
                None => break,
            }
        }
        let last = self
            .catalog
            .finish_list_run(scope, list, &run, now_ms())
            .await?;
        let last = last.ok_or_else(purged)?;
        total.counts += last.counts;
        total.queued += last.queued;
        // Items the upstream listed but a cache must skip (not viewable,
        // not ready, broken) are seen too.
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
