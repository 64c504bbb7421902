//! The embedded catalog: one SQLite file in WAL mode, on the shared SQL
//! catalog (`catalog/sql/`) with the SQLite dialect (`dialect.rs`).

mod data_version;
mod dialect;
mod lookup_cache;
pub mod snapshot;
// The shared SQL catalog, compiled for this backend's `dialect` (which it
// reaches as `super::dialect`). Loading one file as a module of each
// backend is the point: one body of SQL, monomorphic per database, with no
// trait bounds over sqlx's database types.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use std::path::Path;

use crate::catalog::Result;

pub use sql::SqlCatalog as SqliteCatalog;

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(dialect::Stores::open(path).await?))
    }

    /// Whether the file holds a catalog; creates and changes nothing.
    pub async fn holds_catalog(path: &Path) -> Result<bool> {
        dialect::Stores::holds_catalog(path).await
    }
}
