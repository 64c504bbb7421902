//! Values every backend derives the same way from variant records, so the
//! rules live once, outside SQL.

use super::{ScopeTotals, VariantRecord};
use crate::model::{MediaType, VariantStatus};

/// The change in a scope's counters when an item's variants `before`
/// become `after`.
pub fn counter_delta(before: &[VariantRecord], after: &[VariantRecord]) -> (i64, i64, i64) {
    let (b, a) = (totals_of(before), totals_of(after));
    let d = |b: u64, a: u64| a as i64 - b as i64;
    (
        d(b.live_count, a.live_count),
        d(b.stored_count, a.stored_count),
        d(b.stored_bytes, a.stored_bytes),
    )
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

/// What variant records count for in their scope's counters: live (any
/// status but `removed`), stored, and stored bytes. Consistency checks
/// recount with it too.
pub fn totals_of<'a>(variants: impl IntoIterator<Item = &'a VariantRecord>) -> ScopeTotals {
    let mut t = ScopeTotals::default();
    for v in variants {
        t.live_count += u64::from(v.status != VariantStatus::Removed);
        if v.status == VariantStatus::Stored {
            t.stored_count += 1;
            t.stored_bytes += v.size_bytes;
        }
    }
    t
}
