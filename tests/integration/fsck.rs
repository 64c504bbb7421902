//! `vaultplus fsck`: consistent data passes; each kind of damage is found,
//! reported with a non-zero exit, and repaired with --repair.

use reqwest::Method;

use crate::harness::{TestServer, body, bytes};

fn fsck(s: &TestServer, repair: bool) -> (bool, String) {
    let mut args = vec!["fsck"];
    if repair {
        args.push("--repair");
    }
    let out = s.cli(&args);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn fsck_finds_and_repairs_damage() {
    if crate::backend::embedded_only("fsck_finds_and_repairs_damage") {
        return;
    }
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    for (media, size) in [("1", 100), ("2", 200), ("3", 300)] {
        s.put("conn_a", media, "full", "image/png", bytes(1, size))
            .await;
    }
    let (ok, text) = fsck(&s, false);
    assert!(ok, "{text}");
    assert!(
        text.contains("checked 3 stored variants and 3 blobs") && text.contains("consistent"),
        "{text}"
    );

    // Damage: a blob deleted, a blob truncated, an orphan file.
    let blobs = s.data_dir().join("blobs");
    let files = s.blob_files();
    let by_size = |n: u64| files.iter().find(|f| f.1 == n).unwrap().0.clone();
    std::fs::remove_file(blobs.join(by_size(100))).unwrap();
    std::fs::write(blobs.join(by_size(200)), b"short").unwrap();
    let scope_dir = by_size(300).split('/').next().unwrap().to_owned();
    std::fs::write(blobs.join(&scope_dir).join("0123456789abcdef"), b"orphan").unwrap();

    let (ok, text) = fsck(&s, false);
    assert!(!ok, "damage exits non-zero: {text}");
    assert!(text.contains("is missing"), "{text}");
    assert!(
        text.contains("holds 5 bytes, the record says 200"),
        "{text}"
    );
    assert!(text.contains("belongs to no record"), "{text}");

    let (ok, text) = fsck(&s, true);
    assert!(ok, "{text}");
    assert!(text.contains("3 problems repaired"), "{text}");
    s.wait_reclaimed().await;
    let (ok, text) = fsck(&s, false);
    assert!(ok && text.contains("consistent"), "{text}");
    // The damaged variants are removed tombstones; totals follow.
    let st = body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert_eq!(
        (st["storedCount"].as_u64(), st["totalSizeBytes"].as_u64()),
        (Some(1), Some(300)),
        "{st}"
    );
    let removed = body(s.conn(Method::GET, "/v2/vault-plus/media?status=removed", "conn_a")).await;
    assert_eq!(removed["items"].as_array().unwrap().len(), 2);
    assert_eq!(s.blob_files().len(), 1);
}

#[tokio::test]
async fn fsck_repairs_counters() {
    if crate::backend::embedded_only("fsck_repairs_counters") {
        return;
    }
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.put("conn_a", "1", "full", "image/png", bytes(1, 100))
        .await;
    // Corrupt the counters behind the server's back.
    let db = s.data_dir().join("catalog.sqlite");
    crate::harness::sqlite(&db, "UPDATE scopes SET stored_bytes = stored_bytes + 7");
    let (ok, text) = fsck(&s, false);
    assert!(
        !ok && text.contains("counters say 1 variants, 1 stored, 107 bytes"),
        "{text}"
    );
    let (ok, text) = fsck(&s, true);
    assert!(ok, "{text}");
    assert!(fsck(&s, false).0);
    let st = body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert_eq!(st["totalSizeBytes"], 100);
}
