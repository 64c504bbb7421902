//! The blob store conformance suite against the local directory store,
//! plain and behind the in-memory cache of small blobs.

use std::sync::Arc;

use vaultplus::blobs::{BlobStore, CachedBlobStore, LocalBlobStore};
use vaultplus_conformance::blobs::Fixture;

async fn fresh(memory_cache: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).await.unwrap();
    let store: Arc<dyn BlobStore> = if memory_cache > 0 {
        Arc::new(CachedBlobStore::new(store, memory_cache))
    } else {
        Arc::new(store)
    };
    Fixture::new(store, dir)
}

vaultplus_conformance::blob_conformance!(fresh(0));

mod with_memory_cache {
    use super::*;

    vaultplus_conformance::blob_conformance!(fresh(64 * 1024 * 1024));
}
