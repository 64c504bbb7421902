//! The catalog conformance suite against the embedded SQLite catalog.

use std::sync::Arc;

use vaultplus::catalog::sqlite::SqliteCatalog;
use vaultplus_conformance::catalog::Fixture;

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    Fixture::new(Arc::new(catalog), dir)
}

vaultplus_conformance::catalog_conformance!(fresh());
vaultplus_conformance::catalog_conformance!(embedded fresh());
