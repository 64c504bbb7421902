//! Keyset paging of list members and storing jobs. A page reads at most
//! `limit + 1` rows (`catalog/sql/` writes the queries): the
//! extra row only tells whether another page follows, so memory per call
//! is bounded by the page, whatever the list or queue holds.
//!
//! Keysets are unique, immutable sort positions (`(first_added_at,
//! media_id)` for members, the job ID for jobs), so an item present
//! throughout a walk is returned exactly once, whatever is inserted or
//! deleted between pages.

use serde::{Deserialize, Serialize};

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

/// Where a page of receipts ended (newest first): the last one's time and
/// ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptKey {
    pub requested_at: i64,
    pub id: String,
}

/// The page size a request gets: 1 to [`MAX_PAGE`], whatever it asked.
fn effective(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Turns the `limit + 1` rows a page query read into the page.
pub(crate) fn finish<T, K>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T, K> {
    let limit = effective(limit) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(key) } else { None };
    Page { items, next }
}

/// The rows a page of `limit` items fetches.
pub(crate) fn fetch_bound(limit: u32) -> i64 {
    i64::from(effective(limit)) + 1
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
