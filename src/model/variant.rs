//! Variant cache states and media types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Cache state of one variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VariantStatus {
    EdgeOnly,
    Pending,
    Storing,
    Stored,
    Removed,
}

impl VariantStatus {
    pub const ALL: [VariantStatus; 5] = [
        Self::EdgeOnly,
        Self::Pending,
        Self::Storing,
        Self::Stored,
        Self::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdgeOnly => "edge_only",
            Self::Pending => "pending",
            Self::Storing => "storing",
            Self::Stored => "stored",
            Self::Removed => "removed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Media type, derived from the content type of the `full` (else any) variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Image,
    Video,
    Audio,
}

impl MediaType {
    pub const ALL: [MediaType; 3] = [Self::Image, Self::Video, Self::Audio];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// The media type a MIME type belongs to, if it is media at all.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let top = content_type.split('/').next()?.trim().to_ascii_lowercase();
        match top.as_str() {
            "image" => Some(Self::Image),
            "video" => Some(Self::Video),
            "audio" => Some(Self::Audio),
            _ => None,
        }
    }
}
