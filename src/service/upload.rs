//! Putting bytes in directly: `PUT .../media/{id}/variants/{label}`.
//!
//! The body streams to the blob store (memory stays flat whatever its size),
//! is checksummed, made durable, and only then becomes the stored variant in
//! one catalog transaction. An upload that loses a race with a purge of its
//! connection is discarded and answered 409; its bytes are reclaimed.

use crate::blobs::{ByteStream, PutError};
use crate::catalog::{CommitOutcome, NewStoredVariant};
use crate::model::time::now_ms;
use crate::model::views::VariantView;
use crate::model::{Label, MediaId, MediaType};

use super::{Principal, ServiceError, ServiceResult, VaultService};

pub struct UploadRequest {
    pub media_id: MediaId,
    pub label: Label,
    pub content_type: Option<String>,
    pub duration: Option<f64>,
    /// The Content-Length the client announced, if any.
    pub declared_len: Option<u64>,
    pub body: ByteStream,
}

/// The bare MIME type (`image/jpeg`), lower-cased, without parameters; None
/// when it is not image, video or audio.
fn media_content_type(raw: &str) -> Option<String> {
    let essence = raw.split(';').next()?.trim().to_ascii_lowercase();
    let (top, sub) = essence.split_once('/')?;
    let token_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token_ok(top) || !token_ok(sub) || essence.len() > 127 {
        return None;
    }
    MediaType::from_content_type(&essence).map(|_| essence)
}

impl VaultService {
    /// Stores an uploaded variant. Answers whether it replaced an earlier
    /// one, and the variant as the API shows it.
    pub async fn upload(
        &self,
        who: &Principal,
        connection: &str,
        req: UploadRequest,
    ) -> ServiceResult<(bool, VariantView)> {
        let ctx = self.connection(who, connection).await?;
        if !ctx.connection.enabled {
            return Err(ServiceError::vault_disabled());
        }
        let raw_type = req.content_type.as_deref().ok_or_else(|| {
            ServiceError::bad_request(
                "Content-Type header is required (image/*, video/* or audio/*)",
            )
        })?;
        let content_type = media_content_type(raw_type).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "Content-Type {raw_type:?} is not media: expected image/*, video/* or audio/*"
            ))
        })?;
        if let Some(d) = req.duration
            && (!d.is_finite() || d < 0.0)
        {
            return Err(ServiceError::bad_request(
                "x-media-duration must be a number of seconds >= 0",
            ));
        }
        let limit = self.config.max_upload_bytes;
        if req.declared_len.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        if req.declared_len == Some(0) {
            return Err(ServiceError::bad_request("the upload body is empty"));
        }

        // Held until the upload task ends, however it ends.
        let slot = self.uploads.take(who.org_id, &ctx.connection.id)?;
        // The declared length is reserved now; a body of unknown length
        // reserves its bytes as they arrive (and is cut with 507 at the
        // floor). The body owns the reservation: whoever drops it gives the
        // rest back.
        let reservation = self.space.reserve(req.declared_len.unwrap_or(0)).await?;
        let scope = ctx.connection.scope_id;
        let storage_limit = ctx.settings.storage_limit();
        if let Some(l) = storage_limit {
            // Refuse early what cannot be stored, before any byte moves; the
            // commit checks again, atomically.
            let declared = req.declared_len.unwrap_or(0);
            let full = if l.strategy == crate::model::settings::LimitStrategy::BlockNew {
                let replaced = self
                    .catalog
                    .current_variant(scope, &req.media_id, &req.label)
                    .await?
                    .filter(|v| v.status == crate::model::VariantStatus::Stored)
                    .map_or(0, |v| v.size_bytes);
                let held = self.catalog.scope_totals(scope).await?.stored_bytes;
                held.saturating_sub(replaced) + declared > l.bytes
            } else {
                false
            };
            if declared > l.bytes || full {
                return Err(over_limit(l.bytes));
            }
        }
        let blob_key = crate::catalog::new_blob_key(scope);
        // Run the write in its own task: if the client goes away the handler
        // future is dropped, but the upload still ends cleanly (aborted and
        // its bytes queued for reclaim) instead of stopping mid-step.
        let this = self.clone();
        let UploadRequest {
            media_id,
            label,
            body,
            duration,
            ..
        } = req;
        let body = reservation.meter(body);
        let (task_media, task_label) = (media_id.clone(), label.clone());
        let task = tokio::spawn(async move {
            let _slot = slot;
            this.catalog
                .begin_upload(scope, &blob_key, now_ms())
                .await?;
            let written = this.blobs.put(&blob_key, body, limit).await;
            let outcome = match written {
                Ok(o) if o.size_bytes == 0 => {
                    Err(ServiceError::bad_request("the upload body is empty"))
                }
                Ok(o) => Ok(o),
                Err(PutError::TooLarge { limit }) => Err(too_large(limit)),
                Err(PutError::Body(e)) => Err(ServiceError::bad_request(format!(
                    "the upload body could not be read completely: {e}"
                ))),
                Err(PutError::Store(e)) => Err(ServiceError::Internal(e)),
                Err(PutError::NoSpace) => Err(ServiceError::InsufficientStorage(
                    "the blob store ran out of room during the upload (its free space, less \
                     the uploads in progress, reached --min-free-bytes, or the disk is full)"
                        .into(),
                )),
            };
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    this.catalog.abort_upload(&blob_key, now_ms()).await?;
                    this.reclaim_soon();
                    return Err(e);
                }
            };
            let committed = this
                .catalog
                .commit_upload(&NewStoredVariant {
                    scope_id: scope,
                    media_id: task_media,
                    label: task_label.as_str().to_owned(),
                    content_type,
                    size_bytes: outcome.size_bytes,
                    checksum: outcome.sha256,
                    blob_key: blob_key.clone(),
                    duration,
                    now: now_ms(),
                    limit: storage_limit,
                })
                .await;
            let committed = match committed {
                Ok(c) => c,
                Err(e) => {
                    // The commit may or may not have happened; the intent
                    // record is what tells, and the next start resolves it.
                    return Err(ServiceError::Internal(e));
                }
            };
            Ok::<_, ServiceError>(committed)
        });
        let committed = task
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("upload task failed: {e}")))??;

        let (replaced, record) = match committed {
            CommitOutcome::Created(v) => (false, v),
            CommitOutcome::Replaced(v) => {
                self.reclaim_soon();
                (true, v)
            }
            CommitOutcome::OverLimit => {
                self.reclaim_soon();
                return Err(over_limit(storage_limit.map_or(0, |l| l.bytes)));
            }
            CommitOutcome::ScopeRetired | CommitOutcome::Superseded => {
                self.reclaim_soon();
                return Err(ServiceError::Conflict(
                    "the connection was purged while this upload was in progress".into(),
                ));
            }
        };
        let view = self.variant_view(scope, &ctx.settings, &media_id, record);
        Ok((replaced, view))
    }
}

fn over_limit(limit: u64) -> ServiceError {
    ServiceError::InsufficientStorage(format!(
        "the connection's storage limit of {limit} bytes does not leave room for this upload \
         (storageLimitBytes, storageLimitPurgeStrategy block_new)"
    ))
}

fn too_large(limit: u64) -> ServiceError {
    ServiceError::PayloadTooLarge(format!(
        "the upload is larger than the maximum of {limit} bytes (--max-upload-bytes)"
    ))
}

#[cfg(test)]
mod tests {
    use super::media_content_type;

    #[test]
    fn content_types_are_normalised_and_must_be_media() {
        assert_eq!(
            media_content_type("Image/JPEG; q=1").as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(
            media_content_type("video/mp4").as_deref(),
            Some("video/mp4")
        );
        for bad in [
            "application/json",
            "text/html",
            "image",
            "image/",
            "/jpeg",
            "image/jp eg",
        ] {
            assert!(media_content_type(bad).is_none(), "{bad:?}");
        }
    }
}
