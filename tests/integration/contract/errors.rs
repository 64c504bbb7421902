//! Wire conventions (DEC "Wire conventions"): auth, the connection header,
//! the error body, request IDs, unknown routes; and bad path/upload input
//! (DEC "Media and variants", docs/DESIGN.md invariant 5).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::harness::{TestServer, bytes};

/// A request body for a route of the table.
pub enum Body {
    None,
    Json(serde_json::Value),
    Upload,
}

/// (method, path, takes x-connection-id, body). The list routes have their
/// own tests (lists.rs).
fn routes() -> Vec<(Method, &'static str, bool, Body)> {
    vec![
        (Method::GET, "/v2/vault-plus/media", true, Body::None),
        (Method::DELETE, "/v2/vault-plus/media", true, Body::None),
        (Method::GET, "/v2/vault-plus/media/100", true, Body::None),
        (Method::DELETE, "/v2/vault-plus/media/100", true, Body::None),
        (
            Method::POST,
            "/v2/vault-plus/media/batch",
            true,
            Body::Json(json!({"mediaIds": ["100"]})),
        ),
        (
            Method::PUT,
            "/v2/vault-plus/media/300/variants/full",
            true,
            Body::Upload,
        ),
        (Method::GET, "/v2/vault-plus/status", true, Body::None),
        (Method::GET, "/v2/vault-plus/stats", false, Body::None),
        (Method::GET, "/v2/vault-plus/100", true, Body::None),
        (Method::DELETE, "/v2/vault-plus/100", true, Body::None),
        (
            Method::POST,
            "/v2/vault-plus/batch",
            true,
            Body::Json(json!({"mediaIds": ["100"]})),
        ),
        (Method::GET, "/v2/vault-plus/list", true, Body::None),
        (Method::DELETE, "/v2/vault-plus/purge", true, Body::None),
        (Method::GET, "/v2/vault-plus/store/status", true, Body::None),
        (Method::GET, "/v2/vault-plus/store/stats", false, Body::None),
        (Method::GET, "/v2/account/connections", false, Body::None),
        (
            Method::DELETE,
            "/v2/account/connections/conn_a",
            false,
            Body::None,
        ),
        (
            Method::GET,
            "/v2/account/connections/conn_a/settings",
            false,
            Body::None,
        ),
        (
            Method::PATCH,
            "/v2/account/connections/conn_a/settings",
            false,
            Body::Json(json!({"vaultPlus": {"enabled": false}})),
        ),
        (Method::GET, "/v2/account/settings", false, Body::None),
        (
            Method::PATCH,
            "/v2/account/settings",
            false,
            Body::Json(json!({"vaultPlus": {"autoEnableForNewConnections": false}})),
        ),
    ]
}

fn with_body(rb: reqwest::RequestBuilder, body: &Body) -> reqwest::RequestBuilder {
    match body {
        Body::None => rb,
        Body::Json(v) => rb.json(v),
        Body::Upload => rb.header("content-type", "image/jpeg").body(bytes(3, 50)),
    }
}

async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "100", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "100", "thumb", "image/jpeg", 100, None).await;
    create(&s, "conn_a", "200", "full", "audio/mpeg", 500, Some("61")).await;
    s
}

#[tokio::test]
async fn every_route_answers_401_unauthorized_without_a_valid_account_key() {
    let s = seeded().await;
    let revoked = s.create_key("default", &["ACCOUNT"]);
    let out = s.cli(&["keys", "revoke", &revoked]);
    crate::harness::assert_success(&out);
    let access = s.create_key("default", &["ACCESS"]);
    let link = s.create_key("default", &["LINK", "DYNAMIC_RULES"]);
    let before = state(&s, "conn_a").await;
    let mut soft = Soft::default();
    let wrong = format!("{}0", s.key);
    let keys: [(&str, Option<&str>); 5] = [
        ("no key", None),
        ("unknown key", Some(&wrong)),
        ("revoked key", Some(&revoked)),
        ("ACCESS-only key", Some(&access)),
        ("LINK+DYNAMIC_RULES key", Some(&link)),
    ];
    for (method, path, takes_conn, body) in routes() {
        for (what, key) in keys {
            let mut rb = with_key(&s, key, method.clone(), path);
            if takes_conn {
                rb = rb.header("x-connection-id", "conn_a");
            }
            let r = send(with_body(rb, &body)).await;
            let what = format!("{method} {path} with {what}");
            soft.check(&what, || assert_unauthorized(&r, &what));
        }
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn connection_routes_need_a_non_empty_connection_header() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    let mut soft = Soft::default();
    for (method, path, takes_conn, body) in routes() {
        if !takes_conn {
            continue;
        }
        let r = send(with_body(s.req(method.clone(), path), &body)).await;
        let what = format!("{method} {path} without x-connection-id");
        soft.check(&what, || assert_header_required(&r, &what));
        let r = send(with_body(
            s.req(method.clone(), path).header("x-connection-id", ""),
            &body,
        ))
        .await;
        let what = format!("{method} {path} with an empty x-connection-id");
        soft.check(&what, || assert_header_required(&r, &what));
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn connection_routes_answer_401_session_not_provided_for_unknown_connections() {
    let s = seeded().await;
    s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("orgb", "conn_b");
    let before = state(&s, "conn_a").await;
    let mut soft = Soft::default();
    for (method, path, takes_conn, body) in routes() {
        if !takes_conn {
            continue;
        }
        for conn in ["conn_nope", "conn_b"] {
            let r = send(with_body(s.conn(method.clone(), path, conn), &body)).await;
            let what = format!("{method} {path} for {conn}");
            soft.check(&what, || assert_connection_not_found(&r, &what));
        }
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn unknown_routes_are_404_route_not_found() {
    let s = TestServer::start().await;
    for (method, path) in [
        (Method::GET, "/v2/nope"),
        (Method::GET, "/nope"),
        (Method::POST, "/v2/account/nope"),
        (Method::GET, "/v2/vault-plus/media/100/nope/full"),
    ] {
        let r = send(s.req(method.clone(), path)).await;
        assert_error(&r, 404, "ROUTE_NOT_FOUND");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_error_ids_are_distinct() {
    let s = seeded().await;
    let item = get_ok(&s, "conn_a", "/v2/vault-plus/media/100").await;
    let url = item["media"]["full"]["url"].as_str().unwrap().to_owned();
    let up = upload(
        &s,
        "conn_a",
        "400",
        "full",
        "image/jpeg",
        bytes(1, 10),
        None,
    )
    .await;
    assert_eq!(up.status, 201);
    let successes = [
        up,
        get(&s, "conn_a", "/v2/vault-plus/media").await,
        get(&s, "conn_a", "/v2/vault-plus/status").await,
        send(s.req(Method::GET, "/v2/vault-plus/stats")).await,
        send(s.req(Method::GET, "/v2/account/settings")).await,
        send(s.http.get(s.url("/healthz"))).await,
        send(s.http.get(s.url("/openapi.json"))).await,
        send(s.http.get(&url)).await,
    ];
    for r in &successes {
        assert!(r.status < 300, "{} {}", r.status, r.body);
        assert!(
            r.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "missing x-request-id on a {} answer",
            r.status
        );
    }
    let errors = [
        send(s.req(Method::GET, "/v2/nope")).await,
        get(&s, "conn_a", "/v2/vault-plus/media/999").await,
        send(s.req(Method::GET, "/v2/vault-plus/status")).await,
        send(with_key(&s, None, Method::GET, "/v2/vault-plus/stats")).await,
        get(&s, "conn_a", "/v2/vault-plus/media?limit=0").await,
    ];
    let mut seen = HashSet::new();
    for r in &errors {
        assert!(r.status >= 400, "{}", r.body);
        let id = r.body["requestId"]
            .as_str()
            .unwrap_or_else(|| panic!("requestId: {}", r.body));
        assert_eq!(r.header("x-request-id").as_deref(), Some(id));
        assert!(
            seen.insert(id.to_owned()),
            "request IDs must differ per request: {id}"
        );
    }
}

#[tokio::test]
async fn malformed_media_ids_in_paths_are_400_and_change_nothing() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    let thirty_three = "1".repeat(33);
    let bad = [
        "abc",
        "12a",
        "1.5",
        "-1",
        "+1",
        "1e3",
        "%201",
        "1%20",
        "%EF%BC%91",
        &thirty_three,
    ];
    for id in bad {
        for (method, path) in [
            (Method::GET, format!("/v2/vault-plus/media/{id}")),
            (Method::DELETE, format!("/v2/vault-plus/media/{id}")),
        ] {
            let r = send(s.conn(method.clone(), &path, "conn_a")).await;
            assert_bad_request(&r, &["media"], &format!("{method} {path}"));
        }
        let path = format!("/v2/vault-plus/media/{id}/variants/full");
        let r = send(
            s.conn(Method::PUT, &path, "conn_a")
                .header("content-type", "image/jpeg")
                .body(bytes(1, 10)),
        )
        .await;
        assert_bad_request(&r, &["media"], &format!("PUT {path}"));
    }
    assert_eq!(state(&s, "conn_a").await, before);

    // The boundary: 32 digits is a valid media ID.
    let id32 = "9".repeat(32);
    create(&s, "conn_a", &id32, "full", "image/jpeg", 10, None).await;
    let item = get_ok(&s, "conn_a", &format!("/v2/vault-plus/media/{id32}")).await;
    assert_eq!(item["id"], json!(id32));
}

#[tokio::test]
async fn malformed_labels_are_400_and_change_nothing() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    let long = "a".repeat(33);
    for label in [
        "a-b", "a.b", "a..b", "a%2Fb", "%2F", "a%20b", "%C3%A9", &long,
    ] {
        let r = upload(&s, "conn_a", "100", label, "image/jpeg", bytes(1, 10), None).await;
        assert_bad_request(&r, &["label"], &format!("label {label}"));
    }
    // `..` and `.` must reach the server unnormalised.
    for label in ["..", "%2E%2E", "."] {
        let path = format!("/v2/vault-plus/media/100/variants/{label}");
        let r = raw(
            &s,
            "PUT",
            &path,
            &[
                ("apiKey", &s.key),
                ("x-connection-id", "conn_a"),
                ("content-type", "image/jpeg"),
            ],
            &bytes(1, 10),
        )
        .await;
        assert_bad_request(&r, &["label"], &format!("raw label {label}"));
    }
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn labels_are_open_strings_kept_as_given() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let long = "Z".repeat(32);
    let labels = [
        "full",
        "thumb",
        "preview",
        "squarePreview",
        "720p",
        "source",
        "A_b9",
        &long,
    ];
    for label in labels {
        let v = create(&s, "conn_a", "5", label, "video/mp4", 20, Some("3")).await;
        assert_eq!(v["quality"], json!(label));
    }
    let item = get_ok(&s, "conn_a", "/v2/vault-plus/media/5").await;
    assert_eq!(keys_of(&item["media"]), key_set(&labels));
    for label in labels {
        assert_eq!(item["media"][label]["quality"], json!(label));
    }
}

#[tokio::test]
async fn uploads_with_bad_content_type_body_or_duration_are_4xx_and_change_nothing() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    for ct in [
        "text/plain",
        "application/json",
        "application/octet-stream",
        "imagejpeg",
        "image",
    ] {
        let r = upload(&s, "conn_a", "300", "full", ct, bytes(1, 10), None).await;
        assert!(
            (400..500).contains(&r.status),
            "content-type {ct}: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.error_lc().contains("content-type") || r.error_lc().contains("content type"),
            "{ct}: {}",
            r.body
        );
    }
    let r = send(
        s.conn(
            Method::PUT,
            "/v2/vault-plus/media/300/variants/full",
            "conn_a",
        )
        .body(bytes(1, 10)),
    )
    .await;
    assert!(
        (400..500).contains(&r.status),
        "no content-type: {} {}",
        r.status,
        r.body
    );
    assert!(
        r.error_lc().contains("content-type") || r.error_lc().contains("content type"),
        "{}",
        r.body
    );

    let r = upload(&s, "conn_a", "300", "full", "image/jpeg", Vec::new(), None).await;
    assert_bad_request(&r, &["empty", "body"], "empty upload");
    // Replacing with an empty body must not wipe the existing variant.
    let r = upload(&s, "conn_a", "100", "full", "image/jpeg", Vec::new(), None).await;
    assert_bad_request(&r, &["empty", "body"], "empty replacement");

    for d in ["abc", "-3", "NaN", "inf", "1,5"] {
        let r = upload(
            &s,
            "conn_a",
            "300",
            "full",
            "video/mp4",
            bytes(1, 10),
            Some(d),
        )
        .await;
        assert_bad_request(&r, &["duration"], &format!("x-media-duration {d}"));
    }
    // An empty body is known empty only once written: its blob goes to the
    // background reclaim, which must have deleted it.
    s.wait_reclaimed().await;
    assert_eq!(state(&s, "conn_a").await, before);
}

#[tokio::test]
async fn oversized_uploads_are_413_and_change_nothing() {
    let s = TestServer::start_with(&["--max-upload-bytes", "1000"]).await;
    s.add_connection("default", "conn_a");
    let v = create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    assert_eq!(v["sizeBytes"], json!(1000));
    let before = state(&s, "conn_a").await;
    let r = upload(
        &s,
        "conn_a",
        "2",
        "full",
        "image/jpeg",
        bytes(1, 1001),
        None,
    )
    .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    // A too-large replacement leaves the existing variant as it was.
    let r = upload(
        &s,
        "conn_a",
        "1",
        "full",
        "image/jpeg",
        bytes(1, 5000),
        None,
    )
    .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(state(&s, "conn_a").await, before);
    let url = v["url"].as_str().unwrap();
    let r = send(s.http.get(url)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.raw,
        content("1", "full", 1000),
        "the original bytes are still served"
    );
}

#[tokio::test]
async fn malformed_json_bodies_are_400() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    let paths = [
        (Method::POST, "/v2/vault-plus/media/batch", true),
        (
            Method::PATCH,
            "/v2/account/connections/conn_a/settings",
            false,
        ),
        (Method::PATCH, "/v2/account/settings", false),
    ];
    for (method, path, takes_conn) in paths {
        for body in ["{", "not json", "{\"mediaIds\": [\"1\",]}", "[1, 2", ""] {
            let mut rb = s
                .req(method.clone(), path)
                .header("content-type", "application/json")
                .body(body.to_owned());
            if takes_conn {
                rb = rb.header("x-connection-id", "conn_a");
            }
            let r = send(rb).await;
            assert_eq!(r.status, 400, "{method} {path} body {body:?}: {}", r.body);
            assert_error(&r, 400, "BAD_REQUEST");
        }
    }
    assert_eq!(state(&s, "conn_a").await, before);
}
