//! Only `serve` makes an installation. Every other command works on one
//! that exists: a mistyped `--data-dir` or `--database` is refused with the
//! place named, and nothing is created or changed there.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::{Connection, Row};

use crate::backend::{cluster_selected, fresh_database};
use crate::harness::{BIN, TestServer, assert_success};

/// One read and one write of each command family that opens the stores.
const COMMANDS: &[&[&str]] = &[
    &["fsck"],
    &["fsck", "--repair"],
    &["connections", "list", "--org", "default"],
    &["connections", "add", "--org", "default", "conn_a"],
    &["connections", "remove", "--org", "default", "conn_a"],
    &["keys", "list"],
    &["keys", "create", "--org", "default", "--scope", "ACCOUNT"],
    &["keys", "revoke", "vpk_x"],
    &["signing-keys", "list"],
    &["signing-keys", "rotate"],
    &["signing-keys", "retire", "1"],
    &["reclaim", "status"],
    &["reclaim", "run"],
    &["retention", "run"],
];

fn run(args: &[&str], stores: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(stores)
        // Whatever the environment says, the flags name the place.
        .env_remove("VAULTPLUS_DATA_DIR")
        .env_remove("VAULTPLUS_DATABASE_URL")
        .env_remove("VAULTPLUS_BLOBS")
        .output()
        .expect("run vaultplus")
}

fn refused(out: &Output, place: &str, what: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what:?} succeeded: {stderr}");
    assert!(
        stderr.contains(place) && stderr.contains("no vaultplus catalog"),
        "{what:?} does not name {place}: {stderr}"
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_data_dir_that_does_not_exist_is_refused_and_not_created() {
    let parent = tempfile::tempdir().unwrap();
    let typo = parent.path().join("typo");
    let dir = typo.to_str().unwrap();
    for args in COMMANDS {
        refused(&run(args, &["--data-dir", dir]), dir, args);
        assert!(!typo.exists(), "{args:?} created {dir}");
    }
}

#[test]
fn a_data_dir_without_a_catalog_is_refused_and_left_as_it_was() {
    // An empty directory, and one whose catalog.sqlite is no catalog.
    let empty = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let stray = other.path().join("catalog.sqlite");
    std::fs::write(&stray, b"not a database").unwrap();
    for dir in [empty.path(), other.path()] {
        let before = entries(dir);
        let name = dir.to_str().unwrap();
        for args in COMMANDS {
            refused(&run(args, &["--data-dir", name]), name, args);
            assert_eq!(entries(dir), before, "{args:?} changed {name}");
        }
    }
    assert_eq!(std::fs::read(&stray).unwrap(), b"not a database");
}

#[tokio::test]
async fn an_installation_made_by_serve_is_accepted() {
    let s = TestServer::start().await;
    for args in [&["fsck"][..], &["connections", "list", "--org", "default"]] {
        assert_success(&s.cli(args));
    }
}

#[tokio::test]
async fn a_database_without_a_catalog_is_refused_and_left_empty() {
    if !cluster_selected() {
        eprintln!("SKIPPED: needs the cluster's PostgreSQL (VAULTPLUS_TEST_BACKEND=cluster)");
        return;
    }
    let url = fresh_database().await;
    let blobs = tempfile::tempdir().unwrap();
    let stores = [
        "--database",
        url.as_str(),
        "--data-dir",
        blobs.path().to_str().unwrap(),
    ];
    let db = url.rsplit('/').next().unwrap();
    for args in COMMANDS {
        refused(&run(args, &stores), db, args);
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(tables, 0, "a refused command created tables");
    assert!(entries(blobs.path()).is_empty());
}
