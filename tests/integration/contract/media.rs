//! The upload extension, single-item get/delete (API 4.3, 4.4; DEC "Single
//! item, batch, status, stats"), the item and variant shapes (API 3.1,
//! 3.2), `expiresAt` (DEC "Media and variants"), status and stats.

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::harness::{TestServer, bytes};

#[tokio::test]
async fn an_upload_answers_201_with_the_ten_field_variant_then_200_on_replace() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let r = upload(
        &s,
        "conn_a",
        "100",
        "full",
        "image/jpeg",
        bytes(1, 1234),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.body;
    assert_variant_shape(&v);
    assert_eq!(v["status"], "stored");
    assert_eq!(v["quality"], "full");
    assert_eq!(v["sizeBytes"], json!(1234));
    assert_eq!(v["contentType"], "image/jpeg");
    assert_eq!(v["accessCount"], json!(0));
    let created = int(&v["createdAt"]);
    let stored = int(&v["storedAt"]);
    assert!(
        created > 1_000_000_000_000,
        "createdAt is epoch milliseconds: {created}"
    );
    assert!(
        stored >= created,
        "storedAt {stored} before createdAt {created}"
    );
    assert_eq!(
        int(&v["lastAccessedAt"]),
        created,
        "lastAccessedAt equals createdAt until first access"
    );
    assert_eq!(
        int(&v["expiresAt"]),
        created + 365 * DAY_MS,
        "no policy: createdAt + 365 days"
    );
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/v2/media/", s.base)), "{url}");

    let r = upload(
        &s,
        "conn_a",
        "100",
        "full",
        "image/png",
        bytes(2, 300),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "a replacement answers 200: {}", r.body);
    assert_variant_shape(&r.body);
    assert_eq!(r.body["sizeBytes"], json!(300));
    assert_eq!(r.body["contentType"], "image/png");
    assert_eq!(r.body["status"], "stored");

    let item = get_ok(&s, "conn_a", "/v2/vault-plus/media/100").await;
    assert_eq!(
        keys_of(&item),
        key_set(&["id", "type", "duration", "media"]),
        "{item}"
    );
    assert_eq!(item["id"], "100");
    assert_eq!(item["type"], "image");
    assert_eq!(item["duration"], Value::Null);
    assert_eq!(keys_of(&item["media"]), key_set(&["full"]));
    assert_eq!(item["media"]["full"]["sizeBytes"], json!(300));
    let served = send(s.http.get(item["media"]["full"]["url"].as_str().unwrap())).await;
    assert_eq!(
        served.raw,
        bytes(2, 300),
        "the replacement's bytes are served"
    );
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 300})
    );
    // docs/DESIGN.md invariant 1: the replaced bytes do not linger.
    s.wait_reclaimed().await;
    let files = s.blob_files();
    assert_eq!(files.iter().map(|(_, n)| n).sum::<u64>(), 300, "{files:?}");
}

#[tokio::test]
async fn item_type_and_duration_follow_the_variants() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    // `type` comes from the `full` variant when there is one.
    create(&s, "conn_a", "7", "thumb", "image/jpeg", 10, None).await;
    create(&s, "conn_a", "7", "full", "video/mp4", 100, Some("12.5")).await;
    create(&s, "conn_a", "8", "full", "audio/mpeg", 50, Some("200")).await;
    create(&s, "conn_a", "9", "thumb", "image/webp", 5, None).await;

    let v = get_ok(&s, "conn_a", "/v2/vault-plus/media/7").await;
    assert_eq!(v["type"], "video");
    assert_eq!(v["duration"].as_f64(), Some(12.5), "{v}");
    assert_eq!(keys_of(&v["media"]), key_set(&["full", "thumb"]));
    assert_eq!(v["media"]["thumb"]["contentType"], "image/jpeg");
    for label in ["full", "thumb"] {
        assert_variant_shape(&v["media"][label]);
        assert_eq!(v["media"][label]["quality"], json!(label));
    }
    let a = get_ok(&s, "conn_a", "/v2/vault-plus/media/8").await;
    assert_eq!(a["type"], "audio");
    assert_eq!(a["duration"].as_f64(), Some(200.0));
    let i = get_ok(&s, "conn_a", "/v2/vault-plus/media/9").await;
    assert_eq!(i["type"], "image");
    assert_eq!(i["duration"], Value::Null);
}

#[tokio::test]
async fn get_of_an_unknown_media_is_404_media_not_found() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    create(&s, "conn_a", "100", "full", "image/jpeg", 10, None).await;
    for (conn, id) in [
        ("conn_a", "101"),
        ("conn_b", "100"),
        ("conn_a", &"1".repeat(32)),
    ] {
        let r = get(&s, conn, &format!("/v2/vault-plus/media/{id}")).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
        assert_eq!(r.body["error"], "Media not found", "{conn}/{id}");
    }
}

#[tokio::test]
async fn delete_removes_all_variants_of_one_item_and_a_miss_is_success_false() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let full = create(&s, "conn_a", "100", "full", "image/jpeg", 1000, None).await;
    let thumb = create(&s, "conn_a", "100", "thumb", "image/jpeg", 56, None).await;
    create(&s, "conn_a", "200", "full", "image/jpeg", 44, None).await;

    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/media/100", "conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "mediaId": "100", "freedBytes": 1056})
    );

    let g = get(&s, "conn_a", "/v2/vault-plus/media/100").await;
    assert_error(&g, 404, "RESOURCE_NOT_FOUND");
    for v in [&full, &thumb] {
        let r = send(s.http.get(v["url"].as_str().unwrap())).await;
        assert_eq!(r.status, 404, "a deleted variant's URL answers 404");
    }
    assert_eq!(
        ids(get_ok(&s, "conn_a", "/v2/vault-plus/media").await["items"]
            .as_array()
            .unwrap()),
        vec!["200".to_owned()]
    );
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/media?status=removed").await,
        json!({"items": []}),
        "a user delete leaves no tombstone"
    );
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 44})
    );

    for id in ["100", "999"] {
        let r = send(s.conn(
            Method::DELETE,
            &format!("/v2/vault-plus/media/{id}"),
            "conn_a",
        ))
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"success": false, "mediaId": id, "freedBytes": 0})
        );
    }
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().iter().map(|(_, n)| n).sum::<u64>(), 44);
}

#[tokio::test]
async fn status_and_stats_count_exactly() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let out = s.cli(&[
        "connections",
        "add",
        "--org",
        "default",
        "--disabled",
        "conn_c",
    ]);
    crate::harness::assert_success(&out);
    s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("orgb", "conn_x");

    assert_eq!(
        stats_of(&s).await,
        json!({"totalConnections": 3, "connectionsWithVaultPlus": 2, "totalStorageBytes": 0, "totalMediaCount": 0})
    );
    create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "1", "thumb", "image/jpeg", 100, None).await;
    create(&s, "conn_a", "2", "full", "audio/mpeg", 500, Some("30")).await;
    create(&s, "conn_b", "1", "full", "image/jpeg", 400, None).await;
    // Another organization's media is not counted here.
    let r = send(
        s.http
            .put(s.url("/v2/vault-plus/media/1/variants/full"))
            .header("apiKey", s.create_key("orgb", &["ACCOUNT"]))
            .header("x-connection-id", "conn_x")
            .header("content-type", "image/jpeg")
            .body(bytes(1, 700)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 3, "pendingCount": 0, "totalSizeBytes": 1600})
    );
    assert_eq!(
        status_of(&s, "conn_b").await,
        json!({"connectionId": "conn_b", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 400})
    );
    assert_eq!(
        stats_of(&s).await,
        json!({"totalConnections": 3, "connectionsWithVaultPlus": 2, "totalStorageBytes": 2000, "totalMediaCount": 4})
    );
    // The stats route takes no connection header and ignores one if sent.
    let r = send(s.conn(Method::GET, "/v2/vault-plus/stats", "conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalStorageBytes"], json!(2000));
}

/// DEC "Media and variants": `expiresAt` is the earliest of
/// `storedAt + retentionDays` and `lastAccessedAt + accessExpiryDays` (each
/// when > 0), else `createdAt + 365 days`, under the effective settings.
#[tokio::test]
async fn expires_at_follows_the_effective_settings() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = create(&s, "conn_a", "1", "full", "image/jpeg", 10, None).await;
    let created = int(&v["createdAt"]);
    let stored = int(&v["storedAt"]);
    assert_eq!(int(&v["expiresAt"]), created + 365 * DAY_MS);

    let variant = |item: &Value| item["media"]["full"].clone();
    let set =
        |body: Value| patch_conn_settings(&s, "conn_a", json!({"vaultPlus": {"settings": body}}));

    assert_eq!(set(json!({"retentionDays": 7})).await.status, 200);
    let got = variant(&get_ok(&s, "conn_a", "/v2/vault-plus/media/1").await);
    assert_eq!(
        int(&got["expiresAt"]),
        stored + 7 * DAY_MS,
        "retention only: {got}"
    );

    assert_eq!(
        set(json!({"retentionDays": 7, "accessExpiryDays": 3}))
            .await
            .status,
        200
    );
    let got = variant(&get_ok(&s, "conn_a", "/v2/vault-plus/media/1").await);
    let last = int(&got["lastAccessedAt"]);
    assert_eq!(
        int(&got["expiresAt"]),
        (stored + 7 * DAY_MS).min(last + 3 * DAY_MS),
        "both policies: {got}"
    );

    assert_eq!(
        set(json!({"retentionDays": 0, "accessExpiryDays": 10}))
            .await
            .status,
        200
    );
    let got = variant(&get_ok(&s, "conn_a", "/v2/vault-plus/media/1").await);
    assert_eq!(
        int(&got["expiresAt"]),
        int(&got["lastAccessedAt"]) + 10 * DAY_MS,
        "access expiry only: {got}"
    );

    // `null` resets to the org defaults: no policy again.
    let r = patch_conn_settings(&s, "conn_a", json!({"vaultPlus": {"settings": null}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = variant(&get_ok(&s, "conn_a", "/v2/vault-plus/media/1").await);
    assert_eq!(
        int(&got["expiresAt"]),
        created + 365 * DAY_MS,
        "after reset: {got}"
    );
}
