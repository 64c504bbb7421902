//! `backup.json`: what makes a directory a vaultplus backup. Written last,
//! so a backup cut short has none and `restore` refuses it.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::private_files;

pub const FILE: &str = "backup.json";
const FORMAT: &str = "vaultplus-backup";
/// The layout below: `catalog.sqlite` and `blobs/<key>`.
const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The vaultplus that took it.
    pub vaultplus_version: String,
    /// When the catalog was copied (ISO-8601).
    pub created_at: String,
    /// The installation it was taken from (paths, never credentials).
    pub source: String,
    pub catalog: CatalogFile,
    /// Stored variants of current connections, whose bytes are here.
    pub variants: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogFile {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn new(
        created_at: String,
        source: String,
        catalog: CatalogFile,
        counts: (u64, u64, u64),
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            vaultplus_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            source,
            catalog,
            variants: counts.0,
            blobs: counts.1,
            blob_bytes: counts.2,
        }
    }

    /// Writes `dir/backup.json`, private and on disk (through a temporary
    /// name, so it is never seen half-written).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = private_files::create_file(&tmp)?;
        serde_json::to_writer_pretty(&mut file, self)?;
        std::io::Write::write_all(&mut file, b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Reads the manifest of the backup in `dir`; refuses a directory that
    /// is not one, naming it.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not a vaultplus backup: it has no {FILE} (made by `vaultplus backup`, \
                 and written last: a backup cut short has none)",
                dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a vaultplus backup manifest", path.display()))?;
        if m.format != FORMAT {
            bail!(
                "{}: format {:?}, expected {FORMAT:?}",
                path.display(),
                m.format
            );
        }
        if m.version > VERSION {
            bail!(
                "{}: backup format version {} is newer than this vaultplus reads ({VERSION}); \
                 restore with vaultplus {} or later",
                path.display(),
                m.version,
                m.vaultplus_version
            );
        }
        Ok(m)
    }
}
