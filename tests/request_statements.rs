//! How many catalog statements an API request runs, from the HTTP layer
//! down: the single-item read, the batch read and `status`, on SQLite and
//! on PostgreSQL (where each statement is a round trip to the database).
//!
//! The real router and service run in this process on a real catalog, with
//! no background task, and every statement sqlx executes is counted from
//! its statement log (the `sqlx::query` events, one per execution, on
//! whatever thread runs it). The tests of this file take turns, so that
//! none counts another's statements under either test runner.
//!
//! The PostgreSQL test needs `VAULTPLUS_TEST_POSTGRES_URL`, like
//! `tests/catalog_postgres.rs`.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use sqlx::Connection as _;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use vaultplus::blobs::LocalBlobStore;
use vaultplus::catalog::Catalog;
use vaultplus::catalog::postgres::PostgresCatalog;
use vaultplus::catalog::sqlite::SqliteCatalog;
use vaultplus::model::{ConnectionId, OrgName};
use vaultplus::service::secret_box::SecretBox;
use vaultplus::service::throttle::RateLimitConfig;
use vaultplus::service::{ServiceConfig, VaultService, admin, keyring};
use vaultplus_conformance::plans;

#[path = "support/postgres.rs"]
mod postgres;

/// Statements a request may run, at most: one to authenticate its key (with
/// its org's rate limit), one for what it reads (the connection, its org
/// and the items with their variants, or the scope's counters).
const PER_READ: usize = 2;

/// The statements sqlx ran since the last [`Log::take`], by their summary.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Pragmas are no request's statements: the SQLite catalog's data-version
/// poller reads one on its own connection every 100 ms whatever requests
/// come (`data_version.rs`), and sqlx sets a new SQLite connection up with
/// them when a pool opens one (which it may do for any request, as a
/// connection released just before is handed back to the pool by a task
/// of its own). No read runs one.
fn is_request_statement(summary: &str) -> bool {
    !summary.starts_with("PRAGMA ")
}

impl<S: tracing::Subscriber> Layer<S> for Log {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Summary(String);
        impl Visit for Summary {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "summary" {
                    self.0 = value.to_owned();
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "summary" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut summary = Summary(String::new());
        event.record(&mut summary);
        if is_request_statement(&summary.0) {
            self.0.lock().unwrap().push(summary.0);
        }
    }
}

/// The process's statement log, installed once; the guard makes the tests
/// of this file take turns.
fn log() -> (std::sync::MutexGuard<'static, ()>, Log) {
    static TURN: Mutex<()> = Mutex::new(());
    static LOG: OnceLock<Log> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let log = LOG
        .get_or_init(|| {
            let log = Log::default();
            let only_statements = Targets::new().with_target("sqlx::query", tracing::Level::TRACE);
            let subscriber =
                tracing_subscriber::registry().with(log.clone().with_filter(only_statements));
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            log
        })
        .clone();
    log.take();
    (turn, log)
}

/// Items loaded into the connection (two variants each).
const ITEMS: u32 = 500;

/// The statements of each read, twice over (the second on warm
/// connections), after loading `ITEMS` items into a connection of
/// `catalog`; `load` runs the loading statements on the database itself.
async fn count_reads(
    catalog: Arc<dyn Catalog>,
    load: impl AsyncFnOnce(Vec<String>),
    log: &Log,
) -> Vec<(String, Vec<String>)> {
    let key = admin::bootstrap(catalog.as_ref()).await.unwrap().unwrap();
    let org = catalog
        .org_by_name(&OrgName::parse(admin::DEFAULT_ORG).unwrap())
        .await
        .unwrap()
        .unwrap();
    let id = ConnectionId::parse("conn_count").unwrap();
    catalog
        .insert_connection(org.id, &id, true, 1_800_000_000_000)
        .await
        .unwrap();
    let scope = catalog
        .connection(org.id, &id)
        .await
        .unwrap()
        .unwrap()
        .scope_id;
    load(plans::load_statements(scope, ITEMS)).await;

    let secrets = SecretBox::none();
    let signer = keyring::signer(catalog.as_ref(), &secrets).await.unwrap();
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(LocalBlobStore::open(blobs_dir.path()).await.unwrap());
    let service = VaultService::new(
        catalog,
        blobs,
        signer,
        ServiceConfig {
            public_url: "http://media.test".into(),
            max_upload_bytes: 1 << 20,
            min_free_bytes: 0,
            // The server's defaults: every key is admitted under a limit.
            rate_limits: RateLimitConfig {
                per_minute: 6000,
                burst: 3000,
                ..RateLimitConfig::default()
            },
            max_uploads_per_connection: 4,
            secrets,
            webhooks: Default::default(),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, vaultplus::http::router(service))
            .await
            .unwrap()
    });

    let http = reqwest::Client::new();
    let batch: Vec<String> = plans::batch_ids(ITEMS, 100)
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    let one = batch[7].clone();
    let mut counted = Vec::new();
    log.take();
    for round in ["cold", "warm"] {
        let reads = [
            (
                "single item",
                http.get(format!("{base}/v2/vault-plus/media/{one}")),
            ),
            (
                "batch of 100",
                http.post(format!("{base}/v2/vault-plus/media/batch"))
                    .json(&json!({ "mediaIds": batch })),
            ),
            ("status", http.get(format!("{base}/v2/vault-plus/status"))),
        ];
        for (name, request) in reads {
            let response = request
                .header("apiKey", &key)
                .header("x-connection-id", id.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let body: Value = response.json().await.unwrap();
            match name {
                "single item" => assert_eq!(body["id"], one.as_str()),
                "batch of 100" => assert_eq!(body["items"].as_array().unwrap().len(), 100),
                _ => assert_eq!(body["storedCount"], 2 * (ITEMS - ITEMS.div_ceil(10))),
            }
            counted.push((format!("{name} ({round})"), log.take()));
        }
    }
    server.abort();
    counted
}

fn assert_counts(backend: &str, counted: &[(String, Vec<String>)]) {
    for (name, statements) in counted {
        eprintln!("{backend}, {name}: {} statements", statements.len());
        for s in statements {
            eprintln!("    {s}");
        }
    }
    for (name, statements) in counted {
        assert_eq!(
            statements.len(),
            PER_READ,
            "{backend}, {name}: {statements:#?}"
        );
    }
}

#[test]
fn sqlite_reads_take_one_statement_after_authentication() {
    let (_turn, log) = log();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counted = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let catalog = Arc::new(SqliteCatalog::open(&path).await.unwrap());
        let load = async |statements: Vec<String>| {
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s))
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
        };
        let counted = count_reads(catalog.clone(), load, &log).await;
        catalog.close().await;
        counted
    });
    assert_counts("SQLite", &counted);
}

#[test]
fn postgres_reads_take_one_statement_after_authentication() {
    let (_turn, log) = log();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counted = rt.block_on(async {
        let url = postgres::new_database().await;
        let catalog = Arc::new(PostgresCatalog::connect(&url, 4).await.unwrap());
        let load = async |statements: Vec<String>| {
            let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s))
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
            sqlx::query("ANALYZE").execute(&mut db).await.unwrap();
        };
        let counted = count_reads(catalog.clone(), load, &log).await;
        catalog.close().await;
        counted
    });
    assert_counts("PostgreSQL", &counted);
}
