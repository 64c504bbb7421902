//! A cache for the look-up every media URL request makes (is this variant
//! still stored in a current scope?), valid only while nothing was written
//! to the catalog since it was filled. Every entry is stamped with the
//! catalog's state when its read began: this process's commit count (exact
//! for its own writes: a delete or purge answered by this server is seen by
//! the next request), and the changes of other connections or processes
//! (the CLI on the same data directory) that the data-version poller has
//! seen, within [`super::data_version::POLL_EVERY`]. A look-up whose stamp
//! differs is a miss.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::data_version::DataVersion;
use crate::catalog::{ScopeId, VariantRecord};

/// Entries kept at most; the cache is dropped whole when full (simple, and
/// a miss only costs the query the cache saves).
const MAX_ENTRIES: usize = 50_000;

pub type LookupKey = (ScopeId, String, String);
/// What identifies the catalog's state: commits by this process, and the
/// changes of other connections seen.
pub type Stamp = (u64, u64);

pub struct LookupCache {
    version: DataVersion,
    commits: AtomicU64,
    entries: Mutex<HashMap<LookupKey, (Stamp, Option<VariantRecord>)>>,
}

impl LookupCache {
    pub fn new(version: DataVersion) -> Self {
        Self {
            version,
            commits: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Call after every commit of this process.
    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// The current state stamp; take it *before* reading the catalog, so
    /// that a commit landing during the read makes the entry stale.
    pub fn stamp(&self) -> Stamp {
        (self.commits.load(Ordering::SeqCst), self.version.ticks())
    }

    pub fn get(&self, key: &LookupKey, now: &Stamp) -> Option<Option<VariantRecord>> {
        let entries = self.entries.lock().expect("lookup cache lock poisoned");
        entries
            .get(key)
            .filter(|(stamp, _)| stamp == now)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: LookupKey, stamp: Stamp, value: Option<VariantRecord>) {
        let mut entries = self.entries.lock().expect("lookup cache lock poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (stamp, value));
    }
}
