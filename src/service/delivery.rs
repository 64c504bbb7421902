//! Serving bytes by signed URL. The token is the credential: no API key.
//! Any token that is malformed, forged or expired gets the same 403, which
//! says nothing about whether the media exists; a valid token whose variant
//! was deleted, evicted, purged or replaced gets 404 at once, even once the
//! same media and label are stored anew (the token names the variant's
//! generation, which the new row does not have). A variant that is known but not
//! stored is streamed from the upstream (the media proxy), and enough such
//! accesses queue it for storing when the connection's rules say so.

use futures::TryStreamExt;

use crate::blobs::ByteStream;
use crate::catalog::{QueueOutcome, VariantRecord};
use crate::model::time::now_ms;
use crate::model::views::QueueResponse;
use crate::model::{MediaType, VariantStatus};
use crate::upstream::FetchError;

use super::signing::{Grant, TokenError};
use super::{ConnectionContext, Principal, ServiceError, ServiceResult, VaultService};

pub struct Delivery {
    pub grant: Grant,
    pub variant: VariantRecord,
}

impl Delivery {
    pub fn is_stored(&self) -> bool {
        self.variant.status == VariantStatus::Stored
    }
}

pub struct DeliveryBody {
    /// Bytes this body holds, when known.
    pub len: Option<u64>,
    pub content_type: String,
    pub body: ByteStream,
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("Media not found".into())
}

impl VaultService {
    /// Checks the token and finds the variant it names.
    pub async fn resolve_media_url(&self, token: &str) -> ServiceResult<Delivery> {
        let now_s = (now_ms() / 1000) as u64;
        let mut verified = self.signer.verify(token, now_s);
        if verified == Err(TokenError::UnknownKey) && self.signer.may_reload(now_ms()) {
            // Perhaps signed by a node that already took a rotated key.
            self.reload_signing_keys().await?;
            verified = self.signer.verify(token, now_s);
        }
        if verified.is_ok() && self.confirm_signing_keys().await? {
            verified = self.signer.verify(token, now_s);
        }
        let grant = verified.map_err(|e| {
            tracing::debug!(reason = ?e, "media URL refused");
            ServiceError::Forbidden("Invalid or expired media URL".into())
        })?;
        let variant = self
            .catalog
            .current_variant(grant.scope_id, &grant.media_id, &grant.label)
            .await?
            .filter(|v| v.generation == grant.generation)
            .ok_or_else(not_found)?;
        Ok(Delivery { grant, variant })
    }

    /// Opens stored bytes (all, or `len` bytes from `offset`).
    pub async fn open_media(
        &self,
        d: &Delivery,
        range: Option<(u64, u64)>,
    ) -> ServiceResult<DeliveryBody> {
        let key = d.variant.blob_key.as_deref().ok_or_else(not_found)?;
        let Some(read) = self.blobs.get(key, range).await? else {
            // Deleted, replaced or evicted between the look-up and now, and
            // its bytes already reclaimed: gone (404, this URL no longer
            // serves), replaced within the generation (409: the headers
            // already describe the old bytes), or, if the record still
            // names this very blob, bytes lost (500).
            let now = self
                .catalog
                .current_variant(d.grant.scope_id, &d.grant.media_id, &d.grant.label)
                .await?
                .filter(|v| v.generation == d.grant.generation);
            return Err(match now.and_then(|v| v.blob_key) {
                Some(k) if k == key => ServiceError::Internal(anyhow::anyhow!(
                    "blob {key} of a stored variant is missing"
                )),
                Some(_) => ServiceError::Conflict(
                    "the media was replaced while it was being served; request it again".into(),
                ),
                None => not_found(),
            });
        };
        Ok(DeliveryBody {
            len: Some(read.len),
            content_type: d.variant.content_type.clone(),
            body: read.body,
        })
    }

    async fn owner_of(&self, d: &Delivery) -> ServiceResult<ConnectionContext> {
        let c = self
            .catalog
            .connection_of_scope(d.grant.scope_id)
            .await?
            .ok_or_else(not_found)?;
        let who = Principal {
            org_id: c.org_id,
            key_id: String::new(),
        };
        // Removed (with its organization) since the look-up: its media is
        // gone. A media URL carries no key or connection header, so a 401
        // would blame something the client did not send.
        self.connection(&who, &c.id).await.map_err(|e| match e {
            ServiceError::ConnectionNotFound | ServiceError::Unauthorized => not_found(),
            e => e,
        })
    }

    /// Streams a variant that is not stored from the upstream.
    pub async fn proxy_media(&self, d: &Delivery) -> ServiceResult<DeliveryBody> {
        let url = d.variant.upstream_url.clone().ok_or_else(not_found)?;
        let upstream = self.upstream()?.clone();
        let resp = match upstream.fetch(&url).await {
            Err(FetchError::Expired) => {
                let fresh = self.refreshed_url(d).await?;
                upstream.fetch(&fresh).await
            }
            other => other,
        };
        let resp = resp.map_err(|e| match e {
            FetchError::Gone => not_found(),
            other => ServiceError::Upstream(other.to_string()),
        })?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| MediaType::from_content_type(v).is_some())
            .map(str::to_owned)
            .unwrap_or_else(|| d.variant.content_type.clone());
        Ok(DeliveryBody {
            len: resp.content_length(),
            content_type,
            body: Box::pin(resp.bytes_stream().map_err(std::io::Error::other)),
        })
    }

    async fn refreshed_url(&self, d: &Delivery) -> ServiceResult<String> {
        let ctx = self.owner_of(d).await?;
        let media = self
            .catalog
            .media(d.grant.scope_id, std::slice::from_ref(&d.grant.media_id))
            .await?
            .pop()
            .ok_or_else(not_found)?;
        let list = media
            .list_hint
            .ok_or_else(|| ServiceError::Upstream("the upstream URL expired".into()))?;
        self.refresh_urls(&ctx, &list).await?;
        self.catalog
            .current_variant(d.grant.scope_id, &d.grant.media_id, &d.grant.label)
            .await?
            .and_then(|v| v.upstream_url)
            .ok_or_else(not_found)
    }

    /// Counts one access (successful GET) of the variant, and for a variant
    /// served from the upstream queues storing once the connection's
    /// auto-cache rule is met.
    pub async fn count_access(&self, d: &Delivery) {
        self.access.hit(
            d.grant.scope_id,
            d.grant.media_id.as_str(),
            d.grant.label.as_str(),
            now_ms(),
        );
        if d.variant.status != VariantStatus::EdgeOnly {
            return;
        }
        let Ok(ctx) = self.owner_of(d).await else {
            return;
        };
        let s = &ctx.settings;
        // Counts are written in batches: add the hits not written yet
        // (this one included).
        let accesses = d.variant.access_count
            + self.access.unflushed(
                d.grant.scope_id,
                d.grant.media_id.as_str(),
                d.grant.label.as_str(),
            );
        if ctx.connection.enabled
            && s.auto_cache_vault
            && accesses >= s.min_access_count_vault
            && let Err(e) = self.queue_delivery(d).await
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot queue an auto-cached variant");
        }
    }

    /// Queues storing of the delivered variant and wakes the workers.
    async fn queue_delivery(&self, d: &Delivery) -> ServiceResult<QueueOutcome> {
        let out = self
            .catalog
            .queue_variant(
                d.grant.scope_id,
                &d.grant.media_id,
                &d.grant.label,
                now_ms(),
            )
            .await?;
        if out == QueueOutcome::Queued {
            self.store_soon();
        }
        Ok(out)
    }

    /// `POST` on a media URL: store this variant now, whatever the rules.
    /// Answers whether it was queued, and the response body.
    pub async fn queue_media_url(&self, token: &str) -> ServiceResult<(bool, QueueResponse)> {
        let d = self.resolve_media_url(token).await?;
        let outcome = if d.is_stored() {
            QueueOutcome::Stored
        } else {
            let ctx = self.owner_of(&d).await?;
            if !ctx.connection.enabled {
                return Err(ServiceError::vault_disabled());
            }
            self.queue_delivery(&d).await?
        };
        match outcome {
            QueueOutcome::Stored => Ok((
                false,
                QueueResponse {
                    queued: false,
                    status: VariantStatus::Stored,
                },
            )),
            QueueOutcome::Queued => Ok((
                true,
                QueueResponse {
                    queued: true,
                    status: VariantStatus::Pending,
                },
            )),
            QueueOutcome::Unknown => Err(not_found()),
        }
    }
}
