//! Which catalog and which blob store a process works on, and opening them.
//! The embedded default keeps both in one data directory (SQLite + local
//! files); a cluster points every node at one PostgreSQL database and one
//! S3-compatible bucket, and the nodes themselves keep nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::blobs::s3::{S3BlobStore, S3Options};
use crate::blobs::{BlobStore, CachedBlobStore, LocalBlobStore, MeteredBlobStore};
use crate::catalog::Catalog;
use crate::catalog::postgres::PostgresCatalog;
use crate::catalog::sqlite::SqliteCatalog;
use crate::private_files;

/// Where the metadata lives.
#[derive(Clone, PartialEq, Eq)]
pub enum CatalogSpec {
    /// An SQLite file (the embedded default: `<data dir>/catalog.sqlite`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL, shared by every node of a cluster.
    Postgres(String),
}

/// Never shows a database password, whoever prints it.
impl std::fmt::Debug for CatalogSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

/// Where the bytes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobSpec {
    /// A directory holding `blobs/` and `tmp/` (the embedded default: the
    /// data directory itself).
    Local(PathBuf),
    /// An S3-compatible bucket (and key prefix).
    S3(S3Options),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub data_dir: PathBuf,
    pub catalog: CatalogSpec,
    pub blobs: BlobSpec,
}

impl StoreSpec {
    /// Reads `--database` / `--blobs` (None: the data directory's own).
    pub fn new(
        data_dir: PathBuf,
        database: Option<&str>,
        blobs: Option<&str>,
        s3: S3Options,
    ) -> anyhow::Result<Self> {
        let catalog = match database {
            None => CatalogSpec::Sqlite(data_dir.join("catalog.sqlite")),
            Some(url) => parse_database(url)?,
        };
        let blobs = match blobs {
            None => BlobSpec::Local(data_dir.clone()),
            Some(b) if b.starts_with("s3://") => BlobSpec::S3(S3Options {
                url: b.to_owned(),
                ..s3
            }),
            Some(b) if b.contains("://") => {
                anyhow::bail!(
                    "--blobs {}: expected s3://bucket/prefix or a local directory",
                    redact(b)
                )
            }
            Some(dir) => BlobSpec::Local(PathBuf::from(dir)),
        };
        Ok(Self {
            data_dir,
            catalog,
            blobs,
        })
    }

    /// Whether this process is the only server on the catalog (SQLite):
    /// start-up recovery may then take back every lease and upload intent.
    pub fn single_server(&self) -> bool {
        matches!(self.catalog, CatalogSpec::Sqlite(_))
    }

    /// The local directory this process must hold alone, if any: the
    /// SQLite catalog's, or the local blobs' (whose `tmp/` a start cleans).
    pub fn exclusive_dirs(&self) -> Vec<&Path> {
        let mut dirs = Vec::new();
        if let CatalogSpec::Sqlite(file) = &self.catalog {
            dirs.push(file.parent().unwrap_or(Path::new(".")));
        }
        if let BlobSpec::Local(dir) = &self.blobs
            && !dirs.contains(&dir.as_path())
        {
            dirs.push(dir.as_path());
        }
        dirs
    }

    /// A short description for logs: never the credentials.
    pub fn describe(&self) -> String {
        let catalog = match &self.catalog {
            CatalogSpec::Sqlite(p) => format!("sqlite {}", p.display()),
            CatalogSpec::Postgres(url) => format!("postgres {}", redact(url)),
        };
        let blobs = match &self.blobs {
            BlobSpec::Local(p) => format!("local {}", p.display()),
            BlobSpec::S3(o) => o.url.clone(),
        };
        format!("catalog: {catalog}; blobs: {blobs}")
    }
}

fn parse_database(url: &str) -> anyhow::Result<CatalogSpec> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(CatalogSpec::Postgres(url.to_owned()))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(CatalogSpec::Sqlite(PathBuf::from(path)))
    } else {
        anyhow::bail!(
            "--database {}: expected postgres://user:password@host/db or sqlite://path",
            redact(url)
        )
    }
}

/// A URL without its password (in the user part or a `password` query
/// parameter, both of which PostgreSQL accepts), for messages and logs.
pub fn redact(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "<unparsable URL>".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// An open catalog and blob store.
#[derive(Clone)]
pub struct Stores {
    pub catalog: Arc<dyn Catalog>,
    pub blobs: Arc<dyn BlobStore>,
}

/// How the stores are used: a server keeps more database connections and a
/// memory cache of small blobs; a one-shot command needs neither.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub pool_size: u32,
    pub blob_cache_bytes: u64,
}

impl OpenOptions {
    pub const COMMAND: Self = Self {
        pool_size: 4,
        blob_cache_bytes: 0,
    };
}

pub async fn open(spec: &StoreSpec, opts: OpenOptions) -> anyhow::Result<Stores> {
    let catalog: Arc<dyn Catalog> = match &spec.catalog {
        CatalogSpec::Sqlite(file) => {
            let dir = file.parent().unwrap_or(Path::new("."));
            create_dir(dir).await?;
            Arc::new(SqliteCatalog::open(file).await?)
        }
        CatalogSpec::Postgres(url) => Arc::new(
            PostgresCatalog::connect(url, opts.pool_size)
                .await
                .with_context(|| format!("cannot open the catalog at {}", redact(url)))?,
        ),
    };
    let blobs: Arc<dyn BlobStore> = match &spec.blobs {
        BlobSpec::Local(dir) => {
            create_dir(dir).await?;
            cached(LocalBlobStore::open(dir).await?, opts.blob_cache_bytes)
        }
        BlobSpec::S3(o) => cached(
            S3BlobStore::open(o)
                .with_context(|| format!("cannot open the blob store {}", o.url))?,
            opts.blob_cache_bytes,
        ),
    };
    Ok(Stores { catalog, blobs })
}

/// Refuses stores that hold no catalog, and changes nothing. Every command
/// but `serve` and `restore` (which make an installation) works on one that
/// exists: a
/// mistyped `--data-dir` or `--database` must be an error, not a new, empty
/// installation that `fsck` then calls consistent.
pub async fn require_catalog(spec: &StoreSpec) -> anyhow::Result<()> {
    let found = match &spec.catalog {
        CatalogSpec::Sqlite(file) => SqliteCatalog::holds_catalog(file).await?,
        CatalogSpec::Postgres(url) => PostgresCatalog::holds_catalog(url)
            .await
            .with_context(|| format!("cannot check the catalog at {}", redact(url)))?,
    };
    if !found {
        let place = match &spec.catalog {
            CatalogSpec::Sqlite(file) => file.display().to_string(),
            CatalogSpec::Postgres(url) => redact(url),
        };
        anyhow::bail!(
            "no vaultplus catalog at {place}: check --data-dir / --database \
             (`vaultplus serve` makes a new installation)"
        );
    }
    if let BlobSpec::Local(dir) = &spec.blobs
        && !dir.is_dir()
    {
        anyhow::bail!(
            "the blob directory {} does not exist: check --data-dir / --blobs",
            dir.display()
        );
    }
    Ok(())
}

/// The store as a server uses it: timed when metrics are recorded, behind
/// the small-blob cache (whose hits are no store operations) when it has
/// a budget.
fn cached<S: BlobStore>(store: S, budget: u64) -> Arc<dyn BlobStore> {
    if crate::metrics::enabled() {
        uncached_or_cached(MeteredBlobStore(store), budget)
    } else {
        uncached_or_cached(store, budget)
    }
}

fn uncached_or_cached<S: BlobStore>(store: S, budget: u64) -> Arc<dyn BlobStore> {
    if budget == 0 {
        Arc::new(store)
    } else {
        Arc::new(CachedBlobStore::new(store, budget))
    }
}

async fn create_dir(dir: &Path) -> anyhow::Result<()> {
    private_files::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Takes away group and other access in the directories a server holds
/// alone (see [`StoreSpec::exclusive_dirs`]), left open by an older
/// version; says so once when it did.
pub fn tighten_modes(spec: &StoreSpec) {
    for dir in spec.exclusive_dirs() {
        match private_files::tighten(dir) {
            Ok(t) if t.fixed == 0 && t.failed == 0 => {}
            Ok(t) => tracing::warn!(
                dir = %dir.display(),
                fixed = t.fixed,
                failed = t.failed,
                first_error = t.first_error.as_deref().unwrap_or(""),
                "the data directory could be read by other users (set up by an older vaultplus, \
                 or by hand): its directories are now 0700 and its files 0600"
            ),
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot check the data directory's permissions"
            ),
        }
    }
}

/// Takes a data directory for this process alone: a server's start-up
/// recovery (upload intents, job leases, temporary files) and a migration
/// assume no other server works on it. The lock lives as long as the file.
pub fn lock_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = private_files::file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        anyhow::anyhow!(
            "another vaultplus server is running on {} (one server per data directory; the CLI may run beside it)",
            dir.display()
        )
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(db: Option<&str>, blobs: Option<&str>) -> anyhow::Result<StoreSpec> {
        StoreSpec::new(PathBuf::from("/d"), db, blobs, S3Options::default())
    }

    #[test]
    fn defaults_are_the_data_dir() {
        let s = spec(None, None).unwrap();
        assert_eq!(
            s.catalog,
            CatalogSpec::Sqlite(PathBuf::from("/d/catalog.sqlite"))
        );
        assert_eq!(s.blobs, BlobSpec::Local(PathBuf::from("/d")));
        assert!(s.single_server());
        assert_eq!(s.exclusive_dirs(), vec![Path::new("/d")]);
    }

    #[test]
    fn cluster_stores_hold_no_local_dir() {
        let s = spec(Some("postgres://u:p@h/db"), Some("s3://bucket/pre")).unwrap();
        assert_eq!(
            s.catalog,
            CatalogSpec::Postgres("postgres://u:p@h/db".into())
        );
        let BlobSpec::S3(o) = &s.blobs else {
            panic!("expected S3")
        };
        assert_eq!(o.url, "s3://bucket/pre");
        assert!(!s.single_server());
        assert!(s.exclusive_dirs().is_empty());
        assert!(!s.describe().contains(":p@"), "{}", s.describe());
    }

    #[test]
    fn unknown_schemes_are_refused() {
        assert!(spec(Some("mysql://h/db"), None).is_err());
        assert!(spec(None, Some("gs://bucket")).is_err());
        let e = spec(Some("redis://u:secret@h"), None).unwrap_err();
        assert!(!format!("{e}").contains("secret"));
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:pw@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=s3cret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert!(!redact("postgres:///db?host=/run&PASSWORD=x").contains("=x"));
        let spec = CatalogSpec::Postgres("postgres://u:pw@h/db".into());
        assert!(!format!("{spec:?}").contains("pw"));
    }
}
