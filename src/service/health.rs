//! Whether this node can serve: the catalog answers and the blob store
//! takes a write. The report holds the causes (which may name paths, the
//! bucket or the endpoint); who may see them is the HTTP layer's call.

use super::VaultService;

pub struct HealthReport {
    pub catalog: Result<(), String>,
    pub blobs: Result<(), String>,
}

impl HealthReport {
    pub fn is_ok(&self) -> bool {
        self.catalog.is_ok() && self.blobs.is_ok()
    }
}

impl VaultService {
    /// Probes both stores at once. The S3 store caches its probe (a success
    /// for 5 s, a failure for 2 s), so frequent checks stay cheap.
    pub async fn health(&self) -> HealthReport {
        let (catalog, blobs) = tokio::join!(self.catalog.ping(), self.blobs.ping());
        let text = |r: anyhow::Result<()>| r.map_err(|e| format!("{e:#}"));
        HealthReport {
            catalog: text(catalog),
            blobs: text(blobs),
        }
    }
}
