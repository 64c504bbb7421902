//! The catalog conformance suite against the embedded SQLite catalog.

use std::sync::Arc;

use vaultplus::catalog::conformance::Fixture;
use vaultplus::catalog::sqlite::SqliteCatalog;

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    Fixture::new(Arc::new(catalog), dir)
}

vaultplus::catalog_conformance!(fresh());
vaultplus::catalog_conformance!(embedded fresh());
