//! The blob store conformance suite against the local directory store,
//! plain and with its in-memory cache of small blobs.

use std::sync::Arc;

use vaultplus::blobs::LocalBlobStore;
use vaultplus::blobs::conformance::Fixture;

async fn fresh(memory_cache: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).await.unwrap();
    let store = if memory_cache > 0 {
        store.with_memory_cache(memory_cache)
    } else {
        store
    };
    Fixture::new(Arc::new(store), dir)
}

vaultplus::blob_conformance!(fresh(0));

mod with_memory_cache {
    use super::*;

    vaultplus::blob_conformance!(fresh(64 * 1024 * 1024));
}
