//! Tenant isolation (docs/DESIGN.md invariant 4; DEC "Wire conventions":
//! another organization's connection answers exactly like an unknown one).

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::harness::{TestServer, bytes};

fn as_key(
    s: &TestServer,
    key: &str,
    method: Method,
    path: &str,
    conn: Option<&str>,
) -> reqwest::RequestBuilder {
    let rb = with_key(s, Some(key), method, path);
    match conn {
        Some(c) => rb.header("x-connection-id", c),
        None => rb,
    }
}

/// What `key` sees of `conn` and of its own organization.
async fn view(s: &TestServer, key: &str, conn: &str) -> Value {
    let mut out = json!({});
    for path in [
        "/v2/vault-plus/media?limit=100",
        "/v2/vault-plus/media?status=removed",
        "/v2/vault-plus/status",
    ] {
        out[path] = send(as_key(s, key, Method::GET, path, Some(conn)))
            .await
            .ok(200);
    }
    for path in [
        "/v2/vault-plus/stats".to_owned(),
        "/v2/account/connections".to_owned(),
        format!("/v2/account/connections/{conn}/settings"),
        "/v2/account/settings".to_owned(),
    ] {
        out[&path] = send(as_key(s, key, Method::GET, &path, None)).await.ok(200);
    }
    strip_urls(&out)
}

/// Every way `attacker` could touch `victim_conn`; each must answer as for
/// a connection that does not exist. (List routes: lists.rs.)
async fn attack(s: &TestServer, attacker: &str, victim_conn: &str) {
    let conn_routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v2/vault-plus/media", None),
        (Method::GET, "/v2/vault-plus/media/100", None),
        (
            Method::POST,
            "/v2/vault-plus/media/batch",
            Some(json!({"mediaIds": ["100"]})),
        ),
        (Method::GET, "/v2/vault-plus/status", None),
        (Method::DELETE, "/v2/vault-plus/media/100", None),
        (Method::DELETE, "/v2/vault-plus/media", None),
        (Method::DELETE, "/v2/vault-plus/purge", None),
        (Method::GET, "/v2/vault-plus/100", None),
        (Method::DELETE, "/v2/vault-plus/100", None),
        (
            Method::POST,
            "/v2/vault-plus/batch",
            Some(json!({"mediaIds": ["100"]})),
        ),
        (Method::GET, "/v2/vault-plus/list", None),
        (Method::GET, "/v2/vault-plus/store/status", None),
    ];
    let mut soft = Soft::default();
    for (method, path, body) in conn_routes {
        let mut rb = as_key(s, attacker, method.clone(), path, Some(victim_conn));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = send(rb).await;
        let what = format!("{method} {path} on a foreign connection");
        soft.check(&what, || assert_connection_not_found(&r, &what));
    }
    soft.finish();
    let r = send(
        as_key(
            s,
            attacker,
            Method::PUT,
            "/v2/vault-plus/media/100/variants/full",
            Some(victim_conn),
        )
        .header("content-type", "image/jpeg")
        .body(bytes(1, 10)),
    )
    .await;
    assert_connection_not_found(&r, "upload to a foreign connection");

    let settings = format!("/v2/account/connections/{victim_conn}/settings");
    let r = send(as_key(s, attacker, Method::GET, &settings, None)).await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    for body in [
        json!({"vaultPlus": {"enabled": false}}),
        json!({"vaultPlus": {"settings": {"retentionDays": 1}}}),
    ] {
        let r = send(as_key(s, attacker, Method::PATCH, &settings, None).json(&body)).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
    let r = send(as_key(
        s,
        attacker,
        Method::DELETE,
        &format!("/v2/account/connections/{victim_conn}"),
        None,
    ))
    .await;
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
}

async fn two_orgs() -> (TestServer, String) {
    let s = TestServer::start().await;
    let kb = s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("default", "conn_a");
    s.add_connection("orgb", "conn_b");
    create(&s, "conn_a", "100", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "100", "thumb", "image/jpeg", 100, None).await;
    let r = send(
        as_key(
            &s,
            &kb,
            Method::PUT,
            "/v2/vault-plus/media/100/variants/full",
            Some("conn_b"),
        )
        .header("content-type", "video/mp4")
        .header("x-media-duration", "9")
        .body(bytes(7, 700)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (s, kb)
}

#[tokio::test]
async fn org_b_cannot_read_count_delete_or_purge_org_a_media() {
    let (s, kb) = two_orgs().await;
    let a_before = view(&s, &s.key, "conn_a").await;
    attack(&s, &kb, "conn_a").await;
    assert_eq!(view(&s, &s.key, "conn_a").await, a_before);

    // Org B's own totals and connection list hold nothing of org A.
    let stats = send(as_key(&s, &kb, Method::GET, "/v2/vault-plus/stats", None))
        .await
        .ok(200);
    assert_eq!(
        stats,
        json!({"totalConnections": 1, "connectionsWithVaultPlus": 1, "totalStorageBytes": 700, "totalMediaCount": 1})
    );
    let list = send(as_key(
        &s,
        &kb,
        Method::GET,
        "/v2/account/connections",
        None,
    ))
    .await
    .ok(200);
    let conns: Vec<&str> = list["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(conns, ["conn_b"]);
}

#[tokio::test]
async fn org_a_cannot_read_count_delete_or_purge_org_b_media() {
    let (s, kb) = two_orgs().await;
    let b_before = view(&s, &kb, "conn_b").await;
    attack(&s, &s.key, "conn_b").await;
    assert_eq!(view(&s, &kb, "conn_b").await, b_before);
    assert_eq!(
        stats_of(&s).await,
        json!({"totalConnections": 1, "connectionsWithVaultPlus": 1, "totalStorageBytes": 1100, "totalMediaCount": 2})
    );
}

#[tokio::test]
async fn same_named_connections_in_two_orgs_stay_separate() {
    let s = TestServer::start().await;
    let kb = s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("default", "shared");
    s.add_connection("orgb", "shared");
    let a = create(&s, "shared", "100", "full", "image/jpeg", 1000, None).await;
    let put_b = |media: &'static str, len: usize| {
        send(
            as_key(
                &s,
                &kb,
                Method::PUT,
                &format!("/v2/vault-plus/media/{media}/variants/full"),
                Some("shared"),
            )
            .header("content-type", "image/png")
            .body(bytes(9, len)),
        )
    };
    let b100 = put_b("100", 300).await;
    assert_eq!(
        b100.status, 201,
        "same media ID in the other org's same-named connection is new: {}",
        b100.body
    );
    assert_eq!(put_b("200", 50).await.status, 201);

    // Each sees its own.
    let a_item = get_ok(&s, "shared", "/v2/vault-plus/media/100").await;
    assert_eq!(a_item["media"]["full"]["sizeBytes"], json!(1000));
    assert_eq!(a_item["media"]["full"]["contentType"], "image/jpeg");
    let b_item = send(as_key(
        &s,
        &kb,
        Method::GET,
        "/v2/vault-plus/media/100",
        Some("shared"),
    ))
    .await
    .ok(200);
    assert_eq!(b_item["media"]["full"]["sizeBytes"], json!(300));
    assert_error(
        &get(&s, "shared", "/v2/vault-plus/media/200").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_eq!(
        send(s.http.get(a["url"].as_str().unwrap())).await.raw,
        content("100", "full", 1000)
    );
    assert_eq!(
        send(s.http.get(b_item["media"]["full"]["url"].as_str().unwrap()))
            .await
            .raw,
        bytes(9, 300)
    );
    assert_eq!(
        status_of(&s, "shared").await,
        json!({"connectionId": "shared", "storedCount": 1, "pendingCount": 0, "totalSizeBytes": 1000})
    );
    let b_status = send(as_key(
        &s,
        &kb,
        Method::GET,
        "/v2/vault-plus/status",
        Some("shared"),
    ))
    .await
    .ok(200);
    assert_eq!(
        b_status,
        json!({"connectionId": "shared", "storedCount": 2, "pendingCount": 0, "totalSizeBytes": 350})
    );

    // Purging A's leaves B's.
    assert_eq!(
        purge(&s, "shared").await,
        json!({"success": true, "purgedCount": 1, "freedBytes": 1000})
    );
    let b_after = send(as_key(
        &s,
        &kb,
        Method::GET,
        "/v2/vault-plus/status",
        Some("shared"),
    ))
    .await
    .ok(200);
    assert_eq!(b_after, b_status);
    let b_url = send(s.http.get(b_item["media"]["full"]["url"].as_str().unwrap())).await;
    assert_eq!(b_url.status, 200);

    // Deleting B's connection leaves A's connection.
    let r = send(as_key(
        &s,
        &kb,
        Method::DELETE,
        "/v2/account/connections/shared",
        None,
    ))
    .await;
    assert_eq!(
        r.body,
        json!({"success": true, "connectionId": "shared", "purgeResult": {"purgedCount": 2, "freedBytes": 350}})
    );
    let a_settings = send(s.req(Method::GET, "/v2/account/connections/shared/settings")).await;
    assert_eq!(a_settings.status, 200, "{}", a_settings.body);
    create(&s, "shared", "300", "full", "image/jpeg", 10, None).await;
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().iter().map(|(_, n)| n).sum::<u64>(), 10);
}
