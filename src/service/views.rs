//! Turning catalog records into the API's JSON views: signed URLs and
//! `expiresAt` are computed here, from the connection's effective settings.

use crate::catalog::{MediaRecord, ScopeId, VariantRecord};
use crate::model::time::{DAY_MS, now_ms};
use crate::model::views::{MediaItemView, VariantView};
use crate::model::{Label, MediaId, MediaType, VariantStatus, VaultPlusSettings};

use super::VaultService;
use super::signing::{Grant, UrlSigner};

/// The instant a variant becomes due for eviction (docs/reference/DECISIONS.md).
pub fn expires_at(v: &VariantRecord, s: &VaultPlusSettings) -> i64 {
    if v.status != VariantStatus::Stored {
        return v.created_at + DAY_MS;
    }
    let by_age = (s.retention_days > 0)
        .then(|| v.stored_at.unwrap_or(v.created_at) + s.retention_days as i64 * DAY_MS);
    // Unused since the last access or, if later, since it was stored.
    let by_access = (s.access_expiry_days > 0).then(|| {
        v.last_accessed_at.max(v.stored_at.unwrap_or(i64::MIN))
            + s.access_expiry_days as i64 * DAY_MS
    });
    match (by_age, by_access) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => v.created_at + 365 * DAY_MS,
    }
}

impl VaultService {
    pub(super) fn media_url(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        generation: i64,
        ttl: u64,
    ) -> String {
        let now_s = (now_ms() / 1000) as u64;
        let token = self.signer.sign(&Grant {
            scope_id: scope,
            media_id: media.clone(),
            label: label.clone(),
            generation,
            expires_at: UrlSigner::expiry_for(now_s, ttl),
        });
        format!("{}/v2/media/{token}", self.config.public_url)
    }

    pub(super) fn variant_view(
        &self,
        scope: ScopeId,
        settings: &VaultPlusSettings,
        media_id: &MediaId,
        v: VariantRecord,
    ) -> VariantView {
        // Records come from the catalog, which only holds validated labels.
        let label = Label::parse(&v.label).expect("catalog holds valid labels");
        VariantView {
            status: v.status,
            expires_at: expires_at(&v, settings),
            url: self.media_url(
                scope,
                media_id,
                &label,
                v.generation,
                settings.presigned_url_ttl_seconds,
            ),
            quality: v.label,
            size_bytes: v.size_bytes,
            content_type: v.content_type,
            access_count: v.access_count,
            created_at: v.created_at,
            stored_at: v.stored_at,
            last_accessed_at: v.last_accessed_at,
        }
    }

    pub(super) fn item_view(
        &self,
        scope: ScopeId,
        settings: &VaultPlusSettings,
        m: MediaRecord,
    ) -> MediaItemView {
        let media_id = MediaId::parse(&m.media_id).expect("catalog holds valid media IDs");
        let media = m
            .variants
            .into_iter()
            .map(|v| {
                (
                    v.label.clone(),
                    self.variant_view(scope, settings, &media_id, v),
                )
            })
            .collect();
        MediaItemView {
            id: m.media_id,
            media_type: m.media_type,
            duration: if m.media_type == MediaType::Image {
                None
            } else {
                m.duration
            },
            media,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(stored_at: i64, last: i64) -> VariantRecord {
        VariantRecord {
            label: "full".into(),
            status: VariantStatus::Stored,
            size_bytes: 1,
            content_type: "image/jpeg".into(),
            access_count: 0,
            created_at: 0,
            stored_at: Some(stored_at),
            last_accessed_at: last,
            blob_key: None,
            checksum: None,
            origin: crate::model::observed::Origin::Upload,
            upstream_url: None,
            upstream_size: None,
            last_error: None,
            generation: 0,
        }
    }

    #[test]
    fn expiry_follows_the_earliest_policy() {
        let mut s = VaultPlusSettings::default();
        assert_eq!(expires_at(&stored(10, 10), &s), 365 * DAY_MS);
        s.retention_days = 30;
        assert_eq!(expires_at(&stored(10, 10), &s), 10 + 30 * DAY_MS);
        s.access_expiry_days = 7;
        assert_eq!(expires_at(&stored(10, 20), &s), 20 + 7 * DAY_MS);
        let mut pending = stored(10, 10);
        pending.status = VariantStatus::Pending;
        assert_eq!(expires_at(&pending, &s), DAY_MS);
    }
}
