//! Committing finished fetches ([`crate::catalog::JobQueue::commit_jobs`]):
//! each becomes its variant's stored bytes and ends its job.
//!
//! The fetches of one scope commit together, in one statement per kind of
//! row (the jobs held, the variants read, the intents taken, the jobs
//! ended, the rows written), rather than ten statements each: on SQLite
//! every statement is a round trip to the database's worker thread, and
//! the writer is the one place every fetch passes through.

use std::collections::{HashMap, HashSet};

use super::blob_queue::queue_blobs;
use super::dialect::{self, Tx};
use super::eviction::{admits, enforce_limit};
use super::job_rows::{end_jobs, held};
use super::outbox;
use super::scopes::lock_current_scope;
use super::uploads::{abort_uploads, take_intents};
use super::variants::ItemEdit;
use crate::catalog::{CommitOutcome, FetchedBlob, JobDone, Result, VariantRecord};
use crate::model::{MediaType, VariantStatus};

/// Commits `done`, visiting it in `order` (by scope and media ID, so that
/// two nodes' batches lock rows in the same order and cannot deadlock).
/// Each fetch gets its own answer, in the order of `done`.
///
/// `joint`: the fetches of a scope commit together, and an error fails the
/// whole batch (the caller then runs it again not joint). Otherwise, and
/// always under a storage limit (whether a fetch fits depends on the ones
/// stored before it), they commit one at a time, each under a savepoint so
/// that an error is only the answer of the fetch that caused it.
pub async fn commit_batch(
    tx: &mut Tx,
    done: &[JobDone],
    order: &[usize],
    joint: bool,
    now: i64,
) -> Result<Vec<Result<CommitOutcome>>> {
    let mut out: Vec<Option<Result<CommitOutcome>>> = done.iter().map(|_| None).collect();
    for group in order.chunk_by(|&a, &b| done[a].job.scope_id == done[b].job.scope_id) {
        let members: Vec<&JobDone> = group.iter().map(|&i| &done[i]).collect();
        if joint && members.iter().all(|d| d.limit.is_none()) {
            let outcomes = complete(tx, &members, now)
                .await
                .map_err(|e| e.context(JointFailed))?;
            for (&i, o) in group.iter().zip(outcomes) {
                out[i] = Some(Ok(o));
            }
            continue;
        }
        for (&i, d) in group.iter().zip(&members) {
            savepoint(tx).await?;
            let one = complete(tx, &[d], now).await.map(|mut o| o.remove(0));
            out[i] = Some(end_savepoint(tx, one).await?);
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every fetch is visited"))
        .collect())
}

/// Marks the error of a joint commit's statements (not of its COMMIT): the
/// batch may run again, one fetch at a time.
#[derive(Debug)]
pub struct JointFailed;

impl std::fmt::Display for JointFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a joint commit of finished fetches failed")
    }
}

async fn savepoint(tx: &mut Tx) -> Result<()> {
    sqlx::query("SAVEPOINT job").execute(&mut **tx).await?;
    Ok(())
}

/// Ends the savepoint after `result`: kept on success, rolled back on an
/// error the transaction survives. An error that asks for the whole
/// transaction again (a PostgreSQL deadlock victim) is passed up.
async fn end_savepoint<T>(tx: &mut Tx, result: Result<T>) -> Result<Result<T>> {
    match result {
        Err(e) if dialect::is_retryable(&e) => Err(e),
        Err(e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT job")
                .execute(&mut **tx)
                .await?;
            sqlx::query("RELEASE SAVEPOINT job")
                .execute(&mut **tx)
                .await?;
            Ok(Err(e))
        }
        Ok(v) => {
            sqlx::query("RELEASE SAVEPOINT job")
                .execute(&mut **tx)
                .await?;
            Ok(Ok(v))
        }
    }
}

/// Makes the fetches of one scope (sorted by media ID; one at a time if
/// any has a storage limit, see [`commit_batch`]) their variants' stored
/// bytes. A fetch whose job is no longer its worker's, whose variant is
/// gone, or whose upload intent was given to reclaim is refused, its blob
/// queued for reclaim.
async fn complete(tx: &mut Tx, members: &[&JobDone], now: i64) -> Result<Vec<CommitOutcome>> {
    debug_assert!(members.len() == 1 || members.iter().all(|d| d.limit.is_none()));
    let scope = members[0].job.scope_id;
    let keys: Vec<String> = members.iter().map(|d| d.blob.blob_key.clone()).collect();
    if !lock_current_scope(tx, scope).await? {
        abort_uploads(tx, &keys, now).await?;
        return Ok(vec![CommitOutcome::ScopeRetired; members.len()]);
    }
    // Job rows before variant rows (lock order).
    let jobs: Vec<(i64, &str)> = members
        .iter()
        .map(|d| (d.job.id, d.owner.as_str()))
        .collect();
    let held = held(tx, &jobs).await?;
    let ids: Vec<&str> = members.iter().map(|d| d.job.media_id.as_str()).collect();
    let mut edits = ItemEdit::load_many(tx, scope, &ids).await?;
    let at: HashMap<String, usize> = edits
        .iter()
        .enumerate()
        .map(|(i, e)| (e.media_id().to_owned(), i))
        .collect();
    let taken: HashSet<String> = take_intents(tx, &keys).await?.into_iter().collect();
    let mut outcomes = Vec::with_capacity(members.len());
    let (mut refused, mut ended, mut changed) = (Vec::new(), Vec::new(), HashSet::new());
    let mut fresh = Vec::new();
    for d in members {
        let edit = &mut edits[at[&d.job.media_id]];
        let outcome = match edit.get(&d.job.label).cloned() {
            // Committed already (this very fetch, answered before): the
            // same answer, and its blob stays.
            Some(old) if old.blob_key.as_deref() == Some(d.blob.blob_key.as_str()) => {
                outcomes.push(CommitOutcome::Created(old));
                continue;
            }
            Some(old) if held.contains(&d.job.id) => {
                let replaced = if old.status == VariantStatus::Stored {
                    old.size_bytes
                } else {
                    0
                };
                if !admits(tx, scope, d.limit, d.blob.size_bytes, replaced).await? {
                    CommitOutcome::OverLimit
                } else if !taken.contains(&d.blob.blob_key) {
                    CommitOutcome::Superseded
                } else {
                    let new = stored(old, &d.blob, now);
                    edit.put(new.clone());
                    ended.push(d.job.id);
                    changed.insert(at[&d.job.media_id]);
                    fresh.push(outcomes.len());
                    CommitOutcome::Created(new)
                }
            }
            _ => CommitOutcome::Superseded,
        };
        if !matches!(outcome, CommitOutcome::Created(_)) {
            refused.push(d.blob.blob_key.clone());
        }
        outcomes.push(outcome);
    }
    queue_blobs(tx, &refused, now).await?;
    end_jobs(tx, &ended).await?;
    let edits: Vec<ItemEdit> = edits
        .into_iter()
        .enumerate()
        .filter(|(i, _)| changed.contains(i))
        .map(|(_, e)| e)
        .collect();
    ItemEdit::save_all(edits, tx, now).await?;
    let stored: Vec<(&str, &VariantRecord)> = (fresh.iter())
        .filter_map(|&i| match &outcomes[i] {
            CommitOutcome::Created(v) => Some((members[i].job.media_id.as_str(), v)),
            _ => None,
        })
        .collect();
    outbox::media_stored_all(tx, scope, &stored, now).await?;
    for &i in &fresh {
        let d = members[i];
        let keep = (d.job.media_id.as_str(), d.job.label.as_str());
        enforce_limit(tx, scope, d.limit, keep, now).await?;
    }
    Ok(outcomes)
}

/// The variant as stored from `blob`.
fn stored(old: VariantRecord, blob: &FetchedBlob, now: i64) -> VariantRecord {
    let mut new = old;
    new.status = VariantStatus::Stored;
    new.size_bytes = blob.size_bytes;
    // The response's own type wins over the guess made at listing time,
    // provided it is media at all.
    if MediaType::from_content_type(&blob.content_type).is_some() {
        new.content_type = blob.content_type.clone();
    }
    new.stored_at = Some(now);
    new.blob_key = Some(blob.blob_key.clone());
    new.checksum = Some(blob.checksum.clone());
    new.last_error = None;
    new
}
