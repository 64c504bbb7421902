//! Small blobs kept in memory, within a fixed budget. A blob key names
//! immutable bytes (a replaced variant gets a new key), so a cached copy can
//! never be stale; whether a URL may still be served is the catalog's call,
//! made before the bytes are asked for. Serving a hot thumbnail then costs
//! no trip to the blocking pool.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::metrics::names;

/// Blobs larger than this are never cached: they stream from disk.
pub const MAX_CACHED_BLOB: u64 = 256 * 1024;

pub struct SmallBlobCache {
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    used: u64,
    entries: HashMap<String, Bytes>,
}

impl Inner {
    /// The cache's size as metrics, set under its lock so they agree.
    fn report(&self) {
        if crate::metrics::enabled() {
            metrics::gauge!(names::BLOB_CACHE_BYTES).set(self.used as f64);
            metrics::gauge!(names::BLOB_CACHE_ENTRIES).set(self.entries.len() as f64);
        }
    }
}

impl SmallBlobCache {
    /// A cache holding at most `budget` bytes (0: disabled).
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        if self.budget == 0 {
            return None;
        }
        self.inner
            .lock()
            .expect("blob cache lock poisoned")
            .entries
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: &str, bytes: Bytes) {
        let size = bytes.len() as u64;
        if self.budget == 0 || size > MAX_CACHED_BLOB || size > self.budget {
            return;
        }
        let mut inner = self.inner.lock().expect("blob cache lock poisoned");
        if inner.used + size > self.budget {
            // Make room by dropping entries until a quarter of the budget is
            // free: cheap, and hot blobs come back on their next request.
            let target = self.budget * 3 / 4;
            let keys: Vec<String> = inner.entries.keys().cloned().collect();
            for k in keys {
                if inner.used + size <= target {
                    break;
                }
                if let Some(b) = inner.entries.remove(&k) {
                    inner.used -= b.len() as u64;
                }
            }
        }
        if let Some(old) = inner.entries.insert(key.to_owned(), bytes) {
            inner.used -= old.len() as u64;
        }
        inner.used += size;
        inner.report();
    }

    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.lock().expect("blob cache lock poisoned");
        if let Some(b) = inner.entries.remove(key) {
            inner.used -= b.len() as u64;
            inner.report();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget() {
        let c = SmallBlobCache::new(1000);
        for i in 0..50 {
            c.put(&i.to_string(), Bytes::from(vec![0u8; 100]));
        }
        let inner = c.inner.lock().unwrap();
        assert!(inner.used <= 1000);
        assert_eq!(
            inner.used,
            inner.entries.values().map(|b| b.len() as u64).sum::<u64>()
        );
        drop(inner);
        c.put("big", Bytes::from(vec![0u8; 2000]));
        assert!(c.get("big").is_none());
        assert!(SmallBlobCache::new(0).get("x").is_none());
    }
}
