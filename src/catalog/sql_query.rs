//! The SQL of a media query (filters, keyset, order, limit), built for any
//! backend: both catalogs share their schema, and `QueryBuilder` writes each
//! backend's placeholders. Only the sort expressions differ (how a missing
//! value is spelled as the extreme that sorts last).

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::query::{Keyset, MediaQuery, SortValue};
use super::rows::{self, CatalogRow, MEDIA_COLUMNS};
use super::{MediaRecord, ScopeId};

/// The query for one page of `q` in `scope`: `limit + 1` rows of media
/// columns plus `sort_id`, so the caller can tell whether more follow.
/// `sort_expr` is the backend's SQL for the sort key (`m.` columns);
/// `scope_is_current` the condition, open for a bound scope ID.
pub fn page_query<DB>(
    scope: ScopeId,
    q: &MediaQuery,
    expr: &str,
    scope_is_current: &str,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::<DB>::new(format!(
        "SELECT {MEDIA_COLUMNS}, m.sort_id FROM media m WHERE m.scope_id = "
    ));
    qb.push_bind(scope);
    qb.push(" AND ")
        .push(scope_is_current)
        .push_bind(scope)
        .push(")");

    // Variant-level filters: the item matches when one of its variants does.
    match (q.status, &q.content_type) {
        (None, None) => {
            qb.push(" AND m.live_count > 0");
        }
        (status, content_type) => {
            qb.push(
                " AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id",
            );
            match status {
                Some(s) => {
                    qb.push(" AND v.status = ").push_bind(s.as_str().to_owned());
                }
                None => {
                    qb.push(" AND v.status <> 'removed'");
                }
            }
            if let Some(ct) = content_type {
                qb.push(" AND v.content_type = ").push_bind(ct.clone());
            }
            qb.push(")");
        }
    }
    if let Some(t) = q.media_type {
        qb.push(" AND m.media_type = ")
            .push_bind(t.as_str().to_owned());
    }
    if let Some(v) = q.duration_min {
        qb.push(" AND m.duration >= ").push_bind(v);
    }
    if let Some(v) = q.duration_max {
        qb.push(" AND m.duration <= ").push_bind(v);
    }
    if let Some(v) = q.created_from {
        qb.push(" AND m.created_at >= ").push_bind(v);
    }
    if let Some(v) = q.created_to {
        qb.push(" AND m.created_at <= ").push_bind(v);
    }
    if let Some(v) = q.cached_from {
        qb.push(" AND m.cached_at >= ").push_bind(v);
    }
    if let Some(v) = q.cached_to {
        qb.push(" AND m.cached_at <= ").push_bind(v);
    }
    let (cmp, dir) = if q.sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = &q.after {
        qb.push(format!(" AND ({expr}, m.sort_id) {cmp} ("));
        push_sort_value(&mut qb, after.value);
        qb.push(", ").push_bind(after.sort_id.clone()).push(")");
    }
    qb.push(format!(" ORDER BY {expr} {dir}, m.sort_id {dir} LIMIT "));
    qb.push_bind(i64::from(q.limit) + 1);

    qb
}

fn push_sort_value<DB>(qb: &mut QueryBuilder<DB>, v: SortValue)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    match v {
        SortValue::Int(i) => qb.push_bind(i),
        SortValue::Float(f) => qb.push_bind(f),
    };
}

/// The page's items (without variants) and the keyset of the next page,
/// from the rows of [`page_query`].
pub fn page_of(
    fetched: &[impl CatalogRow],
    q: &MediaQuery,
) -> anyhow::Result<(Vec<MediaRecord>, Option<Keyset>)> {
    let mut items = Vec::with_capacity(fetched.len());
    let mut sort_ids = Vec::with_capacity(fetched.len());
    for row in fetched {
        items.push(rows::media(row)?);
        sort_ids.push(row.text("sort_id")?);
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
