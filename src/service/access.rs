//! Access counting off the hot path: hits are summed in memory and written
//! in one catalog transaction per flush (every second, and on shutdown),
//! instead of a write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::{AccessHit, Catalog, ScopeId};

type Key = (ScopeId, String, String);

#[derive(Clone, Default)]
pub struct AccessRecorder {
    pending: Arc<Mutex<HashMap<Key, (u64, i64)>>>,
}

impl AccessRecorder {
    pub fn hit(&self, scope: ScopeId, media: &str, label: &str, at: i64) {
        let mut map = self.pending.lock().expect("access map lock poisoned");
        let entry = map
            .entry((scope, media.to_owned(), label.to_owned()))
            .or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    /// Hits on a variant not yet written to the catalog.
    pub fn unflushed(&self, scope: ScopeId, media: &str, label: &str) -> u64 {
        let map = self.pending.lock().expect("access map lock poisoned");
        map.get(&(scope, media.to_owned(), label.to_owned()))
            .map_or(0, |(n, _)| *n)
    }

    /// Writes what has accumulated. On failure the hits are kept for the
    /// next flush, so none is lost to a passing catalog error.
    pub async fn flush(&self, catalog: &dyn Catalog) -> anyhow::Result<usize> {
        let taken: Vec<(Key, (u64, i64))> = {
            let mut map = self.pending.lock().expect("access map lock poisoned");
            map.drain().collect()
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let hits: Vec<AccessHit> = taken
            .iter()
            .map(|((scope, media, label), (count, last))| AccessHit {
                scope_id: *scope,
                media_id: media.clone(),
                label: label.clone(),
                count: *count,
                last_at: *last,
            })
            .collect();
        if let Err(e) = catalog.record_accesses(&hits).await {
            let mut map = self.pending.lock().expect("access map lock poisoned");
            for (key, (count, last)) in taken {
                let entry = map.entry(key).or_insert((0, last));
                entry.0 += count;
                entry.1 = entry.1.max(last);
            }
            return Err(e);
        }
        Ok(hits.len())
    }
}
