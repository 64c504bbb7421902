//! Keyset paging of list members and storing jobs, written once for every
//! SQL backend (both share their schema; `QueryBuilder` writes each
//! backend's placeholders). A page reads at most `limit + 1` rows: the
//! extra row only tells whether another page follows, so memory per call
//! is bounded by the page, whatever the list or queue holds.
//!
//! Keysets are unique, immutable sort positions (`(first_added_at,
//! media_id)` for members, the job ID for jobs), so an item present
//! throughout a walk is returned exactly once, whatever is inserted or
//! deleted between pages.

use serde::{Deserialize, Serialize};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::rows::CatalogRow;
use super::{JobRecord, ListMember, ScopeId};

/// Largest page any paged catalog call answers; callers ask for less.
pub const MAX_PAGE: u32 = 100;

/// Which page to read: at most `limit` items after `after` (from the
/// start when `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl<K> PageRequest<K> {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

/// One page, and where the next one starts when more items follow.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

/// Where a page of list members ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKey {
    pub first_added_at: i64,
    pub media_id: String,
}

/// Where a page of jobs ended: the last job's ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKey {
    pub id: i64,
}

/// The page size a request gets: 1 to [`MAX_PAGE`], whatever it asked.
fn effective(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Turns the `limit + 1` rows a page query read into the page.
fn finish<T, K>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T, K> {
    let limit = effective(limit) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(key) } else { None };
    Page { items, next }
}

/// The rows a page of `limit` items fetches.
fn fetch_bound(limit: u32) -> i64 {
    i64::from(effective(limit)) + 1
}

/// One page of a list's members (media not attached) in `scope`, oldest
/// membership first.
pub fn members_query<DB>(
    scope: ScopeId,
    list_id: &str,
    page: &PageRequest<MemberKey>,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::<DB>::new(
        "SELECT media_id, first_added_at, last_added_at, last_seen_at, last_synced_at \
         FROM list_members lm WHERE lm.scope_id = ",
    );
    qb.push_bind(scope)
        .push(" AND lm.list_id = ")
        .push_bind(list_id.to_owned())
        .push(" AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = lm.scope_id)");
    if let Some(after) = &page.after {
        qb.push(" AND (lm.first_added_at, lm.media_id) > (")
            .push_bind(after.first_added_at)
            .push(", ")
            .push_bind(after.media_id.clone())
            .push(")");
    }
    qb.push(" ORDER BY lm.first_added_at, lm.media_id LIMIT ")
        .push_bind(fetch_bound(page.limit));
    qb
}

/// The page of members from the rows of [`members_query`].
pub fn members_page(
    rows: &[impl CatalogRow],
    limit: u32,
) -> anyhow::Result<Page<ListMember, MemberKey>> {
    let items = rows
        .iter()
        .map(|r| {
            Ok(ListMember {
                media_id: r.text("media_id")?,
                first_added_at: r.int("first_added_at")?,
                last_added_at: r.int("last_added_at")?,
                last_seen_at: r.int("last_seen_at")?,
                last_synced_at: r.opt_int("last_synced_at")?,
                media: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(finish(items, limit, |m: &ListMember| MemberKey {
        first_added_at: m.first_added_at,
        media_id: m.media_id.clone(),
    }))
}

/// One page of the scope's jobs (or its failed ones), oldest first.
pub fn jobs_query<DB>(
    scope: ScopeId,
    failed_only: bool,
    page: &PageRequest<JobKey>,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::<DB>::new(
        "SELECT id, media_id, label, attempts, run_after, lease_owner, failed_at, last_error \
         FROM jobs j WHERE j.scope_id = ",
    );
    qb.push_bind(scope)
        .push(" AND EXISTS (SELECT 1 FROM connections c WHERE c.scope_id = j.scope_id)");
    // Spelled out rather than bound, so the partial index of failed jobs
    // applies.
    if failed_only {
        qb.push(" AND j.failed_at IS NOT NULL");
    }
    if let Some(after) = page.after {
        qb.push(" AND j.id > ").push_bind(after.id);
    }
    qb.push(" ORDER BY j.id LIMIT ")
        .push_bind(fetch_bound(page.limit));
    qb
}

/// The page of jobs from the rows of [`jobs_query`].
pub fn jobs_page(rows: &[impl CatalogRow], limit: u32) -> anyhow::Result<Page<JobRecord, JobKey>> {
    let items = rows
        .iter()
        .map(|r| {
            Ok(JobRecord {
                id: r.int("id")?,
                media_id: r.text("media_id")?,
                label: r.text("label")?,
                attempts: r.int("attempts")? as u32,
                run_after: r.int("run_after")?,
                leased: r.opt_text("lease_owner")?.is_some(),
                failed_at: r.opt_int("failed_at")?,
                last_error: r.opt_text("last_error")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(finish(items, limit, |j: &JobRecord| JobKey { id: j.id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_at_most_limit_and_says_whether_more_follow() {
        let p = finish(vec![1, 2, 3], 2, |x: &i32| *x);
        assert_eq!((p.items, p.next), (vec![1, 2], Some(2)));
        let p = finish(vec![1, 2], 2, |x: &i32| *x);
        assert_eq!((p.items, p.next), (vec![1, 2], None));
        let p = finish(Vec::<i32>::new(), 2, |x: &i32| *x);
        assert_eq!((p.items, p.next), (vec![], None));
        assert_eq!(fetch_bound(0), 2);
        assert_eq!(fetch_bound(100), 101);
        assert_eq!(fetch_bound(u32::MAX), 101);
    }
}
