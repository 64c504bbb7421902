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

/// A catalog whose connection holds the plan tests' 20,000 items (the
/// directory holding it goes with the first value).
async fn loaded() -> (
    tempfile::TempDir,
    SqliteCatalog,
    vaultplus::catalog::ScopeId,
) {
    use sqlx::ConnectOptions as _;
    use vaultplus_conformance::plans;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    let scope = plans::connection_scope(&catalog).await;
    let mut db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    for statement in plans::load_statements(scope, 20_000) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut db)
            .await
            .unwrap();
    }
    (dir, catalog, scope)
}

/// Every media query shape on a loaded connection: SQLite's own plan
/// neither scans nor sorts the connection's rows (`docs/query-plans.md`).
#[tokio::test]
async fn media_query_plans_are_bounded() {
    use vaultplus_conformance::plans;

    let (_dir, catalog, scope) = loaded().await;
    for (name, q) in plans::shapes() {
        let explained = catalog.explain_media_query(scope, &q).await.unwrap();
        if std::env::var_os("VAULTPLUS_PRINT_PLANS").is_some() {
            eprintln!("{}", plans::describe(&name, &explained));
        }
        plans::assert_sqlite_plan(&name, &explained);
    }
}

/// The reads of one request (single item, batch of 100, status) and
/// `media` on a loaded connection: SQLite searches every table by an index
/// and sorts nothing.
#[tokio::test]
async fn request_read_plans_are_bounded() {
    use vaultplus_conformance::plans;

    let (_dir, catalog, scope) = loaded().await;
    let (org, id) = plans::connection_key(&catalog).await;
    for n in [1, 100] {
        let ids = plans::batch_ids(20_000, n);
        let name = format!("{n} IDs");
        for (sql, lines) in catalog
            .explain_request_reads("0011223344556677", org, &id, &ids)
            .await
            .unwrap()
        {
            if std::env::var_os("VAULTPLUS_PRINT_PLANS").is_some() {
                eprintln!("{name}: {sql}\n    {}", lines.join("\n    "));
            }
            plans::assert_sqlite_lookup(&name, &sql, &lines);
        }
        let lines = catalog.explain_media(scope, &ids).await.unwrap();
        plans::assert_sqlite_lookup(&name, "media", &lines);
    }
}
