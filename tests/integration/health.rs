//! `/healthz` without secrets (issue 10, item 11): the public gets only
//! `{"status":"ok"}` or 503 `{"status":"unavailable"}`; the details (which
//! name paths, or the S3 endpoint and bucket) need an ACCOUNT key.

use reqwest::Method;
use serde_json::json;

use crate::contract::{Resp, assert_bad_request, assert_unauthorized, send};
use crate::harness::TestServer;

async fn health(s: &TestServer, key: Option<&str>) -> Resp {
    let mut rb = s.http.get(s.url("/healthz"));
    if let Some(k) = key {
        rb = rb.header("apiKey", k);
    }
    send(rb).await
}

/// Breaks the local blob store's probe: its write directory becomes a file
/// (a chmod would not stop a root test run).
fn break_blobs(s: &TestServer) {
    let tmp = s.data_dir().join("tmp");
    std::fs::rename(&tmp, s.data_dir().join("tmp.away")).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
}

fn mend_blobs(s: &TestServer) {
    let tmp = s.data_dir().join("tmp");
    std::fs::remove_file(&tmp).unwrap();
    std::fs::rename(s.data_dir().join("tmp.away"), &tmp).unwrap();
}

#[tokio::test]
async fn the_public_sees_only_the_status() {
    if crate::backend::embedded_only("the_public_sees_only_the_status") {
        return;
    }
    let s = TestServer::start().await;
    let r = health(&s, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));

    break_blobs(&s);
    let r = health(&s, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, json!({"status": "unavailable"}));
    let dir = s.data_dir().to_string_lossy().into_owned();
    assert!(
        !String::from_utf8_lossy(&r.raw).contains(&dir),
        "{}",
        r.body
    );

    mend_blobs(&s);
    assert_eq!(health(&s, None).await.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn an_account_key_sees_the_details() {
    if crate::backend::embedded_only("an_account_key_sees_the_details") {
        return;
    }
    let s = TestServer::start().await;
    let r = health(&s, Some(&s.key)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"status": "ok", "catalog": "ok", "blobs": "ok"})
    );

    break_blobs(&s);
    let r = health(&s, Some(&s.key)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["status"], "unavailable");
    assert_eq!(r.body["catalog"], "ok");
    let blobs = r.body["blobs"].as_str().unwrap_or_default();
    assert!(blobs.contains("not writable"), "{}", r.body);
    mend_blobs(&s);
}

#[tokio::test]
async fn a_bad_or_repeated_key_is_refused_not_answered_in_detail() {
    let s = TestServer::start().await;
    let r = health(&s, Some("vpk_nope_nope")).await;
    assert_unauthorized(&r, "unknown key");
    let r = send(
        s.http
            .get(s.url("/healthz"))
            .header("apiKey", &s.key)
            .header("apikey", &s.key),
    )
    .await;
    assert_bad_request(&r, &["apikey"], "two apiKey headers");
    // A revoked key gets no details either.
    let other = s.create_key("default", &["ACCOUNT"]);
    assert_eq!(health(&s, Some(&other)).await.body["catalog"], "ok");
    let out = s.cli(&["keys", "revoke", &other]);
    crate::harness::assert_success(&out);
    let r = health(&s, Some(&other)).await;
    assert_unauthorized(&r, "revoked key");
    // No query parameters either.
    let r = send(s.http.request(Method::GET, s.url("/healthz?verbose=1"))).await;
    assert_bad_request(&r, &["verbose"], "healthz?verbose=1");
}
