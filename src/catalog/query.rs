//! The media query the catalog answers: filters, one sort, a keyset bound.

use serde::{Deserialize, Serialize};

use super::MediaRecord;
use crate::model::{MediaType, VariantStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SortKey {
    #[default]
    CreatedAtDesc,
    CreatedAtAsc,
    CachedAtDesc,
    CachedAtAsc,
    DurationDesc,
    DurationAsc,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        Self::CreatedAtDesc,
        Self::CreatedAtAsc,
        Self::CachedAtDesc,
        Self::CachedAtAsc,
        Self::DurationDesc,
        Self::DurationAsc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAtDesc => "createdAt_desc",
            Self::CreatedAtAsc => "createdAt_asc",
            Self::CachedAtDesc => "cachedAt_desc",
            Self::CachedAtAsc => "cachedAt_asc",
            Self::DurationDesc => "duration_desc",
            Self::DurationAsc => "duration_asc",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn descending(self) -> bool {
        matches!(
            self,
            Self::CreatedAtDesc | Self::CachedAtDesc | Self::DurationDesc
        )
    }

    /// The value an item sorts by. Missing values sort last in either
    /// direction, so they take the extreme that comes last.
    pub fn value_of(self, item: &MediaRecord) -> SortValue {
        let desc = self.descending();
        match self {
            Self::CreatedAtDesc | Self::CreatedAtAsc => SortValue::Int(item.created_at),
            Self::CachedAtDesc | Self::CachedAtAsc => SortValue::Int(
                item.cached_at
                    .unwrap_or(if desc { i64::MIN } else { i64::MAX }),
            ),
            Self::DurationDesc | Self::DurationAsc => SortValue::Float(
                item.duration
                    .unwrap_or(if desc { f64::MIN } else { f64::MAX }),
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum SortValue {
    Int(i64),
    Float(f64),
}

/// Where the previous page ended: the last item's sort value and ID key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyset {
    pub value: SortValue,
    pub sort_id: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaQuery {
    pub status: Option<VariantStatus>,
    pub media_type: Option<MediaType>,
    pub content_type: Option<String>,
    pub duration_min: Option<f64>,
    pub duration_max: Option<f64>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub cached_from: Option<i64>,
    pub cached_to: Option<i64>,
    pub sort: SortKey,
    /// Page size, 1-100.
    pub limit: u32,
    pub after: Option<Keyset>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryPage {
    pub items: Vec<MediaRecord>,
    /// Set when more items follow the last one.
    pub next: Option<Keyset>,
}
