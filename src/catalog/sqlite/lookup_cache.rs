//! A cache for the look-up every media URL request makes (is this variant
//! still stored in a current scope?), valid only while nothing was written
//! to the catalog since it was filled. Deletes and purges through this
//! server invalidate it exactly (a counter bumped after every commit);
//! writes by another process (the CLI on the same data directory) are seen
//! through the WAL file's size and modification time, which every commit
//! changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::catalog::{ScopeId, VariantRecord};

/// Entries kept at most; the cache is dropped whole when full (simple, and
/// a miss only costs the query the cache saves).
const MAX_ENTRIES: usize = 50_000;

type Key = (ScopeId, String, String);
/// What identifies the catalog's state: commits by this process, and the
/// WAL file as other processes leave it.
type Stamp = (u64, Option<(u64, SystemTime)>);

pub struct LookupCache {
    wal: PathBuf,
    commits: AtomicU64,
    entries: Mutex<HashMap<Key, (Stamp, Option<VariantRecord>)>>,
}

impl LookupCache {
    pub fn new(db: &std::path::Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: PathBuf::from(wal),
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
        let commits = self.commits.load(Ordering::SeqCst);
        // A stat of a hot inode, not a disk read.
        let wal = std::fs::metadata(&self.wal)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        (commits, wal)
    }

    pub fn get(&self, key: &Key, now: &Stamp) -> Option<Option<VariantRecord>> {
        let entries = self.entries.lock().expect("lookup cache lock poisoned");
        entries
            .get(key)
            .filter(|(stamp, _)| stamp == now)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: Key, stamp: Stamp, value: Option<VariantRecord>) {
        let mut entries = self.entries.lock().expect("lookup cache lock poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (stamp, value));
    }
}
