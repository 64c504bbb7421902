//! A list add or sync applied a page at a time (`ListStore::begin_list_run`
//! and the two after it). The rules are `model::list_plan`'s, once: each
//! page is planned against a snapshot of its own items only, and the last
//! step plans the members no page listed as if the listing were empty, so
//! the answers add up to what one plan of the whole listing answers.

use sqlx::Row;

use super::dialect::{self, Tx};
use super::lists::{Members, apply_plan, snapshot};
use crate::catalog::{ListOutcome, Result, ScopeId};
use crate::model::list_plan::{ListMode, ListRun, plan};
use crate::model::observed::ObservedMedia;

/// Takes the list's next generation (creating its row) and what the list
/// was before this run. The caller holds the scope lock.
pub(super) async fn begin(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    mode: ListMode,
    now: i64,
) -> Result<ListRun> {
    let row = sqlx::query(
        "INSERT INTO lists (scope_id, list_id, has_baseline, first_added_at, last_added_at, \
         sync_generation) VALUES ($1, $2, FALSE, $3, $3, 1) ON CONFLICT (scope_id, list_id) \
         DO UPDATE SET sync_generation = lists.sync_generation + 1 \
         RETURNING has_baseline, sync_generation",
    )
    .bind(scope)
    .bind(list_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(ListRun {
        mode,
        has_baseline: row.try_get("has_baseline")?,
        generation: row.try_get("sync_generation")?,
    })
}

/// Plans and applies one page of the listing, and marks every member it
/// lists (admitted or not: a listed item has not left the list) as seen by
/// the run.
pub(super) async fn page(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    run: &ListRun,
    items: &[ObservedMedia],
    now: i64,
) -> Result<ListOutcome> {
    let mut snap = snapshot(tx, scope, list_id, items, Members::Listed).await?;
    snap.has_baseline = run.has_baseline;
    let p = plan(run.mode, &snap, items);
    let queued = apply_plan(tx, scope, list_id, run.mode, &p, items, now).await?;
    if run.mode == ListMode::Sync && !items.is_empty() {
        let ids: Vec<&str> = items.iter().map(|m| m.media_id.as_str()).collect();
        let sql = format!(
            "UPDATE list_members SET seen_generation = $3 WHERE scope_id = $1 AND list_id = $2 \
             AND seen_generation < $3 AND {}",
            dialect::in_list("media_id", 4)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(list_id)
            .bind(run.generation)
            .bind(dialect::list(&ids))
            .execute(&mut **tx)
            .await?;
    }
    Ok(ListOutcome {
        counts: p.counts,
        queued,
    })
}

/// A sync removes the baseline members no page of it marked (a later
/// generation's marks count too: that sync listed them after this one
/// began), then the list records its baseline.
pub(super) async fn finish(
    tx: &mut Tx,
    scope: ScopeId,
    list_id: &str,
    run: &ListRun,
    now: i64,
) -> Result<ListOutcome> {
    let mut counts = Default::default();
    let mut queued = 0;
    let mut baseline = run.has_baseline;
    if run.mode == ListMode::Sync {
        let unseen = Members::UnseenBy(run.generation);
        let mut snap = snapshot(tx, scope, list_id, &[], unseen).await?;
        snap.has_baseline = run.has_baseline;
        let p = plan(run.mode, &snap, &[]);
        queued = apply_plan(tx, scope, list_id, run.mode, &p, &[], now).await?;
        (counts, baseline) = (p.counts, p.baseline);
    }
    let sync = run.mode == ListMode::Sync;
    // A baseline, once recorded, stays (a run that began before another
    // sync finished must not take it back).
    sqlx::query(
        "INSERT INTO lists (scope_id, list_id, has_baseline, first_added_at, last_added_at, last_synced_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope_id, list_id) DO UPDATE SET \
         has_baseline = lists.has_baseline OR excluded.has_baseline, last_added_at = excluded.last_added_at, \
         last_synced_at = coalesce(excluded.last_synced_at, lists.last_synced_at)",
    )
    .bind(scope)
    .bind(list_id)
    .bind(baseline)
    .bind(now)
    .bind(now)
    .bind(sync.then_some(now))
    .execute(&mut **tx)
    .await?;
    Ok(ListOutcome { counts, queued })
}
