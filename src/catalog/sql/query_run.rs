//! Runs a media query: probes its filters, picks the plan
//! (`query_plan.rs`), reads the page's rows (`query.rs`).

use sqlx::Row as _;

use super::SqlCatalog;
use super::dialect::{self, Row};
use super::query;
use crate::catalog::query::MediaQuery;
use crate::catalog::query_plan::{self, Explained, Plan};
use crate::catalog::{Result, ScopeId};

/// The rows of one page of `q` (at most `limit + 1` after de-duplication,
/// so the caller can tell whether more follow).
pub async fn page_rows(catalog: &SqlCatalog, scope: ScopeId, q: &MediaQuery) -> Result<Vec<Row>> {
    let db = catalog.db.reader();
    let fetch = i64::from(q.limit) + 1;
    match plan(catalog, scope, q).await? {
        Plan::Driven(driver) => Ok(query::driven_query("", scope, q, driver)
            .build()
            .fetch_all(db)
            .await?),
        Plan::Walk => {
            let mut rows = Vec::new();
            for &section in query::sections(q) {
                if rows.len() as i64 >= fetch {
                    break;
                }
                // A full page from each section, not the rest of one: the
                // page drops an item both sections returned (see
                // `query::page_of`) and must still tell whether more follow.
                let mut qb = query::walk_query("", scope, q, section, fetch);
                rows.extend(qb.build().fetch_all(db).await?);
            }
            Ok(rows)
        }
    }
}

/// The plan for `q`: each filter that could drive it is counted up to the
/// threshold through its own index.
pub async fn plan(catalog: &SqlCatalog, scope: ScopeId, q: &MediaQuery) -> Result<Plan> {
    let candidates = query_plan::candidates(q);
    if candidates.is_empty() {
        return Ok(Plan::Walk);
    }
    let db = catalog.db.reader();
    let live: Option<i64> = sqlx::query_scalar("SELECT live_count FROM scopes WHERE id = $1")
        .bind(scope)
        .fetch_optional(db)
        .await?;
    let threshold = query_plan::threshold(q.limit, live.unwrap_or(0).max(0) as u64);
    let cap = i64::try_from(threshold + 1).unwrap_or(i64::MAX);
    let mut counts = Vec::with_capacity(candidates.len());
    for driver in candidates {
        let row = query::probe_query("", scope, q, driver, cap)
            .build()
            .fetch_one(db)
            .await?;
        let n: i64 = row.try_get("n")?;
        counts.push((driver, n.max(0) as u64));
        if n == 0 {
            // Nothing can select fewer.
            break;
        }
    }
    Ok(query_plan::choose(&counts, threshold))
}

/// What the database plans for each statement of `q`'s page, after the
/// plan vaultplus picked (`docs/query-plans.md`; `tests/query_plans.rs`
/// fails on a scan or a sort of a connection's rows).
pub async fn explain(catalog: &SqlCatalog, scope: ScopeId, q: &MediaQuery) -> Result<Explained> {
    let plan = plan(catalog, scope, q).await?;
    let prefix = dialect::EXPLAIN;
    let cap = i64::from(q.limit) + 1;
    let mut statements = Vec::new();
    for driver in query_plan::candidates(q) {
        statements.push(query::probe_query(prefix, scope, q, driver, cap));
    }
    match plan {
        Plan::Driven(driver) => statements.push(query::driven_query(prefix, scope, q, driver)),
        Plan::Walk => {
            for &section in query::sections(q) {
                statements.push(query::walk_query(prefix, scope, q, section, cap));
            }
        }
    }
    let mut out = Explained {
        plan,
        statements: Vec::new(),
    };
    for mut qb in statements {
        let sql = qb.sql().as_str().to_owned();
        let lines = dialect::explain_lines(qb.build().fetch_all(catalog.db.reader()).await?)?;
        out.statements.push((sql, lines));
    }
    Ok(out)
}
