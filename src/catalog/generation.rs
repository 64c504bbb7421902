//! Variant generations: the number a media URL is bound to, so that a URL
//! serves only the bytes it was handed out for.
//!
//! A variant row takes a fresh generation when it is created, when it comes
//! back from `removed` (evicted, then listed or queued again), and when an
//! upload stores client bytes in it (a replace included: old URLs stop
//! serving the old bytes rather than start serving new ones). Fetching the
//! upstream rendition a URL was already proxying keeps the generation, so
//! a URL handed out while a variant was `edge_only` keeps working once it
//! is stored. Deleting or purging drops the row (or its whole scope), so
//! anything stored there later is a new row with a new generation.
//!
//! Generations are random 64-bit values rather than a counter: no sequence
//! to keep in step across backends or nodes, and a repeat for the same
//! variant has a chance of 2^-64.

use super::VariantRecord;
use crate::model::VariantStatus;

/// A generation never handed out before (with overwhelming probability).
pub fn fresh() -> i64 {
    rand::random()
}

/// The generation of `old` once its status becomes `status` by a listing
/// or a queue request (not an upload: see [`fresh`]).
pub fn after_revival(old: &VariantRecord, status: VariantStatus) -> i64 {
    if old.status == VariantStatus::Removed && status != VariantStatus::Removed {
        fresh()
    } else {
        old.generation
    }
}
