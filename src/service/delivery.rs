//! Serving bytes by signed URL. The token is the credential: no API key.
//! Any token that is malformed, forged or expired gets the same 403, which
//! says nothing about whether the media exists; a valid token whose variant
//! was deleted or purged gets 404 at once.

use crate::blobs::ByteStream;
use crate::catalog::VariantRecord;
use crate::model::time::now_ms;

use super::signing::Grant;
use super::{ServiceError, ServiceResult, VaultService};

pub struct Delivery {
    pub grant: Grant,
    pub variant: VariantRecord,
    /// Total size of the blob.
    pub size: u64,
}

pub struct DeliveryBody {
    pub len: u64,
    pub body: ByteStream,
}

impl VaultService {
    /// Checks the token and finds the variant it names.
    pub async fn resolve_media_url(&self, token: &str) -> ServiceResult<Delivery> {
        let now_s = (now_ms() / 1000) as u64;
        let grant = self.signer.verify(token, now_s).map_err(|e| {
            tracing::debug!(reason = ?e, "media URL refused");
            ServiceError::Forbidden("Invalid or expired media URL".into())
        })?;
        let variant = self
            .catalog
            .current_variant(grant.scope_id, &grant.media_id, &grant.label)
            .await?
            .ok_or_else(|| ServiceError::NotFound("Media not found".into()))?;
        Ok(Delivery {
            size: variant.size_bytes,
            grant,
            variant,
        })
    }

    /// Opens the bytes (all, or `len` bytes from `offset`).
    pub async fn open_media(
        &self,
        d: &Delivery,
        range: Option<(u64, u64)>,
    ) -> ServiceResult<DeliveryBody> {
        let key = d
            .variant
            .blob_key
            .as_deref()
            .ok_or_else(|| ServiceError::NotFound("Media not found".into()))?;
        let read = self.blobs.get(key, range).await?.ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("blob {key} of a stored variant is missing"))
        })?;
        Ok(DeliveryBody {
            len: read.len,
            body: read.body,
        })
    }

    /// Counts one access (successful GET) of the variant.
    pub fn count_access(&self, d: &Delivery) {
        self.access.hit(
            d.grant.scope_id,
            d.grant.media_id.as_str(),
            d.grant.label.as_str(),
            now_ms(),
        );
    }
}
