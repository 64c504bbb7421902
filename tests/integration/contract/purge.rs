//! `DELETE /v2/vault-plus/media` (SEED, exact) and its older path
//! `DELETE /v2/vault-plus/purge` (DEC "Purge").

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::harness::{TestServer, bytes};

/// conn_a: item 100 (full 1000 + thumb 100, image), item 200 (full video
/// 5000, replaced once from 700 bytes). conn_b: item 100 (full 400).
async fn seed_two_connections(s: &TestServer) -> Vec<String> {
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let mut urls = Vec::new();
    for (media, label, ct, len, dur) in [
        ("100", "full", "image/jpeg", 1000, None),
        ("100", "thumb", "image/jpeg", 100, None),
        ("200", "full", "video/mp4", 700, Some("12")),
    ] {
        let v = create(s, "conn_a", media, label, ct, len, dur).await;
        urls.push(v["url"].as_str().unwrap().to_owned());
    }
    // Replacing a variant answers 200; only the new bytes are held.
    let r = upload(
        s,
        "conn_a",
        "200",
        "full",
        "video/mp4",
        bytes(9, 5000),
        Some("12"),
    )
    .await;
    assert_eq!(r.status, 200, "replace: {}", r.body);
    urls.push(r.body["url"].as_str().unwrap().to_owned());
    create(s, "conn_b", "100", "full", "image/png", 400, None).await;
    urls
}

#[tokio::test]
async fn purge_answers_the_exact_seed_body_and_removes_everything() {
    let s = TestServer::start().await;
    let urls = seed_two_connections(&s).await;
    // A per-connection override that must survive the purge.
    let r = patch_conn_settings(
        &s,
        "conn_a",
        json!({"vaultPlus": {"settings": {"retentionDays": 9}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b_before = state(&s, "conn_b").await;
    let b_media_before = b_before["media"].clone();

    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "x-request-id on 200"
    );
    // SEED 200: exactly {success, purgedCount, freedBytes}; DEC: counts are
    // variant records, bytes of the stored variants.
    assert_eq!(
        r.body,
        json!({"success": true, "purgedCount": 3, "freedBytes": 6100})
    );

    // Nothing of it is listed, gettable, counted or served (DEC "Purge").
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media").await;
    assert_eq!(page, json!({"items": []}));
    let removed = get_ok(&s, "conn_a", "/v2/vault-plus/media?status=removed").await;
    assert_eq!(removed, json!({"items": []}));
    for id in ["100", "200"] {
        let r = get(&s, "conn_a", &format!("/v2/vault-plus/media/{id}")).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
        assert_eq!(r.body["error"], "Media not found");
    }
    let batch = send(
        s.conn(Method::POST, "/v2/vault-plus/media/batch", "conn_a")
            .json(&json!({"mediaIds": ["100", "200"]})),
    )
    .await
    .ok(200);
    assert_eq!(batch, json!({"items": []}));
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
    );
    let stats = stats_of(&s).await;
    assert_eq!(stats["totalStorageBytes"], json!(400));
    assert_eq!(stats["totalMediaCount"], json!(1));
    for url in &urls {
        let r = send(s.http.get(url)).await;
        assert_eq!(
            r.status, 404,
            "URL issued before the purge must answer 404: {url}"
        );
        assert_ne!(r.raw.len(), 1000, "no bytes after a purge");
    }

    // Settings and the enabled flag stay.
    let settings = send(s.req(Method::GET, "/v2/account/connections/conn_a/settings"))
        .await
        .ok(200);
    assert_eq!(settings["vaultPlus"]["enabled"], json!(true), "{settings}");
    assert_eq!(
        settings["vaultPlus"]["settingsOverrides"]["retentionDays"],
        json!(9),
        "{settings}"
    );

    // The sibling connection is untouched.
    let b_after = state(&s, "conn_b").await;
    assert_eq!(b_after["media"], b_media_before);
    assert_eq!(b_after["status"], b_before["status"]);

    // Bytes are physically gone (docs/DESIGN.md invariant 1): what is left
    // on disk is exactly conn_b's one variant.
    s.wait_reclaimed().await;
    let files = s.blob_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files.iter().map(|(_, n)| n).sum::<u64>(), 400, "{files:?}");
}

#[tokio::test]
async fn a_second_purge_reports_zero() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    assert_eq!(purge(&s, "conn_a").await["purgedCount"], json!(3));
    assert_eq!(
        purge(&s, "conn_a").await,
        json!({"success": true, "purgedCount": 0, "freedBytes": 0})
    );
}

#[tokio::test]
async fn purging_an_empty_connection_reports_zero() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_empty");
    assert_eq!(
        purge(&s, "conn_empty").await,
        json!({"success": true, "purgedCount": 0, "freedBytes": 0})
    );
}

#[tokio::test]
async fn media_stored_after_a_purge_is_kept_and_counted() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    purge(&s, "conn_a").await;
    // Same media ID and label: a new variant (201, not a replacement).
    let v = create(&s, "conn_a", "100", "full", "image/jpeg", 321, None).await;
    assert_eq!(v["status"], "stored");
    assert_eq!(v["sizeBytes"], json!(321));
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media").await;
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        vec!["100".to_owned()]
    );
    let item = get_ok(&s, "conn_a", "/v2/vault-plus/media/100").await;
    assert_eq!(
        keys_of(&item["media"]),
        key_set(&["full"]),
        "the old thumb must not come back: {item}"
    );
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 321})
    );
    let r = send(s.http.get(v["url"].as_str().unwrap())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw.len(), 321);
    assert_eq!(
        purge(&s, "conn_a").await,
        json!({"success": true, "purgedCount": 1, "freedBytes": 321})
    );
}

#[tokio::test]
async fn the_older_purge_path_is_the_same_operation() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/purge", "conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "purgedCount": 3, "freedBytes": 6100})
    );
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/media").await,
        json!({"items": []})
    );
    assert_eq!(
        purge(&s, "conn_a").await,
        json!({"success": true, "purgedCount": 0, "freedBytes": 0})
    );
    assert_eq!(status_of(&s, "conn_b").await["storedCount"], json!(1));
}

#[tokio::test]
async fn purge_without_a_connection_header_is_400_and_changes_nothing() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    let before = state(&s, "conn_a").await;
    for path in ["/v2/vault-plus/media", "/v2/vault-plus/purge"] {
        // Missing header.
        let r = send(s.req(Method::DELETE, path)).await;
        assert_header_required(&r, &format!("{path} without x-connection-id"));
        // Empty header (SEED: minLength 1).
        let r = send(s.req(Method::DELETE, path).header("x-connection-id", "")).await;
        assert_header_required(&r, &format!("{path} with empty x-connection-id"));
    }
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn purge_with_a_missing_wrong_revoked_or_underscoped_key_is_401_and_changes_nothing() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    let revoked = s.create_key("default", &["ACCOUNT"]);
    // The key works before it is revoked.
    let r = send(
        with_key(&s, Some(&revoked), Method::GET, "/v2/vault-plus/status")
            .header("x-connection-id", "conn_a"),
    )
    .await;
    assert_eq!(r.status, 200, "fresh ACCOUNT key: {}", r.body);
    let out = s.cli(&["keys", "revoke", &revoked]);
    crate::harness::assert_success(&out);
    let access_only = s.create_key("default", &["ACCESS"]);
    let before = state(&s, "conn_a").await;

    let wrong = format!("{}x", s.key);
    let cases: [(&str, Option<&str>); 5] = [
        ("missing key", None),
        ("wrong key", Some(&wrong)),
        ("garbage key", Some("not-a-key")),
        ("revoked key", Some(&revoked)),
        ("key without ACCOUNT scope", Some(&access_only)),
    ];
    for path in ["/v2/vault-plus/media", "/v2/vault-plus/purge"] {
        for (what, key) in cases {
            let r =
                send(with_key(&s, key, Method::DELETE, path).header("x-connection-id", "conn_a"))
                    .await;
            assert_unauthorized(&r, &format!("{path}: {what}"));
        }
    }
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn purge_of_an_unknown_or_foreign_connection_is_401_session_not_provided() {
    let s = TestServer::start().await;
    seed_two_connections(&s).await;
    s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("orgb", "conn_other_org");
    let before = state(&s, "conn_a").await;
    for path in ["/v2/vault-plus/media", "/v2/vault-plus/purge"] {
        for conn in ["conn_does_not_exist", "conn_other_org", "CONN_A"] {
            let r = send(s.conn(Method::DELETE, path, conn)).await;
            assert_connection_not_found(&r, &format!("{path} for {conn}"));
        }
    }
    assert_eq!(state(&s, "conn_a").await, before);
}

/// DEC "Purge": `purgedCount` counts variant records of any status except
/// `removed` tombstones, which go too but are not counted; DEC "Media and
/// variants": a storage-limit eviction keeps a `removed` record with
/// `sizeBytes` 0.
#[tokio::test]
async fn purge_removes_eviction_tombstones_without_counting_them() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let r = patch_conn_settings(
        &s,
        "conn_a",
        json!({"vaultPlus": {"settings": {"storageLimitBytes": 1500, "storageLimitPurgeStrategy": "purge_oldest"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    // Over the limit: the oldest variant (media 1) is evicted by policy.
    let r = upload(
        &s,
        "conn_a",
        "2",
        "full",
        "image/jpeg",
        bytes(2, 1000),
        None,
    )
    .await;
    assert!(
        r.status == 201,
        "upload within a purge_oldest limit is accepted: {} {}",
        r.status,
        r.body
    );
    let removed = wait_for_removed(&s, "conn_a", 1).await;
    assert_eq!(ids(&removed), vec!["1".to_owned()]);
    assert_eq!(removed[0]["media"]["full"]["status"], "removed");
    assert_eq!(removed[0]["media"]["full"]["sizeBytes"], json!(0));
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 1000})
    );

    assert_eq!(
        purge(&s, "conn_a").await,
        json!({"success": true, "purgedCount": 1, "freedBytes": 1000})
    );
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/media?status=removed").await,
        json!({"items": []}),
        "tombstones are removed by a purge too"
    );
}

/// Polls (eviction may run in the background) until `n` items show up
/// under `status=removed`.
pub async fn wait_for_removed(s: &TestServer, conn: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let page = get_ok(s, conn, "/v2/vault-plus/media?status=removed").await;
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no storage-limit eviction became visible under status=removed");
}

/// DEC "Purge": a store in flight when the purge commits is discarded and
/// answers 409 CONFLICT; nothing of it is ever visible.
#[tokio::test]
async fn an_upload_in_flight_during_a_purge_is_discarded_with_409() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "1", "full", "image/jpeg", 100, None).await;

    // A raw request whose body arrives in two halves, the purge between them.
    let mut stream = raw_start(
        &s,
        "PUT",
        "/v2/vault-plus/media/2/variants/full",
        &[
            ("apiKey", &s.key),
            ("x-connection-id", "conn_a"),
            ("content-type", "image/jpeg"),
        ],
        8192,
    )
    .await;
    stream.write_all(&bytes(1, 4096)).await.unwrap();
    stream.flush().await.unwrap();
    // Let the server take the request in before the purge commits: wait
    // for the partial upload to show up under the data dir's tmp/ (bounded;
    // a server that buffers elsewhere just gets the full wait).
    for _ in 0..20 {
        let staged = s.tmp_files() > 0;
        if staged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(
        purge(&s, "conn_a").await,
        json!({"success": true, "purgedCount": 1, "freedBytes": 100})
    );
    // The server may already have answered and closed; that is fine.
    let _ = stream.write_all(&bytes(2, 4096)).await;
    let r = raw_finish(stream).await;
    assert_error(&r, 409, "CONFLICT");

    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/media").await,
        json!({"items": []})
    );
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
    );
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty(), "{:?}", s.blob_files());
}
