//! The throwaway PostgreSQL databases the PostgreSQL test binaries use
//! (included with `#[path]`: each file in `tests/` is a crate of its own).

use sqlx::{Connection as _, PgConnection};

/// The test cluster's URL (`VAULTPLUS_TEST_POSTGRES_URL`).
pub fn admin_url() -> String {
    std::env::var("VAULTPLUS_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "VAULTPLUS_TEST_POSTGRES_URL is not set: these tests need a PostgreSQL cluster. \
             Run them through scripts/test.sh, or start one with \
             `scripts/pg-cluster.sh start DIR` and export the URL it prints \
             (stop it with `scripts/pg-cluster.sh stop DIR`)."
        )
    })
}

/// The admin URL with its database replaced by `db`.
pub fn url_of(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Creates an empty, uniquely named database; returns its URL.
pub async fn new_database() -> String {
    let admin = admin_url();
    let name = format!("vaultplus_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test cluster at {admin}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    url_of(&admin, &name)
}
