//! Signed media URLs (DEC "Media URLs"; API 4.12; brief: vaultplus
//! specifics): served without a key, GET/HEAD/Range/conditional, access
//! counts, tampering, stability across listings, POST.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::harness::{TestServer, bytes};

async fn one_video(s: &TestServer) -> Value {
    s.add_connection("default", "conn_a");
    let r = upload(
        s,
        "conn_a",
        "100",
        "full",
        "video/mp4",
        bytes(5, 5000),
        Some("8"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn variant(s: &TestServer) -> Value {
    get_ok(s, "conn_a", "/v2/vault-plus/media/100").await["media"]["full"].clone()
}

#[tokio::test]
async fn a_signed_url_serves_the_bytes_without_an_api_key() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/v2/media/", s.base)), "{url}");
    let r = send(s.http.get(url)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw, bytes(5, 5000));
    assert_eq!(r.header("content-type").as_deref(), Some("video/mp4"));
    assert_eq!(r.header("content-length").as_deref(), Some("5000"));
    assert!(r.header("etag").is_some_and(|e| !e.is_empty()), "ETag");
    assert!(r.header("x-request-id").is_some(), "x-request-id");
    // The same URL from the listing serves the same bytes.
    let page = get_ok(&s, "conn_a", "/v2/vault-plus/media").await;
    let listed = page["items"][0]["media"]["full"]["url"].as_str().unwrap();
    assert_eq!(send(s.http.get(listed)).await.raw, bytes(5, 5000));
}

/// Waits until `accessCount` reaches `n` (counts may be recorded in the
/// background), then returns the variant.
async fn wait_for_count(s: &TestServer, n: i64) -> Value {
    let mut got = variant(s).await;
    for _ in 0..50 {
        if int(&got["accessCount"]) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = variant(s).await;
    }
    got
}

#[tokio::test]
async fn access_count_counts_gets_but_not_heads() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap();
    let created = int(&v["createdAt"]);
    for _ in 0..2 {
        let head = send(s.http.head(url)).await;
        assert_eq!(head.status, 200);
        assert!(head.raw.is_empty());
        assert_eq!(head.header("content-length").as_deref(), Some("5000"));
        assert!(head.header("etag").is_some(), "ETag on HEAD");
    }
    for _ in 0..2 {
        assert_eq!(send(s.http.get(url)).await.status, 200);
    }
    let got = wait_for_count(&s, 2).await;
    assert_eq!(
        got["accessCount"],
        json!(2),
        "two GETs count, HEADs do not: {got}"
    );
    assert!(int(&got["lastAccessedAt"]) >= created, "{got}");
    // Listing does not count as an access.
    assert_eq!(variant(&s).await["accessCount"], json!(2));
}

#[tokio::test]
async fn a_range_request_answers_206_with_the_slice() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap();
    let r = send(s.http.get(url).header("range", "bytes=10-19")).await;
    assert_eq!(
        r.status, 206,
        "Range support (DEC \"Media URLs\": 206 counts as an access)"
    );
    assert_eq!(r.raw, bytes(5, 5000)[10..20].to_vec());
    assert_eq!(
        r.header("content-range").as_deref(),
        Some("bytes 10-19/5000")
    );
    assert_eq!(r.header("content-length").as_deref(), Some("10"));
    let tail = send(s.http.get(url).header("range", "bytes=4990-")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.raw, bytes(5, 5000)[4990..].to_vec());
}

#[tokio::test]
async fn a_conditional_get_with_the_etag_answers_304() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap();
    let etag = send(s.http.get(url)).await.header("etag").expect("ETag");
    let r = send(s.http.get(url).header("if-none-match", &etag)).await;
    assert_eq!(r.status, 304);
    assert!(r.raw.is_empty());
    let other = send(
        s.http
            .get(url)
            .header("if-none-match", "\"something-else\""),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.raw.len(), 5000);
}

/// DEC "Media URLs": `accessCount` counts 200, 206 and 304 answers.
#[tokio::test]
async fn range_and_conditional_gets_count_as_accesses() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap();
    let etag = send(s.http.head(url)).await.header("etag").expect("ETag");
    let ranged = send(s.http.get(url).header("range", "bytes=0-9")).await;
    assert!(
        ranged.status == 206 || ranged.status == 200,
        "{}",
        ranged.status
    );
    let cond = send(s.http.get(url).header("if-none-match", &etag)).await;
    assert!(cond.status == 304 || cond.status == 200, "{}", cond.status);
    let got = wait_for_count(&s, 2).await;
    assert_eq!(got["accessCount"], json!(2), "{got}");
}

#[tokio::test]
async fn a_tampered_token_is_403_and_serves_nothing() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let url = v["url"].as_str().unwrap().to_owned();
    let prefix = format!("{}/v2/media/", s.base);
    let token = url
        .strip_prefix(&prefix)
        .expect("URL under /v2/media/")
        .to_owned();
    let mut chars: Vec<char> = token.chars().collect();
    let i = (chars.len() / 2..chars.len())
        .find(|&i| chars[i].is_ascii_alphanumeric())
        .expect("an alphanumeric character in the token");
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_ne!(tampered, token);
    let r = send(s.http.get(format!("{prefix}{tampered}"))).await;
    assert_error(&r, 403, "FORBIDDEN");
    // A failed request is not an access.
    assert_eq!(variant(&s).await["accessCount"], json!(0));
}

#[tokio::test]
async fn repeated_listings_hand_out_identical_urls() {
    let s = TestServer::start().await;
    one_video(&s).await;
    let mut urls = Vec::new();
    for _ in 0..3 {
        urls.push(variant(&s).await["url"].as_str().unwrap().to_owned());
    }
    // At most one expiry-window boundary can fall between three quick reads.
    assert!(urls[0] == urls[1] || urls[1] == urls[2], "{urls:?}");
}

#[tokio::test]
async fn post_to_a_stored_variant_url_answers_not_queued() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let r = send(s.http.post(v["url"].as_str().unwrap())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"queued": false, "status": "stored"}));
    assert_eq!(variant(&s).await["status"], "stored");
}

#[tokio::test]
async fn urls_stop_serving_after_delete_and_purge() {
    let s = TestServer::start().await;
    let v = one_video(&s).await;
    let t = create(&s, "conn_a", "200", "thumb", "image/jpeg", 30, None).await;
    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/media/100", "conn_a")).await;
    assert_eq!(r.body["success"], json!(true));
    let gone = send(s.http.get(v["url"].as_str().unwrap())).await;
    assert_eq!(gone.status, 404);
    assert!(gone.body.is_object(), "a JSON error body: {:?}", gone.body);
    assert_eq!(
        send(s.http.get(t["url"].as_str().unwrap())).await.status,
        200
    );
    purge(&s, "conn_a").await;
    assert_eq!(
        send(s.http.get(t["url"].as_str().unwrap())).await.status,
        404
    );
    assert_eq!(
        send(s.http.head(t["url"].as_str().unwrap())).await.status,
        404
    );
}
