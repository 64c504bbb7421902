//! Retention with effect: policies evict variants (bytes deleted, records
//! kept as `removed`), from the sweep and when settings change.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, body, bytes};

async fn patch(s: &TestServer, settings: Value) -> Value {
    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_a/settings")
        .json(&json!({"vaultPlus": {"settings": settings}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn iso_days_ahead(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn status(s: &TestServer) -> Value {
    body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await
}

#[tokio::test]
async fn retention_days_evict_when_due_and_expires_at_says_when() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "1", "full", "image/png", bytes(1, 500))
        .await;
    patch(&s, json!({"retentionDays": 2})).await;
    let item = body(s.conn(Method::GET, "/v2/vault-plus/media/1", "conn_a")).await;
    let full = &item["media"]["full"];
    assert_eq!(
        full["expiresAt"].as_i64().unwrap(),
        full["storedAt"].as_i64().unwrap() + 2 * 86_400_000,
        "expiresAt tells when the variant goes"
    );
    // A day ahead: nothing is due. Three days ahead: it goes.
    let out = s.cli(&["retention", "run", "--as-of", &iso_days_ahead(1)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("evicted=0"));
    let out = s.cli(&["retention", "run", "--as-of", &iso_days_ahead(3)]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("evicted=1 freed_bytes=500"));
    assert_eq!(status(&s).await["storedCount"], 0);
    let removed = body(s.conn(Method::GET, "/v2/vault-plus/media?status=removed", "conn_a")).await;
    assert_eq!(removed["items"][0]["media"]["full"]["status"], "removed");
    assert_eq!(removed["items"][0]["media"]["full"]["sizeBytes"], 0);
    assert!(s.blob_files().is_empty(), "the bytes are really freed");
    assert_eq!(
        s.http
            .get(v["url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn access_expiry_evicts_after_its_days() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.put("conn_a", "1", "full", "image/png", bytes(1, 100))
        .await;
    s.put("conn_a", "2", "full", "image/png", bytes(2, 100))
        .await;
    patch(&s, json!({"accessExpiryDays": 5})).await;
    let out = s.cli(&["retention", "run", "--as-of", &iso_days_ahead(4)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("evicted=0"));
    let out = s.cli(&["retention", "run", "--as-of", &iso_days_ahead(6)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("evicted=2"));
}

#[tokio::test]
async fn lowering_the_storage_limit_evicts_at_once() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    for (m, size) in [("1", 300), ("2", 300), ("3", 300)] {
        s.put("conn_a", m, "full", "image/png", bytes(1, size))
            .await;
    }
    let answer = patch(
        &s,
        json!({"storageLimitBytes": 700, "storageLimitPurgeStrategy": "purge_oldest"}),
    )
    .await;
    assert_eq!(
        answer["purgeResult"],
        json!({"purgedCount": 1, "freedBytes": 300}),
        "{answer}"
    );
    assert_eq!(status(&s).await["totalSizeBytes"], 600);
    assert!(
        body(s.conn(Method::GET, "/v2/vault-plus/media/1", "conn_a")).await["media"]
            .get("full")
            .is_none()
    );
    // block_new: a store that does not fit answers 507 and changes nothing.
    patch(&s, json!({"storageLimitPurgeStrategy": "block_new"})).await;
    let r = s
        .upload("conn_a", "4", "full", "image/png", bytes(4, 200))
        .await;
    assert_eq!(r.status(), 507);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "INSUFFICIENT_STORAGE"
    );
    assert_eq!(status(&s).await["totalSizeBytes"], 600);
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().len(), 2);
}

/// Below the free-space floor new stores get 507; reads, deletes and purges
/// keep working and nothing is corrupted. (The floor is set above the free
/// space, instead of filling the real disk.)
#[tokio::test]
async fn a_disk_below_its_floor_refuses_stores_only() {
    if crate::backend::embedded_only("a_disk_below_its_floor_refuses_stores_only") {
        return;
    }
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "1", "full", "image/png", bytes(1, 100))
        .await;
    s.put("conn_a", "2", "full", "image/png", bytes(2, 100))
        .await;
    s.restart(&["--min-free-bytes", "1000000000000000000"])
        .await;
    let r = s
        .upload("conn_a", "3", "full", "image/png", bytes(3, 100))
        .await;
    assert_eq!(r.status(), 507);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "INSUFFICIENT_STORAGE");
    assert!(e["error"].as_str().unwrap().contains("--min-free-bytes"));
    let path =
        &v["url"].as_str().unwrap()[v["url"].as_str().unwrap().find("/v2/media/").unwrap()..];
    assert_eq!(s.http.get(s.url(path)).send().await.unwrap().status(), 200);
    assert_eq!(status(&s).await["storedCount"], 2);
    let del = body(s.conn(Method::DELETE, "/v2/vault-plus/media/1", "conn_a")).await;
    assert_eq!(del["success"], true);
    let purge = body(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(
        purge,
        json!({"success": true, "purgedCount": 1, "freedBytes": 100})
    );
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty());
    let out = s.cli(&["fsck"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
