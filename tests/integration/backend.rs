//! Which stores the integration suite runs on. By default every server gets
//! the embedded stores of its temporary data directory; with
//! `VAULTPLUS_TEST_BACKEND=cluster` (set by `scripts/test.sh` for its second
//! pass) every server gets a fresh database on the throwaway PostgreSQL
//! cluster and a fresh prefix in the S3 test bucket, passed to the server
//! and to every CLI call through the environment, as an operator would.

use sqlx::Connection;
use sqlx::Executor;

use vaultplus::blobs::BlobStore;
use vaultplus::blobs::s3::{S3BlobStore, S3Options};

#[derive(Clone, Debug, Default)]
pub struct Backend {
    /// Environment of every process started against these stores.
    pub env: Vec<(String, String)>,
    s3: Option<S3Options>,
}

pub fn cluster_selected() -> bool {
    std::env::var("VAULTPLUS_TEST_BACKEND").is_ok_and(|v| v == "cluster")
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("VAULTPLUS_TEST_BACKEND=cluster needs {name}: run the suite with ./scripts/test.sh")
    })
}

/// True (and a note on stderr) when the suite runs on the cluster stores: a
/// test of the local disk or of the SQLite file itself has nothing to check
/// there.
pub fn embedded_only(test: &str) -> bool {
    let skip = cluster_selected();
    if skip {
        eprintln!("SKIPPED on the cluster stores: {test} checks the embedded data directory");
    }
    skip
}

impl Backend {
    /// The stores for one new server (and its restarts).
    pub async fn fresh() -> Self {
        if !cluster_selected() {
            return Self::default();
        }
        Self::cluster(&fresh_database().await, &fresh_prefix())
    }

    /// The given cluster database and blob prefix (several nodes share one).
    pub fn cluster(database: &str, blobs: &str) -> Self {
        let endpoint = required("VAULTPLUS_TEST_S3_ENDPOINT");
        let env = vec![
            ("VAULTPLUS_DATABASE_URL".to_owned(), database.to_owned()),
            ("VAULTPLUS_BLOBS".to_owned(), blobs.to_owned()),
            ("VAULTPLUS_S3_ENDPOINT".to_owned(), endpoint.clone()),
            ("VAULTPLUS_S3_ALLOW_HTTP".to_owned(), "true".to_owned()),
        ];
        let s3 = S3Options {
            url: blobs.to_owned(),
            endpoint: Some(endpoint),
            allow_http: Some(true),
            ..Default::default()
        };
        Self { env, s3: Some(s3) }
    }

    /// The first column of the first row of `sql` run on the catalog of a
    /// server on these stores (data directory `dir` when embedded), as text.
    pub async fn catalog_scalar(&self, dir: &std::path::Path, sql: &str) -> String {
        let Some((_, url)) = self.env.iter().find(|(k, _)| k == "VAULTPLUS_DATABASE_URL") else {
            return crate::harness::sqlite(&dir.join("catalog.sqlite"), sql);
        };
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to the test database");
        let value: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT ({sql})::text")))
                .fetch_optional(&mut conn)
                .await
                .expect("query the catalog")
                .flatten();
        value.unwrap_or_default()
    }

    pub fn is_cluster(&self) -> bool {
        self.s3.is_some()
    }

    /// The bytes of one blob in the S3 prefix (None when it is absent, or
    /// when these are the embedded stores).
    pub fn s3_blob(&self, key: &str) -> Option<Vec<u8>> {
        let opts = self.s3.clone()?;
        let key = key.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use futures::TryStreamExt;
                let read = S3BlobStore::open(&opts)
                    .unwrap()
                    .get(&key, None)
                    .await
                    .expect("read from the S3 prefix")?;
                let chunks: Vec<bytes::Bytes> = read.body.try_collect().await.unwrap();
                Some(chunks.concat())
            })
        })
        .join()
        .expect("read thread")
    }

    /// Every blob in the S3 prefix, as (key, size), sorted.
    pub fn s3_blobs(&self) -> Option<Vec<(String, u64)>> {
        let opts = self.s3.clone()?;
        // Called from sync test code inside a runtime: list on a thread of
        // its own.
        let listed = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { S3BlobStore::open(&opts)?.list().await })
        })
        .join()
        .expect("list thread");
        let mut blobs = listed.expect("list the S3 prefix");
        blobs.sort();
        Some(blobs)
    }
}

/// A new, empty database on the test cluster.
pub async fn fresh_database() -> String {
    let admin = required("VAULTPLUS_TEST_POSTGRES_URL");
    let name = format!("it_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    let create = format!("CREATE DATABASE {name}");
    conn.execute(sqlx::AssertSqlSafe(create))
        .await
        .expect("create a test database");
    let (base, _) = admin.rsplit_once('/').expect("admin URL has a database");
    format!("{base}/{name}")
}

/// A new, empty key prefix in the test bucket.
pub fn fresh_prefix() -> String {
    let bucket = required("VAULTPLUS_TEST_S3_BUCKET");
    format!("s3://{bucket}/it-{}", uuid::Uuid::new_v4().simple())
}
