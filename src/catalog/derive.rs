//! Values every backend derives the same way from variant records, so the
//! rules live once, outside SQL.

use super::{ScopeTotals, VariantRecord};
use crate::model::{MediaType, VariantStatus};

/// A variant's contribution to its scope's counters.
pub fn contribution(v: Option<&VariantRecord>) -> (i64, i64, i64) {
    match v {
        None => (0, 0, 0),
        Some(v) => {
            let live = i64::from(v.status != VariantStatus::Removed);
            let stored = v.status == VariantStatus::Stored;
            (
                live,
                i64::from(stored),
                if stored { v.size_bytes as i64 } else { 0 },
            )
        }
    }
}

/// Change in (live, stored, bytes) when `before` becomes `after`.
pub fn counter_delta(
    before: Option<&VariantRecord>,
    after: Option<&VariantRecord>,
) -> (i64, i64, i64) {
    let (a0, a1, a2) = contribution(before);
    let (b0, b1, b2) = contribution(after);
    (b0 - a0, b1 - a1, b2 - a2)
}

/// Columns of the media row that follow from its variants.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaDerived {
    pub media_type: Option<MediaType>,
    pub cached_at: Option<i64>,
    pub live_count: i64,
}

/// The item's type comes from its `full` variant, else from any variant;
/// its cached time is the latest `stored_at`.
pub fn media_derived(variants: &[VariantRecord]) -> MediaDerived {
    let typed = variants
        .iter()
        .find(|v| v.label == "full")
        .or_else(|| variants.iter().min_by(|a, b| a.label.cmp(&b.label)));
    MediaDerived {
        media_type: typed.and_then(|v| MediaType::from_content_type(&v.content_type)),
        cached_at: variants
            .iter()
            .filter(|v| v.status == VariantStatus::Stored)
            .filter_map(|v| v.stored_at)
            .max(),
        live_count: variants
            .iter()
            .filter(|v| v.status != VariantStatus::Removed)
            .count() as i64,
    }
}

/// Totals recomputed from scratch (consistency checks and tests).
pub fn totals_of<'a>(variants: impl IntoIterator<Item = &'a VariantRecord>) -> ScopeTotals {
    let mut t = ScopeTotals::default();
    for v in variants {
        let (live, stored, bytes) = contribution(Some(v));
        t.live_count += live as u64;
        t.stored_count += stored as u64;
        t.stored_bytes += bytes as u64;
    }
    t
}
