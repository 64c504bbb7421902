//! Uploads: an intent row while bytes are written (so a crash mid-write
//! leaves a blob the next start can find), then one commit that makes the
//! blob the stored variant, or hands it to reclaim.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlCatalog;
use super::blob_queue::{queue_blob, queue_blobs};
use super::dialect::{self, Tx};
use super::eviction::{admits, enforce_limit};
use super::job_rows::drop_jobs;
use super::outbox;
use super::scopes::lock_current_scope;
use super::variants::{ItemEdit, ensure_media_row};
use crate::catalog::generation;
use crate::catalog::{
    CommitOutcome, NewStoredVariant, Result, ScopeId, UploadStore, VariantRecord,
};
use crate::model::VariantStatus;
use crate::model::observed::Origin;
use crate::model::time::now_ms;

#[async_trait]
impl UploadStore for SqlCatalog {
    async fn begin_upload(&self, scope: ScopeId, blob_key: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_intents (blob_key, scope_id, started_at) VALUES ($1, $2, $3)",
        )
        .bind(blob_key)
        .bind(scope)
        .bind(now)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn commit_upload(&self, up: &NewStoredVariant) -> Result<CommitOutcome> {
        in_tx!(self, "commit_upload", |tx| async move {
            if !lock_current_scope(tx, up.scope_id).await? {
                abort_upload(tx, &up.blob_key, up.now).await?;
                return Ok(CommitOutcome::ScopeRetired);
            }
            if !take_intent(tx, &up.blob_key).await? {
                queue_blob(tx, &up.blob_key, up.now).await?;
                return Ok(CommitOutcome::Superseded);
            }
            let media_id = up.media_id.as_str();
            let mut edit = ItemEdit::load(tx, up.scope_id, media_id).await?;
            let old = edit.get(&up.label).cloned();
            let replaced = old
                .as_ref()
                .filter(|o| o.status == VariantStatus::Stored)
                .map_or(0, |o| o.size_bytes);
            if !admits(tx, up.scope_id, up.limit, up.size_bytes, replaced).await? {
                abort_upload(tx, &up.blob_key, up.now).await?;
                return Ok(CommitOutcome::OverLimit);
            }
            // The upload satisfies any storing job of this variant. The job goes
            // before the variant is written: the lock order (mod.rs).
            drop_jobs(tx, up.scope_id, media_id, Some(&up.label)).await?;
            let new = VariantRecord {
                label: up.label.clone(),
                status: VariantStatus::Stored,
                size_bytes: up.size_bytes,
                content_type: up.content_type.clone(),
                access_count: old.as_ref().map_or(0, |o| o.access_count),
                created_at: old.as_ref().map_or(up.now, |o| o.created_at),
                stored_at: Some(up.now),
                last_accessed_at: old.as_ref().map_or(up.now, |o| o.last_accessed_at),
                blob_key: Some(up.blob_key.clone()),
                checksum: Some(up.checksum.clone()),
                origin: Origin::Upload,
                upstream_url: None,
                upstream_size: None,
                last_error: None,
                // Client bytes: URLs handed out before never serve them.
                generation: generation::fresh(),
            };
            ensure_media_row(tx, up.scope_id, &up.media_id, up.now).await?;
            edit.put(new.clone());
            edit.save(tx, up.duration, up.now).await?;
            outbox::media_stored_in_scope(tx, up.scope_id, media_id, &new, up.now).await?;
            enforce_limit(tx, up.scope_id, up.limit, (media_id, &up.label), up.now).await?;
            Ok(if old.is_some() {
                CommitOutcome::Replaced(new)
            } else {
                CommitOutcome::Created(new)
            })
        })
    }

    async fn abort_upload(&self, blob_key: &str, now: i64) -> Result<()> {
        in_tx!(self, "abort_upload", |tx| abort_upload(tx, blob_key, now))
    }

    async fn requeue_upload_intents(&self, started_before: i64) -> Result<u64> {
        in_tx!(self, "requeue_upload_intents", |tx| requeue_upload_intents(
            tx,
            started_before,
            now_ms()
        ))
    }
}

/// Ends the upload intent of a blob. False when the intent is gone (a
/// restart already gave the blob to reclaim): the blob must not be
/// committed then. Deleting the row locks it, so of two nodes racing for
/// one intent exactly one sees true.
pub async fn take_intent(tx: &mut Tx, key: &str) -> Result<bool> {
    Ok(!take_intents(tx, &[key.to_owned()]).await?.is_empty())
}

/// Ends the upload intents of several blobs, as [`take_intent`] ends one;
/// returns the keys whose intent was still there.
pub async fn take_intents(tx: &mut Tx, keys: &[String]) -> Result<Vec<String>> {
    let sql = format!(
        "DELETE FROM upload_intents WHERE {} RETURNING blob_key",
        dialect::in_list("blob_key", 1)
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(dialect::list(keys))
        .fetch_all(&mut **tx)
        .await?)
}

/// Gives up a written blob: it goes to reclaim, its intent with it. Queued
/// even without its intent: a stale-intent requeue may have run before the
/// bytes were written (a job claimed long ago). Queueing is idempotent.
pub async fn abort_upload(tx: &mut Tx, key: &str, now: i64) -> Result<()> {
    abort_uploads(tx, &[key.to_owned()], now).await
}

/// Gives up several written blobs, as [`abort_upload`] gives up one.
pub async fn abort_uploads(tx: &mut Tx, keys: &[String], now: i64) -> Result<()> {
    queue_blobs(tx, keys, now).await?;
    take_intents(tx, keys).await?;
    Ok(())
}

/// The intents deleted are exactly the keys queued, even if another node
/// commits one of these uploads meanwhile: both happen in this transaction,
/// on the rows the delete returned.
async fn requeue_upload_intents(tx: &mut Tx, started_before: i64, now: i64) -> Result<u64> {
    let keys: Vec<String> =
        sqlx::query("DELETE FROM upload_intents WHERE started_at < $1 RETURNING blob_key")
            .bind(started_before)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("blob_key"))
            .collect::<std::result::Result<_, _>>()?;
    queue_blobs(tx, &keys, now).await?;
    Ok(keys.len() as u64)
}
