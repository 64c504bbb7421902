//! URL signing secrets encrypted at rest under a master key
//! (`--master-key-file`, `VAULTPLUS_MASTER_KEY_FILE`): what the catalog
//! holds is not the secret that verifies URLs, plaintext secrets are
//! sealed at start, and a missing or wrong master key stops a start with a
//! clear error instead of making a new key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};

use crate::harness::{BIN, TestServer, bytes};

/// A new master key file, made as the README says.
fn make_master_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(BIN)
        .args(["master-key", "generate"])
        .arg(&path)
        .output()
        .unwrap();
    crate::harness::assert_success(&out);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // It never overwrites a key.
    let again = Command::new(BIN)
        .args(["master-key", "generate"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    path
}

/// The signing keys as the catalog file holds them: (ID, stored bytes).
async fn stored_secrets(data: &Path) -> Vec<(i64, Vec<u8>)> {
    let options = SqliteConnectOptions::new()
        .filename(data.join("catalog.sqlite"))
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT id, secret FROM signing_keys ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get("id"), r.get("secret")))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts a server that must refuse to start; answers what it said.
fn refused_start(data: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("VAULTPLUS_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(!status.success());
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the server started where it must refuse to");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches a media URL from this server (its port changes on a restart).
async fn served(s: &TestServer, url: &str) -> u16 {
    let path = &url[url.find("/v2/").expect("a media URL")..];
    s.http
        .get(s.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn plaintext_secrets_are_sealed_at_start_and_old_urls_keep_working() {
    if crate::backend::embedded_only("plaintext_secrets_are_sealed_at_start") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "1", "full", "image/png", bytes(1, 2000))
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    assert_eq!(served(&s, &url).await, 200);
    // Without a master key the catalog holds the secret itself.
    let before = stored_secrets(s.data_dir()).await;
    assert_eq!(before.len(), 1);
    let plaintext = before[0].1.clone();
    assert_eq!(plaintext.len(), 32);

    let master = make_master_key(keys.path(), "master.key");
    let master_arg = master.to_str().unwrap();
    s.restart(&["--master-key-file", master_arg]).await;
    let after = stored_secrets(s.data_dir()).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, before[0].0);
    assert!(after[0].1.starts_with(b"VPS1"), "sealed");
    assert!(
        !contains(&after[0].1, &plaintext[..8]),
        "no part of the secret is readable in the catalog"
    );
    // The URL handed out before is still served: the secret that verifies
    // it is the same, only no longer readable from the catalog.
    assert_eq!(served(&s, &url).await, 200);

    let list = s.cli(&["signing-keys", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("encrypted"));

    // Without the master key, or with another one, the server refuses to
    // start and says why; nothing is changed.
    s.kill();
    let err = refused_start(s.data_dir(), &[]);
    assert!(err.contains("VAULTPLUS_MASTER_KEY_FILE"), "{err}");
    assert!(err.contains("encrypted"), "{err}");
    let other = make_master_key(keys.path(), "other.key");
    let err = refused_start(
        s.data_dir(),
        &["--master-key-file", other.to_str().unwrap()],
    );
    assert!(err.contains("does not open"), "{err}");
    assert!(err.contains("other.key"), "{err}");
    assert_eq!(stored_secrets(s.data_dir()).await, after);

    // Rotation needs the master key too, and seals the new key.
    let out = s.cli(&["signing-keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("VAULTPLUS_MASTER_KEY_FILE"));
    let out = s.cli(&[
        "signing-keys",
        "rotate",
        "--master-key-file",
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a wrong master key rotates nothing");
    assert_eq!(stored_secrets(s.data_dir()).await, after);
    let out = Command::new(BIN)
        .args(["signing-keys", "rotate", "--data-dir"])
        .arg(s.data_dir())
        .env("VAULTPLUS_MASTER_KEY_FILE", &master)
        .output()
        .unwrap();
    crate::harness::assert_success(&out);
    let rotated = stored_secrets(s.data_dir()).await;
    assert_eq!(rotated.len(), 2);
    assert!(
        rotated
            .iter()
            .all(|(_, secret)| secret.starts_with(b"VPS1"))
    );

    // With the right key it starts, and serves the old URL and new ones.
    s.restart(&["--master-key-file", master_arg]).await;
    assert_eq!(served(&s, &url).await, 200);
    let fresh = s
        .put("conn_a", "2", "full", "image/png", bytes(2, 2000))
        .await;
    assert_eq!(served(&s, fresh["url"].as_str().unwrap()).await, 200);
}

#[tokio::test]
async fn a_server_with_a_master_key_never_stores_a_plaintext_secret() {
    if crate::backend::embedded_only("a_server_with_a_master_key_never_stores_a_plaintext_secret") {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let master = make_master_key(keys.path(), "master.key");
    let master_arg = master.to_str().unwrap();
    let mut s = TestServer::start_with(&["--master-key-file", master_arg]).await;
    let stored = stored_secrets(s.data_dir()).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.starts_with(b"VPS1"));
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "1", "full", "image/png", bytes(1, 2000))
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    s.restart(&["--master-key-file", master_arg]).await;
    assert_eq!(served(&s, &url).await, 200);
    assert_eq!(stored_secrets(s.data_dir()).await, stored);

    // A key file others can read works, with a warning.
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.cli(&["signing-keys", "list", "--master-key-file", master_arg]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("can be read by other users"), "{err}");

    // A file that holds no master key is refused, saying how to make one.
    let bad = keys.path().join("bad.key");
    std::fs::write(&bad, "not a key\n").unwrap();
    s.kill();
    let err = refused_start(s.data_dir(), &["--master-key-file", bad.to_str().unwrap()]);
    assert!(err.contains("openssl rand -base64 32"), "{err}");
}
