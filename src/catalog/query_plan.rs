//! How a media query is answered without reading a connection's rows:
//! either walk the sort's index in order (each row read tests the other
//! filters, so a page reads about `limit / selectivity` rows), or read the
//! rows one filter selects through that filter's index and sort only them.
//! Neither alone is bounded: a walk under a filter that matches nothing
//! reads the whole connection, and sorting what a broad filter selects
//! sorts most of it. So the filters that could drive are first counted,
//! each up to a threshold through its own index (a probe reads at most
//! `threshold + 1` index entries), and one that selects at most the
//! threshold drives; otherwise every filter matches more than the threshold
//! and the walk reads at most `limit × live / threshold` rows.
//!
//! The threshold balances the two worst cases, `√(limit × live)`: at
//! 1,000,000 variants and pages of 50 about 7,000 rows either way (see
//! docs/query-plans.md). Filters on the sort column, and the media type
//! (its own indexes lead with it), bound the walk itself and never drive.

use crate::catalog::query::{MediaQuery, SortKey};

/// A filter whose own index can drive a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// Variants of one status (`variants_by_status`).
    Status,
    /// Variants of one content type (`variants_by_content_type`).
    ContentType,
    /// A `durationMin`/`durationMax` range (`media_by_duration`).
    Duration,
    /// A `createdAtFrom`/`createdAtTo` range (`media_by_created`).
    CreatedAt,
    /// A `cachedAtFrom`/`cachedAtTo` range (`media_by_cached`).
    CachedAt,
}

/// How one page is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The sort's index, in order.
    Walk,
    /// The rows `Driver` selects, sorted.
    Driven(Driver),
}

/// The media column a sort orders by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    CachedAt,
    Duration,
}

impl SortColumn {
    pub fn of(sort: SortKey) -> Self {
        match sort {
            SortKey::CreatedAtDesc | SortKey::CreatedAtAsc => Self::CreatedAt,
            SortKey::CachedAtDesc | SortKey::CachedAtAsc => Self::CachedAt,
            SortKey::DurationDesc | SortKey::DurationAsc => Self::Duration,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::CachedAt => "cached_at",
            Self::Duration => "duration",
        }
    }

    /// Items without a value exist (and sort last) only for these.
    pub fn nullable(self) -> bool {
        !matches!(self, Self::CreatedAt)
    }

    /// The filter on this column, if it is a range filter.
    fn driver(self) -> Driver {
        match self {
            Self::CreatedAt => Driver::CreatedAt,
            Self::CachedAt => Driver::CachedAt,
            Self::Duration => Driver::Duration,
        }
    }
}

impl Driver {
    /// The media column a range driver filters, `None` for a variant one.
    pub fn column(self) -> Option<SortColumn> {
        match self {
            Self::Status | Self::ContentType => None,
            Self::Duration => Some(SortColumn::Duration),
            Self::CreatedAt => Some(SortColumn::CreatedAt),
            Self::CachedAt => Some(SortColumn::CachedAt),
        }
    }
}

/// Whether `q` filters on `column` (any such filter excludes items without
/// a value there).
pub fn filters_column(q: &MediaQuery, column: SortColumn) -> bool {
    match column {
        SortColumn::CreatedAt => q.created_from.is_some() || q.created_to.is_some(),
        SortColumn::CachedAt => q.cached_from.is_some() || q.cached_to.is_some(),
        SortColumn::Duration => q.duration_min.is_some() || q.duration_max.is_some(),
    }
}

/// The filters of `q` that could drive it, in probing order: variant
/// filters first (a walk tests them with a sub-query per row, the costliest
/// test), then the ranges not on the sort column.
pub fn candidates(q: &MediaQuery) -> Vec<Driver> {
    let sorted_by = SortColumn::of(q.sort);
    let mut out = Vec::new();
    if q.status.is_some() {
        out.push(Driver::Status);
    }
    if q.content_type.is_some() {
        out.push(Driver::ContentType);
    }
    for column in [
        SortColumn::Duration,
        SortColumn::CreatedAt,
        SortColumn::CachedAt,
    ] {
        if column != sorted_by && filters_column(q, column) {
            out.push(column.driver());
        }
    }
    out
}

/// Most rows a driving filter may select: `√((limit + 1) × live)`, at
/// least 1.
pub fn threshold(limit: u32, live: u64) -> u64 {
    let rows = (u64::from(limit) + 1).saturating_mul(live.max(1));
    rows.isqrt().max(1)
}

/// The plan for probed `counts` (each at most `threshold + 1`): the filter
/// selecting fewest rows drives when it selects at most `threshold`.
pub fn choose(counts: &[(Driver, u64)], threshold: u64) -> Plan {
    counts
        .iter()
        .filter(|(_, n)| *n <= threshold)
        .min_by_key(|(_, n)| *n)
        .map_or(Plan::Walk, |(d, _)| Plan::Driven(*d))
}

/// A media query's plan and, per statement (probes first), its SQL and
/// the database's plan lines: what `tests/query_plans.rs` pins.
#[derive(Debug)]
pub struct Explained {
    pub plan: Plan,
    pub statements: Vec<(String, Vec<String>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VariantStatus;

    #[test]
    fn the_sort_column_and_the_type_never_drive() {
        let q = MediaQuery {
            sort: SortKey::DurationDesc,
            duration_min: Some(300.0),
            media_type: Some(crate::model::MediaType::Video),
            ..MediaQuery::default()
        };
        assert!(candidates(&q).is_empty());
        let q = MediaQuery {
            sort: SortKey::CachedAtAsc,
            status: Some(VariantStatus::Pending),
            content_type: Some("image/gif".into()),
            duration_max: Some(1.0),
            created_from: Some(5),
            cached_to: Some(9),
            ..MediaQuery::default()
        };
        assert_eq!(
            candidates(&q),
            [
                Driver::Status,
                Driver::ContentType,
                Driver::Duration,
                Driver::CreatedAt
            ]
        );
    }

    #[test]
    fn the_threshold_balances_the_two_plans() {
        assert_eq!(threshold(50, 1_000_000), 7141);
        assert_eq!(threshold(50, 0), 7);
        assert_eq!(threshold(u32::MAX, u64::MAX), u32::MAX as u64);
    }

    #[test]
    fn the_fewest_rows_drive_within_the_threshold() {
        let counts = [(Driver::Status, 9), (Driver::Duration, 3)];
        assert_eq!(choose(&counts, 10), Plan::Driven(Driver::Duration));
        assert_eq!(choose(&counts, 2), Plan::Walk);
        assert_eq!(choose(&[], 2), Plan::Walk);
        assert_eq!(
            choose(&[(Driver::Status, 0)], 1),
            Plan::Driven(Driver::Status)
        );
    }
}
