//! A disk that really fills up: the data directory on a small tmpfs. New
//! stores are refused with 507 (at the floor, and when the disk runs out
//! mid-write), while reads, deletes and purges keep working and the catalog
//! stays consistent.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, body, bytes};

/// A tmpfs mounted for one test (shared with `fair_storage`).
pub struct Mount(pub PathBuf);

impl Mount {
    /// An 8 MiB tmpfs, or None where mounting is not permitted.
    fn tmpfs() -> Option<Mount> {
        Self::tmpfs_of("8m")
    }

    /// A tmpfs of `size` (as mount's `size=` option takes it), or None
    /// where mounting is not permitted.
    pub fn tmpfs_of(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?
            .success();
        ok.then_some(Mount(dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_refuses_stores_and_keeps_serving() {
    if crate::backend::embedded_only("a_full_disk_refuses_stores_and_keeps_serving") {
        return;
    }
    let Some(mount) = Mount::tmpfs() else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root)");
        return;
    };
    let dir = tempfile::tempdir_in(&mount.0).unwrap();
    let s = TestServer::start_in(dir, &["--min-free-bytes", "1048576"]).await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "1", "full", "video/mp4", bytes(1, 3 << 20))
        .await;

    // Would end below the floor: refused before a byte is written.
    let r = s
        .upload("conn_a", "2", "full", "video/mp4", bytes(2, 4 << 20))
        .await;
    assert_eq!(r.status(), 507);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "INSUFFICIENT_STORAGE"
    );

    // No length announced: the disk runs out mid-write.
    let chunks =
        futures::stream::iter((0..80).map(|i| Ok::<_, std::io::Error>(bytes(i, 64 * 1024))));
    let r = s
        .conn(
            Method::PUT,
            "/v2/vault-plus/media/3/variants/full",
            "conn_a",
        )
        .header("content-type", "video/mp4")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507, "{}", r.text().await.unwrap());
    assert_eq!(s.tmp_files(), 0);

    // Reads, deletes and purges keep working.
    let served = s.http.get(v["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(served.bytes().await.unwrap().len(), 3 << 20);
    let st = body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert_eq!(st["storedCount"], 1);
    let purge = body(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(
        purge,
        json!({"success": true, "purgedCount": 1, "freedBytes": 3 << 20})
    );
    s.wait_reclaimed().await;
    let out = s.cli(&["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And once space is back, stores work again.
    s.put("conn_a", "4", "full", "video/mp4", bytes(4, 3 << 20))
        .await;
    drop(s);
}
