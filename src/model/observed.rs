//! What the upstream said about one media item, already mapped to vaultplus
//! terms and filtered by the connection's settings (see `admission`).

use super::{MediaId, MediaType};

/// Where a variant's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// PUT by a client.
    Upload,
    /// Fetched from the upstream rendition URL.
    Upstream,
    /// Made by vaultplus from the item's `full` variant (a thumbnail).
    Derived,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Upstream => "upstream",
            Self::Derived => "derived",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "upload" => Some(Self::Upload),
            "upstream" => Some(Self::Upstream),
            "derived" => Some(Self::Derived),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedVariant {
    pub label: String,
    pub origin: Origin,
    /// Upstream rendition URL (None for derived variants).
    pub url: Option<String>,
    /// Byte size the upstream announced, if any.
    pub size: Option<u64>,
    /// Provisional content type until the bytes arrive.
    pub content_type: String,
    /// True: store it. False: only known (served through the proxy as
    /// `edge_only`, stored once accessed often enough).
    pub store: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedMedia {
    pub media_id: MediaId,
    pub media_type: MediaType,
    pub duration: Option<f64>,
    /// Upstream `full` size plus URL path (query ignored): when it changes,
    /// the cached copy is stale.
    pub fingerprint: String,
    /// False when the settings exclude the item (its type is not cached):
    /// it is seen but nothing of it is recorded.
    pub admitted: bool,
    pub variants: Vec<ObservedVariant>,
}
