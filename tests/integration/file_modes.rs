//! The data directory is the server user's alone: directories 0700 and
//! files 0600 whatever the umask (the catalog holds the URL signing
//! secrets, the blobs are the tenants' media), and a directory left open by
//! an older version is closed at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::fair_storage::StalledUpload;
use crate::harness::{TestServer, bytes};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every directory and file under `dir` (and `dir` itself), with its mode.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut out = vec![(dir.display().to_string(), true, mode(dir))];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(modes(&p));
        } else {
            out.push((p.display().to_string(), false, mode(&p)));
        }
    }
    out
}

pub fn assert_private(dir: &Path) {
    for (path, is_dir, m) in modes(dir) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(m, want, "{path} is {m:04o}");
    }
}

/// The usual umask, under which files used to come out 0644 in 0755
/// directories. nextest runs each test in its own process, and the server
/// inherits it.
fn usual_umask() {
    // SAFETY: umask(2) only sets the process's file mode mask.
    unsafe {
        libc::umask(0o022);
    }
}

#[tokio::test]
async fn everything_in_the_data_dir_is_private_under_umask_022() {
    if crate::backend::embedded_only("everything_in_the_data_dir_is_private") {
        return;
    }
    usual_umask();
    let parent = tempfile::tempdir().unwrap();
    // The server creates the data directory itself.
    let dir = tempfile::Builder::new().tempdir_in(parent.path()).unwrap();
    std::fs::remove_dir(dir.path()).unwrap();
    let s = TestServer::start_in(dir, &[]).await;
    let root = s.data_dir().to_owned();
    assert_eq!(mode(&root), 0o700);
    for f in [
        "catalog.sqlite",
        "catalog.sqlite-wal",
        "catalog.sqlite-shm",
        "LOCK",
    ] {
        assert!(root.join(f).exists(), "{f} exists");
    }
    assert_private(&root);

    s.add_connection("default", "conn_a");
    s.put("conn_a", "1", "full", "image/png", bytes(1, 5000))
        .await;
    // A write in progress: its temporary file is private from the start.
    let _stalled = StalledUpload::start(&s, "conn_a", "2", Some(1 << 20), 4096).await;
    for _ in 0..100 {
        if s.tmp_files() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(s.tmp_files(), 1);
    let blobs = s.blob_files();
    assert_eq!(blobs.len(), 1);
    assert_private(&root);
}

#[tokio::test]
async fn an_old_data_dir_is_closed_at_start() {
    if crate::backend::embedded_only("an_old_data_dir_is_closed_at_start") {
        return;
    }
    usual_umask();
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.put("conn_a", "1", "full", "image/png", bytes(1, 5000))
        .await;
    s.kill();
    // As an older version left it: files 0644, directories 0755.
    let root = s.data_dir().to_owned();
    let mut opened = 0;
    for (path, is_dir, _) in modes(&root) {
        let m = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        opened += 1;
    }
    assert!(
        opened >= 8,
        "catalog, its WAL, the lock, blobs and their dirs"
    );
    s.restart(&[]).await;
    assert_private(&root);
    // And the data is all still there.
    let r = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.blob_files().len(), 1);
}
