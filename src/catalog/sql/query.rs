//! The SQL of a media query: one statement per plan (`query_plan.rs`
//! chooses), its filters, keyset and order, and the probes that count what
//! a filter selects. Conditions that must not steer the plan are written
//! opaque (`+column`, `column || ''`): equal in value, but no index serves
//! them, so SQLite (which has no statistics here) and PostgreSQL both take
//! the index the plan names. `tests/query_plans.rs` pins every shape.

use sqlx::{QueryBuilder, Row as _};

use super::dialect::Db;
use super::rows::{self, MEDIA_COLUMNS, Row};
use super::scopes::SCOPE_IS_CURRENT;
use crate::catalog::query::{Keyset, MediaQuery, SortKey, SortValue};
use crate::catalog::query_plan::{Driver, Plan, SortColumn, filters_column};
use crate::catalog::{MediaRecord, ScopeId};

/// The part of a walk: items with a value in the sort column, in index
/// order, then (for nullable columns) those without, by ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Values,
    Nulls,
}

/// The sections a walk of `q` still reads, in order: none before the
/// keyset's own, and no nulls when a filter on the column excludes them.
pub fn sections(q: &MediaQuery) -> &'static [Section] {
    let column = SortColumn::of(q.sort);
    if !column.nullable() || filters_column(q, column) {
        return if in_nulls(q) { &[] } else { &[Section::Values] };
    }
    if in_nulls(q) {
        &[Section::Nulls]
    } else {
        &[Section::Values, Section::Nulls]
    }
}

/// Whether the previous page ended among the items without a value (their
/// keyset value is the extreme `SortKey::value_of` gives them).
fn in_nulls(q: &MediaQuery) -> bool {
    let Some(after) = &q.after else { return false };
    let desc = q.sort.descending();
    match (SortColumn::of(q.sort), after.value) {
        (SortColumn::CachedAt, SortValue::Int(v)) => v == if desc { i64::MIN } else { i64::MAX },
        (SortColumn::Duration, SortValue::Float(v)) => v == if desc { f64::MIN } else { f64::MAX },
        _ => false,
    }
}

/// One section of a walk (`prefix`: empty, or an EXPLAIN): at most `fetch` rows of media columns plus
/// `sort_id`, in sort order.
pub fn walk_query(
    prefix: &str,
    scope: ScopeId,
    q: &MediaQuery,
    section: Section,
    fetch: i64,
) -> QueryBuilder<Db> {
    let column = SortColumn::of(q.sort);
    let mut qb = head(prefix, scope, None);
    push_filters(&mut qb, q, Plan::Walk);
    let (cmp, dir) = direction(q.sort);
    let col = column.name();
    match section {
        Section::Values => {
            if column.nullable() {
                qb.push(format!(" AND m.{col} IS NOT NULL"));
            }
            if let Some(after) = q.after.as_ref().filter(|_| !in_nulls(q)) {
                qb.push(format!(" AND (m.{col}, m.sort_id) {cmp} ("));
                push_keyset(&mut qb, after);
            }
            qb.push(format!(" ORDER BY m.{col} {dir}, m.sort_id {dir}"));
        }
        Section::Nulls => {
            qb.push(format!(" AND m.{col} IS NULL"));
            if let Some(after) = q.after.as_ref().filter(|_| in_nulls(q)) {
                qb.push(format!(" AND m.sort_id {cmp} "))
                    .push_bind(after.sort_id.clone());
            }
            // The column too, though all NULL here: PostgreSQL knows rows
            // come in `sort_id` order after an equality, not after IS NULL.
            qb.push(format!(" ORDER BY m.{col} {dir}, m.sort_id {dir}"));
        }
    }
    qb.push(" LIMIT ").push_bind(fetch);
    qb
}

/// The rows `driver` selects, sorted: at most `limit + 1`.
pub fn driven_query(
    prefix: &str,
    scope: ScopeId,
    q: &MediaQuery,
    driver: Driver,
) -> QueryBuilder<Db> {
    let mut qb = head(prefix, scope, Some((q, driver)));
    push_filters(&mut qb, q, Plan::Driven(driver));
    let (cmp, dir) = direction(q.sort);
    let expr = sort_expr(q.sort);
    if let Some(after) = &q.after {
        qb.push(format!(" AND (+{expr}, m.sort_id) {cmp} ("));
        push_keyset(&mut qb, after);
    }
    qb.push(format!(" ORDER BY +{expr} {dir}, m.sort_id {dir} LIMIT "));
    qb.push_bind(i64::from(q.limit) + 1);
    qb
}

/// Counts what `driver` alone selects in `scope`, reading at most `cap`
/// entries of its index (column `n`).
pub fn probe_query(
    prefix: &str,
    scope: ScopeId,
    q: &MediaQuery,
    driver: Driver,
    cap: i64,
) -> QueryBuilder<Db> {
    let mut qb =
        QueryBuilder::<Db>::new(format!("{prefix}SELECT count(*) AS n FROM (SELECT 1 FROM "));
    // Ordered as the driver's index is, so that the index is what reads
    // them (PostgreSQL would otherwise scan the table for a broad filter,
    // trusting the LIMIT to stop it early).
    match driver.column() {
        None => {
            qb.push("variants v WHERE v.scope_id = ").push_bind(scope);
            push_conditions(
                &mut qb,
                variant_conditions(q, Some(driver)).into_iter().take(1),
            );
            qb.push(" ORDER BY v.media_id");
        }
        Some(column) => {
            qb.push("media m WHERE m.scope_id = ").push_bind(scope);
            let only: Vec<_> = range_conditions(q)
                .into_iter()
                .filter(|(c, ..)| *c == column)
                .map(|(_, cond, bind)| (cond.to_owned(), bind))
                .collect();
            push_conditions(&mut qb, only);
            qb.push(format!(" ORDER BY m.{}", column.name()));
        }
    }
    qb.push(" LIMIT ").push_bind(cap).push(") p");
    qb
}

/// `SELECT … FROM media m WHERE` the scope conditions; driven by variants,
/// the distinct media IDs of the matching variants come first and join
/// the media rows by key (CROSS JOIN keeps that order in SQLite).
fn head(prefix: &str, scope: ScopeId, driven: Option<(&MediaQuery, Driver)>) -> QueryBuilder<Db> {
    let mut qb =
        QueryBuilder::<Db>::new(format!("{prefix}SELECT {MEDIA_COLUMNS}, m.sort_id FROM "));
    match driven {
        Some((q, driver)) if driver.column().is_none() => {
            qb.push("(SELECT DISTINCT v.media_id AS hit FROM variants v WHERE v.scope_id = ")
                .push_bind(scope);
            let conds = variant_conditions(q, Some(driver));
            push_conditions(&mut qb, conds);
            qb.push(") d CROSS JOIN media m WHERE m.scope_id = ")
                .push_bind(scope)
                .push(" AND m.media_id = d.hit");
        }
        _ => {
            qb.push("media m WHERE m.scope_id = ").push_bind(scope);
        }
    }
    qb.push(" AND ")
        .push(SCOPE_IS_CURRENT)
        .push_bind(scope)
        .push(")");
    qb
}

/// The filters of `q` as the plan needs them written.
fn push_filters(qb: &mut QueryBuilder<Db>, q: &MediaQuery, plan: Plan) {
    let by_variants = matches!(plan, Plan::Driven(d) if d.column().is_none());
    // The item matches when one of its variants does: driven by variants,
    // the sub-query in `head` said so; otherwise one probe of the item's
    // variants. Without a filter on variants, "has a variant not removed"
    // is the media row's counter.
    if !by_variants {
        let conds = variant_conditions(q, None);
        if conds.is_empty() {
            qb.push(" AND m.live_count > 0");
        } else {
            qb.push(" AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id");
            push_conditions(qb, conds);
            qb.push(")");
        }
    }
    // The type leads the walk's index (`media_by_type_*`); driven, the
    // driver's index must be taken instead.
    if let Some(t) = q.media_type {
        let cond = if matches!(plan, Plan::Walk) {
            " AND m.media_type = "
        } else {
            " AND m.media_type || '' = "
        };
        qb.push(cond).push_bind(t.as_str());
    }
    let indexed = match plan {
        Plan::Walk => Some(SortColumn::of(q.sort)),
        Plan::Driven(d) => d.column(),
    };
    let ranges = range_conditions(q).into_iter().map(|(column, cond, bind)| {
        if Some(column) == indexed {
            (cond.to_owned(), bind)
        } else {
            (format!("+{cond}"), bind)
        }
    });
    push_conditions(qb, ranges);
}

/// A value bound into a condition (`None`: the condition is complete).
enum Bind {
    Int(i64),
    Float(f64),
    Text(String),
    None,
}

/// Conditions on a variant (`column op ` before the bound value). With a
/// driver, its own condition comes first and the others are opaque, so
/// the driver's index is the one taken. No status filter means any status
/// but `removed`.
fn variant_conditions(q: &MediaQuery, driver: Option<Driver>) -> Vec<(String, Bind)> {
    let text = |s: &str| Bind::Text(s.to_owned());
    let mut status = q.status.map(|s| ("v.status", text(s.as_str())));
    let mut content = q
        .content_type
        .as_deref()
        .map(|t| ("v.content_type", text(t)));
    if driver == Some(Driver::ContentType) {
        std::mem::swap(&mut status, &mut content);
    }
    let mut out = Vec::new();
    let opaque = driver.is_some();
    if let Some((col, bind)) = status {
        out.push((format!("{col} = "), bind));
    }
    if let Some((col, bind)) = content {
        let cond = if opaque {
            format!("{col} || '' = ")
        } else {
            format!("{col} = ")
        };
        out.push((cond, bind));
    }
    if !out.is_empty() && q.status.is_none() {
        // Bound to nothing: `push_conditions` writes the text only.
        out.push(("v.status <> 'removed'".into(), Bind::None));
    }
    out
}

/// Range conditions on media columns, each with the column it bounds.
/// Every field of the query is named, none skipped with `..`: a new filter
/// does not compile until it is placed here or in `variant_conditions`.
fn range_conditions(q: &MediaQuery) -> Vec<(SortColumn, &'static str, Bind)> {
    let MediaQuery {
        status: _,
        media_type: _,
        content_type: _,
        duration_min,
        duration_max,
        created_from,
        created_to,
        cached_from,
        cached_to,
        sort: _,
        limit: _,
        after: _,
    } = q;
    use SortColumn::{CachedAt, CreatedAt, Duration};
    [
        duration_min.map(|v| (Duration, "m.duration >= ", Bind::Float(v))),
        duration_max.map(|v| (Duration, "m.duration <= ", Bind::Float(v))),
        created_from.map(|v| (CreatedAt, "m.created_at >= ", Bind::Int(v))),
        created_to.map(|v| (CreatedAt, "m.created_at <= ", Bind::Int(v))),
        cached_from.map(|v| (CachedAt, "m.cached_at >= ", Bind::Int(v))),
        cached_to.map(|v| (CachedAt, "m.cached_at <= ", Bind::Int(v))),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn push_conditions(
    qb: &mut QueryBuilder<Db>,
    conditions: impl IntoIterator<Item = (String, Bind)>,
) {
    for (condition, value) in conditions {
        qb.push(" AND ").push(condition);
        match value {
            Bind::Int(v) => qb.push_bind(v),
            Bind::Float(v) => qb.push_bind(v),
            Bind::Text(v) => qb.push_bind(v),
            Bind::None => qb,
        };
    }
}

/// `value, sort_id)` of the keyset, after an opening `(`.
fn push_keyset(qb: &mut QueryBuilder<Db>, after: &Keyset) {
    match after.value {
        SortValue::Int(i) => qb.push_bind(i),
        SortValue::Float(f) => qb.push_bind(f),
    };
    qb.push(", ").push_bind(after.sort_id.clone()).push(")");
}

/// The keyset comparison and the order of a sort.
fn direction(sort: SortKey) -> (&'static str, &'static str) {
    if sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    }
}

/// The sort expression of a driven plan; missing values take the extreme
/// that sorts last, as `SortKey::value_of` does (typed: a bare
/// -9223372036854775808 would be NUMERIC in PostgreSQL).
fn sort_expr(sort: SortKey) -> &'static str {
    match sort {
        SortKey::CachedAtDesc => "coalesce(m.cached_at, CAST('-9223372036854775808' AS BIGINT))",
        SortKey::CachedAtAsc => "coalesce(m.cached_at, CAST('9223372036854775807' AS BIGINT))",
        SortKey::DurationDesc => {
            "coalesce(m.duration, CAST('-1.7976931348623157e308' AS DOUBLE PRECISION))"
        }
        SortKey::DurationAsc => {
            "coalesce(m.duration, CAST('1.7976931348623157e308' AS DOUBLE PRECISION))"
        }
        SortKey::CreatedAtDesc | SortKey::CreatedAtAsc => "m.created_at",
    }
}

/// The page's items (without variants) and the keyset of the next page,
/// from the rows read, in order. An item read twice (two sections of a
/// walk are two statements: one whose value was set or cleared between
/// them can be in both) is kept once.
pub fn page_of(
    fetched: &[Row],
    q: &MediaQuery,
) -> anyhow::Result<(Vec<MediaRecord>, Option<Keyset>)> {
    let mut items: Vec<MediaRecord> = Vec::with_capacity(fetched.len());
    let mut sort_ids = Vec::with_capacity(fetched.len());
    for row in fetched {
        let item = rows::media(row)?;
        if items.iter().any(|i| i.media_id == item.media_id) {
            continue;
        }
        items.push(item);
        sort_ids.push(row.try_get::<String, _>("sort_id")?);
    }
    let more = items.len() > q.limit as usize;
    items.truncate(q.limit as usize);
    let next = if more {
        items.last().map(|last| Keyset {
            value: q.sort.value_of(last),
            sort_id: sort_ids[items.len() - 1].clone(),
        })
    } else {
        None
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(value: SortValue) -> Option<Keyset> {
        Some(Keyset {
            value,
            sort_id: "1".into(),
        })
    }

    #[test]
    fn a_walk_reads_values_then_nulls_from_the_cursor_on() {
        let q = |sort, after, filtered: bool| MediaQuery {
            sort,
            after,
            cached_from: filtered.then_some(1),
            ..MediaQuery::default()
        };
        use Section::{Nulls, Values};
        assert_eq!(sections(&q(SortKey::CreatedAtDesc, None, false)), [Values]);
        assert_eq!(
            sections(&q(SortKey::CachedAtDesc, None, false)),
            [Values, Nulls]
        );
        let among_values = after(SortValue::Int(5));
        assert_eq!(
            sections(&q(SortKey::CachedAtAsc, among_values, false)),
            [Values, Nulls]
        );
        let among_nulls = after(SortValue::Int(i64::MIN));
        assert_eq!(
            sections(&q(SortKey::CachedAtDesc, among_nulls.clone(), false)),
            [Nulls]
        );
        // Ascending, the extreme of the nulls is the other one.
        assert_eq!(
            sections(&q(SortKey::CachedAtAsc, among_nulls, false)),
            [Values, Nulls]
        );
        assert_eq!(
            sections(&q(
                SortKey::DurationAsc,
                after(SortValue::Float(f64::MAX)),
                false
            )),
            [Nulls]
        );
        // A filter on the sorted column excludes the nulls.
        assert_eq!(sections(&q(SortKey::CachedAtDesc, None, true)), [Values]);
    }
}
