//! Secrets off the command line (issue 10, item 12): every secret option
//! also reads a file, and exactly one of the two may be given.

use std::path::Path;
use std::process::Command;

use crate::demo::{Demo, PHOTOS, add};
use crate::harness::{BIN, TestServer};

fn secret_file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

/// Runs `vaultplus serve` that must refuse to start; returns its stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_string_lossy().into_owned();
    let mut all = vec!["serve", "--data-dir", &data_dir, "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    fails(&all, env)
}

/// Runs a vaultplus command that must fail; returns its stderr.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("VAULTPLUS_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?} {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_upstream_receives_the_key_from_the_file() {
    let demo = Demo::start(&["--api-key", "key-from-a-file"]);
    let secrets = tempfile::tempdir().unwrap();
    let file = secret_file(secrets.path(), "upstream-key", "key-from-a-file\n");
    let s =
        TestServer::start_with(&["--upstream-url", &demo.base, "--upstream-key-file", &file]).await;
    s.add_connection("default", "conn_a");
    let (code, body) = add(&s, PHOTOS).await;
    assert_eq!(code, 200, "the upstream took the key from the file: {body}");
    assert_eq!(body["seen"], 12, "{body}");

    // Control: the same upstream refuses another key, so the 200 above
    // came from the file.
    let wrong = secret_file(secrets.path(), "wrong", "another-key\n");
    let s2 = TestServer::start_with(&["--upstream-url", &demo.base, "--upstream-key-file", &wrong])
        .await;
    s2.add_connection("default", "conn_a");
    let (code, body) = add(&s2, PHOTOS).await;
    assert_ne!(code, 200, "{body}");
}

#[tokio::test]
async fn the_database_url_can_come_from_a_file() {
    if crate::backend::embedded_only("the_database_url_can_come_from_a_file") {
        return;
    }
    let secrets = tempfile::tempdir().unwrap();
    let catalog = secrets.path().join("elsewhere.sqlite");
    let file = secret_file(
        secrets.path(),
        "database-url",
        &format!("sqlite://{}\n", catalog.display()),
    );
    let s = TestServer::start_with(&["--database-file", &file]).await;
    assert!(catalog.exists(), "the catalog is where the file says");
    assert!(!s.data_dir().join("catalog.sqlite").exists());
    let r = s
        .req(reqwest::Method::GET, "/v2/account/settings")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn value_and_file_together_are_a_start_up_error() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secret_file(secrets.path(), "k", "k\n");
    let e = refused(
        &[
            "--upstream-url",
            "http://127.0.0.1:9",
            "--upstream-key",
            "k",
            "--upstream-key-file",
            &file,
        ],
        &[],
    );
    assert!(
        e.contains("--upstream-key") && e.contains("--upstream-key-file") && e.contains("not both"),
        "{e}"
    );
    // From the environment too.
    let e = refused(
        &["--upstream-url", "http://127.0.0.1:9"],
        &[
            ("VAULTPLUS_UPSTREAM_KEY", "k"),
            ("VAULTPLUS_UPSTREAM_KEY_FILE", &file),
        ],
    );
    assert!(e.contains("not both"), "{e}");
    let db = secret_file(secrets.path(), "db", "sqlite:///tmp/x.sqlite\n");
    let e = refused(
        &[
            "--database",
            "sqlite:///tmp/y.sqlite",
            "--database-file",
            &db,
        ],
        &[],
    );
    assert!(
        e.contains("--database-file") && e.contains("not both"),
        "{e}"
    );
    let e = refused(
        &[
            "--blobs",
            "s3://bucket/p",
            "--s3-secret-access-key",
            "s",
            "--s3-secret-access-key-file",
            &file,
        ],
        &[],
    );
    assert!(
        e.contains("--s3-secret-access-key-file") && e.contains("not both"),
        "{e}"
    );
    let from = tempfile::tempdir().unwrap();
    let from = from.path().to_string_lossy().into_owned();
    let e = fails(
        &[
            "migrate",
            "--from",
            &from,
            "--blobs",
            "s3://bucket/p",
            "--to",
            "postgres://h/db",
            "--to-file",
            &db,
        ],
        &[],
    );
    assert!(e.contains("--to-file") && e.contains("not both"), "{e}");
}

#[test]
fn an_empty_or_unreadable_file_is_an_error_naming_the_option() {
    let secrets = tempfile::tempdir().unwrap();
    let empty = secret_file(secrets.path(), "empty", "\n");
    let e = refused(
        &[
            "--upstream-url",
            "http://127.0.0.1:9",
            "--upstream-key-file",
            &empty,
        ],
        &[],
    );
    assert!(
        e.contains("--upstream-key-file") && e.contains("empty"),
        "{e}"
    );
    let missing = secrets
        .path()
        .join("missing")
        .to_string_lossy()
        .into_owned();
    let e = refused(&["--database-file", &missing], &[]);
    assert!(
        e.contains("--database-file") && e.contains("cannot read"),
        "{e}"
    );
    let e = refused(
        &[
            "--blobs",
            "s3://bucket/p",
            "--s3-secret-access-key-file",
            &missing,
        ],
        &[],
    );
    assert!(e.contains("--s3-secret-access-key-file"), "{e}");
    // A URL without any key is refused too.
    let e = refused(&["--upstream-url", "http://127.0.0.1:9"], &[]);
    assert!(e.contains("--upstream-key-file"), "{e}");
}
