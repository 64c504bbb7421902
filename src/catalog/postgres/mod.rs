//! The shared catalog: PostgreSQL, for several vaultplus nodes on one
//! database, on the shared SQL catalog (`catalog/sql/`) with the PostgreSQL
//! dialect (`dialect.rs`).

mod dialect;
mod lease;
mod memory;
mod notify;
mod revocations;
// The shared SQL catalog, compiled for this backend's `dialect` (which it
// reaches as `super::dialect`). Loading one file as a module of each
// backend is the point: one body of SQL, monomorphic per database, with no
// trait bounds over sqlx's database types.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use crate::catalog::Result;

pub use dialect::MIGRATION_LOCK;
pub use sql::SqlCatalog as PostgresCatalog;

impl PostgresCatalog {
    /// Connects to the database at `url` and applies pending migrations
    /// first (see `dialect::Stores::connect`).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        Ok(Self::new(
            dialect::Stores::connect(url, max_connections).await?,
        ))
    }

    /// Whether the database holds a catalog; creates and changes nothing.
    pub async fn holds_catalog(url: &str) -> Result<bool> {
        dialect::Stores::holds_catalog(url).await
    }
}
