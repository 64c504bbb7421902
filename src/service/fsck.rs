//! `fsck`: does the catalog describe the bytes actually held? Checks each
//! current connection's counters against its records, every stored
//! variant's blob (present, right size), and every blob against the catalog
//! (no orphan). Safe beside a running server: blobs are listed before the
//! catalog is read, and every finding is checked again before it is
//! reported or repaired.

use std::collections::{HashMap, HashSet};

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, ScopeTotals, StoredBlob};
use crate::model::time::now_ms;
use crate::model::{Label, MediaId};

#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A connection's counters disagree with its records.
    Counters {
        connection: String,
        counters: ScopeTotals,
        actual: ScopeTotals,
    },
    /// A stored variant whose blob is gone.
    MissingBlob(StoredBlob),
    /// A stored variant whose blob has another size.
    WrongSize { variant: StoredBlob, actual: u64 },
    /// A blob no record, reclaim job or upload in progress accounts for.
    Orphan { key: String, size: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Counters {
                connection,
                counters,
                actual,
            } => write!(
                f,
                "connection {connection}: counters say {} variants, {} stored, {} bytes; records say {}, {}, {}",
                counters.live_count,
                counters.stored_count,
                counters.stored_bytes,
                actual.live_count,
                actual.stored_count,
                actual.stored_bytes
            ),
            Problem::MissingBlob(v) => write!(
                f,
                "media {} variant {}: blob {} is missing",
                v.media_id, v.label, v.blob_key
            ),
            Problem::WrongSize { variant: v, actual } => write!(
                f,
                "media {} variant {}: blob {} holds {actual} bytes, the record says {}",
                v.media_id, v.label, v.blob_key, v.size_bytes
            ),
            Problem::Orphan { key, size } => {
                write!(f, "blob {key} ({size} bytes) belongs to no record")
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub variants_checked: u64,
    pub blobs_checked: u64,
    pub problems: Vec<Problem>,
    /// What `--repair` did, one line per problem.
    pub repairs: Vec<String>,
}

/// Progress callback: (done, total) of the current phase's name.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

const PAGE: u64 = 1000;

pub async fn fsck(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    repair: bool,
    progress: Progress<'_>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    // Blobs first: a blob written after this listing is not judged, and one
    // listed here already had its intent or record (both come before the
    // bytes).
    let held: HashMap<String, u64> = blobs.list().await?.into_iter().collect();
    report.blobs_checked = held.len() as u64;

    // Stored variants against the blobs.
    let mut seen_keys: HashSet<String> = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = catalog.stored_blobs(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.blob_key.clone());
        for v in page {
            report.variants_checked += 1;
            seen_keys.insert(v.blob_key.clone());
            match held.get(&v.blob_key) {
                Some(&size) if size == v.size_bytes => {}
                Some(&size) => report.problems.push(Problem::WrongSize {
                    variant: v,
                    actual: size,
                }),
                None => report.problems.push(Problem::MissingBlob(v)),
            }
        }
        progress("variants", report.variants_checked, 0);
    }
    // The server may be running: a variant committed after the listing,
    // or deleted or replaced since, is not a problem. Keep only findings
    // that hold when looked at again, blob and record both.
    let mut confirmed = Vec::new();
    for p in std::mem::take(&mut report.problems) {
        let v = match &p {
            Problem::MissingBlob(v) | Problem::WrongSize { variant: v, .. } => v,
            _ => unreachable!("only variant findings so far"),
        };
        let now_held = blobs.size(&v.blob_key).await?;
        let still_wrong = match &p {
            Problem::MissingBlob(_) => now_held.is_none(),
            _ => now_held.is_some_and(|n| n != v.size_bytes),
        };
        let (media, label) = (MediaId::parse(&v.media_id), Label::parse(&v.label));
        let (Ok(media), Ok(label)) = (media, label) else {
            continue;
        };
        let still = catalog.current_variant(v.scope_id, &media, &label).await?;
        let same = still.and_then(|s| s.blob_key).as_deref() == Some(v.blob_key.as_str());
        if still_wrong && same {
            confirmed.push(p);
        }
    }
    report.problems = confirmed;

    // Blobs against everything the catalog accounts for.
    let referenced: HashSet<String> = catalog.referenced_blob_keys().await?.into_iter().collect();
    let mut keys: Vec<(&String, &u64)> = held.iter().collect();
    keys.sort();
    for (i, (key, size)) in keys.iter().enumerate() {
        if !referenced.contains(*key) && !seen_keys.contains(*key) {
            report.problems.push(Problem::Orphan {
                key: (*key).clone(),
                size: **size,
            });
        }
        if i % 1000 == 0 {
            progress("blobs", i as u64, keys.len() as u64);
        }
    }

    // Counters last, after any repair of variants changed them.
    if repair {
        for p in &report.problems {
            report.repairs.push(repair_one(catalog, blobs, p).await?);
        }
    }
    for a in catalog.audit_scopes().await? {
        if a.counters == a.actual {
            continue;
        }
        let problem = Problem::Counters {
            connection: a.connection_id.clone(),
            counters: a.counters,
            actual: a.actual,
        };
        if repair {
            let (before, after) = catalog.repair_scope_totals(a.scope_id).await?;
            report.repairs.push(format!(
                "connection {}: counters set from {before:?} to {after:?}",
                a.connection_id
            ));
        }
        report.problems.push(problem);
    }
    Ok(report)
}

async fn repair_one(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    p: &Problem,
) -> anyhow::Result<String> {
    Ok(match p {
        Problem::MissingBlob(v) | Problem::WrongSize { variant: v, .. } => {
            // The bytes cannot be trusted: the variant becomes a `removed`
            // tombstone (a later sync or proxy hit stores it again) and its
            // blob, if any, is queued for deletion.
            let media = MediaId::parse(&v.media_id).map_err(anyhow::Error::msg)?;
            let label = Label::parse(&v.label).map_err(anyhow::Error::msg)?;
            catalog
                .evict_variant(v.scope_id, &media, &label, now_ms())
                .await?;
            format!("media {} variant {}: marked removed", v.media_id, v.label)
        }
        Problem::Orphan { key, .. } => {
            blobs.delete(key).await?;
            format!("blob {key}: deleted")
        }
        Problem::Counters { .. } => String::new(),
    })
}
