//! The SQL of a media query: filters, keyset, order, limit.

use sqlx::{QueryBuilder, Row as _};

use super::dialect::Db;
use super::rows::{self, MEDIA_COLUMNS, Row};
use super::scopes::SCOPE_IS_CURRENT;
use crate::catalog::query::{Keyset, MediaQuery, SortKey, SortValue};
use crate::catalog::{MediaRecord, ScopeId};

/// The query for one page of `q` in `scope`: `limit + 1` rows of media
/// columns plus `sort_id`, so the caller can tell whether more follow.
pub fn page_query(scope: ScopeId, q: &MediaQuery) -> QueryBuilder<Db> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {MEDIA_COLUMNS}, m.sort_id FROM media m WHERE m.scope_id = "
    ));
    qb.push_bind(scope);
    qb.push(" AND ")
        .push(SCOPE_IS_CURRENT)
        .push_bind(scope)
        .push(")");
    let expr = sort_expr(q.sort);

    let Filters {
        on_variant,
        on_media,
    } = filters(q);
    // The item matches when one of its variants does. Without a filter on
    // variants, "has a variant not removed" is the media row's counter.
    if on_variant.is_empty() {
        qb.push(" AND m.live_count > 0");
    } else {
        qb.push(
            " AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id",
        );
        if q.status.is_none() {
            qb.push(" AND v.status <> 'removed'");
        }
        push_conditions(&mut qb, on_variant);
        qb.push(")");
    }
    push_conditions(&mut qb, on_media);
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

/// The sort expression; missing values take the extreme that sorts last,
/// as `SortKey::value_of` does (typed: a bare -9223372036854775808 would be
/// NUMERIC in PostgreSQL).
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

/// A value bound into a condition.
enum Bind {
    Int(i64),
    Float(f64),
    Text(String),
}

/// The query's filters as SQL conditions (`column op ` before the bound
/// value), those on a variant apart from those on the media row.
struct Filters {
    on_variant: Vec<(&'static str, Bind)>,
    on_media: Vec<(&'static str, Bind)>,
}

fn filters(q: &MediaQuery) -> Filters {
    // Every field named, none skipped with `..`: a new filter does not
    // compile until it is placed here, on a variant or on the media row,
    // so the counter shortcut in `page_query` cannot drop one.
    let MediaQuery {
        status,
        media_type,
        content_type,
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
    let text = |s: &str| Bind::Text(s.to_owned());
    let on_variant = [
        status.map(|s| ("v.status = ", text(s.as_str()))),
        content_type
            .as_deref()
            .map(|t| ("v.content_type = ", text(t))),
    ];
    let on_media = [
        media_type.map(|t| ("m.media_type = ", text(t.as_str()))),
        duration_min.map(|v| ("m.duration >= ", Bind::Float(v))),
        duration_max.map(|v| ("m.duration <= ", Bind::Float(v))),
        created_from.map(|v| ("m.created_at >= ", Bind::Int(v))),
        created_to.map(|v| ("m.created_at <= ", Bind::Int(v))),
        cached_from.map(|v| ("m.cached_at >= ", Bind::Int(v))),
        cached_to.map(|v| ("m.cached_at <= ", Bind::Int(v))),
    ];
    Filters {
        on_variant: on_variant.into_iter().flatten().collect(),
        on_media: on_media.into_iter().flatten().collect(),
    }
}

fn push_conditions(qb: &mut QueryBuilder<Db>, conditions: Vec<(&'static str, Bind)>) {
    for (condition, value) in conditions {
        qb.push(" AND ").push(condition);
        match value {
            Bind::Int(v) => qb.push_bind(v),
            Bind::Float(v) => qb.push_bind(v),
            Bind::Text(v) => qb.push_bind(v),
        };
    }
}

fn push_sort_value(qb: &mut QueryBuilder<Db>, v: SortValue) {
    match v {
        SortValue::Int(i) => qb.push_bind(i),
        SortValue::Float(f) => qb.push_bind(f),
    };
}

/// The page's items (without variants) and the keyset of the next page,
/// from the rows of [`page_query`].
pub fn page_of(
    fetched: &[Row],
    q: &MediaQuery,
) -> anyhow::Result<(Vec<MediaRecord>, Option<Keyset>)> {
    let mut items = Vec::with_capacity(fetched.len());
    let mut sort_ids = Vec::with_capacity(fetched.len());
    for row in fetched {
        items.push(rows::media(row)?);
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
    use crate::model::{MediaType, VariantStatus};

    /// The WHERE clause after the scope conditions, up to the ORDER BY.
    fn filters_sql(q: &MediaQuery) -> String {
        let qb = page_query(1, q);
        // PostgreSQL numbers its placeholders, SQLite does not: compare
        // the conditions, not their positions.
        let mut sql = String::new();
        let built = qb.sql();
        let mut chars = built.as_str().chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' {
                while chars.next_if(char::is_ascii_digit).is_some() {}
                sql.push('?');
            } else {
                sql.push(c);
            }
        }
        let from = sql.find("?)").expect("scope condition") + 2;
        let to = sql.find(" ORDER BY").expect("order");
        sql[from..to].to_owned()
    }

    #[test]
    fn without_variant_filters_the_counter_answers() {
        let q = MediaQuery {
            media_type: Some(MediaType::Video),
            duration_min: Some(1.0),
            ..MediaQuery::default()
        };
        assert_eq!(
            filters_sql(&q),
            " AND m.live_count > 0 AND m.media_type = ? AND m.duration >= ?"
        );
    }

    #[test]
    fn a_variant_filter_looks_at_the_variants() {
        let exists = " AND EXISTS (SELECT 1 FROM variants v WHERE v.scope_id = m.scope_id AND v.media_id = m.media_id";
        let q = MediaQuery {
            content_type: Some("image/png".into()),
            ..MediaQuery::default()
        };
        assert_eq!(
            filters_sql(&q),
            format!("{exists} AND v.status <> 'removed' AND v.content_type = ?)")
        );
        let q = MediaQuery {
            status: Some(VariantStatus::Stored),
            cached_to: Some(1),
            ..MediaQuery::default()
        };
        assert_eq!(
            filters_sql(&q),
            format!("{exists} AND v.status = ?) AND m.cached_at <= ?")
        );
    }
}
