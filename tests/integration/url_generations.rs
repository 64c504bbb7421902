//! Media URLs follow the stored bytes: a URL handed out before a delete,
//! purge or replace never serves again, even once the same media and label
//! are stored anew; repeated listings of an unchanged variant hand out the
//! same URL; and no URL is cacheable for longer than a URL can live.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestServer, body, bytes};
use crate::resign::{EXPIRY_AT, GENERATION_AT, Resigner};

/// The longest `presignedUrlTtlSeconds` (7 days) and its rounding window.
const MAX_TTL: u64 = 7 * 86_400;
const MAX_LIFETIME: u64 = MAX_TTL + MAX_TTL / 10;

async fn server() -> TestServer {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s
}

async fn url_of_put(s: &TestServer, media: &str, data: Vec<u8>) -> String {
    let v = s.put("conn_a", media, "full", "image/jpeg", data).await;
    v["url"].as_str().unwrap().to_owned()
}

async fn listed_url(s: &TestServer, media: &str) -> String {
    let item: Value = body(s.conn(
        Method::GET,
        &format!("/v2/vault-plus/media/{media}"),
        "conn_a",
    ))
    .await;
    item["media"]["full"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{item}"))
        .to_owned()
}

async fn fetch(s: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let r = s.http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_old_url_stays_dead_after_delete_and_store_anew() {
    let s = server().await;
    let data = bytes(3, 500);
    let old = url_of_put(&s, "42", data.clone()).await;
    assert_eq!(fetch(&s, &old).await, (200, data.clone()));
    let del: Value = body(s.conn(Method::DELETE, "/v2/vault-plus/media/42", "conn_a")).await;
    assert_eq!(del["success"], true, "{del}");
    assert_eq!(fetch(&s, &old).await.0, 404);
    // The same media and label, even the same bytes, stored anew.
    let new = url_of_put(&s, "42", data.clone()).await;
    assert_ne!(new, old);
    assert_eq!(fetch(&s, &new).await, (200, data));
    assert_eq!(
        fetch(&s, &old).await.0,
        404,
        "the old URL never serves again"
    );
}

#[tokio::test]
async fn an_old_url_stays_dead_after_purge_and_store_anew() {
    let s = server().await;
    let old = url_of_put(&s, "42", bytes(4, 300)).await;
    let purge: Value = body(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(purge["purgedCount"], 1, "{purge}");
    let new = url_of_put(&s, "42", bytes(4, 300)).await;
    assert_ne!(new, old);
    assert_eq!(fetch(&s, &new).await.0, 200);
    assert_eq!(fetch(&s, &old).await.0, 404);
}

/// A replace (PUT over a stored variant) ends the old URLs: they never
/// start serving the new bytes.
#[tokio::test]
async fn a_replace_ends_the_old_urls() {
    let s = server().await;
    let first = bytes(5, 400);
    let second = bytes(6, 450);
    let old = url_of_put(&s, "42", first.clone()).await;
    let listed_before = listed_url(&s, "42").await;
    assert_eq!(fetch(&s, &listed_before).await, (200, first));
    let new = url_of_put(&s, "42", second.clone()).await;
    assert_ne!(new, old);
    assert_eq!(fetch(&s, &new).await, (200, second.clone()));
    assert_eq!(fetch(&s, &old).await.0, 404);
    assert_eq!(fetch(&s, &listed_before).await.0, 404);
    assert_eq!(fetch(&s, &listed_url(&s, "42").await).await, (200, second));
}

#[tokio::test]
async fn repeated_listings_of_an_unchanged_variant_give_identical_urls() {
    let s = server().await;
    let put = url_of_put(&s, "42", bytes(7, 100)).await;
    let a = listed_url(&s, "42").await;
    let b = listed_url(&s, "42").await;
    // Two listings a rounding window (6 min at the default TTL) apart are
    // the only way these may differ; then the next two must agree.
    if a == b {
        assert_eq!(a, put, "the upload's own answer too");
    } else {
        assert_eq!(listed_url(&s, "42").await, listed_url(&s, "42").await);
    }
    let page: Value = body(s.conn(Method::GET, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(page["items"][0]["media"]["full"]["url"], json!(b));
}

#[tokio::test]
async fn max_age_never_exceeds_the_longest_url_lifetime() {
    let s = server().await;
    let patch = |ttl: u64| {
        s.req(Method::PATCH, "/v2/account/connections/conn_a/settings")
            .json(&json!({"vaultPlus": {"settings": {"presignedUrlTtlSeconds": ttl}}}))
            .send()
    };
    let r = patch(MAX_TTL + 1).await.unwrap();
    assert_eq!(r.status(), 400, "longer than the documented maximum");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("presignedUrlTtlSeconds"),
        "{e}"
    );
    assert_eq!(patch(MAX_TTL).await.unwrap().status(), 200);
    let url = url_of_put(&s, "42", bytes(8, 100)).await;
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age: u64 = cc
        .strip_prefix("public, max-age=")
        .unwrap_or_else(|| panic!("{cc}"))
        .parse()
        .unwrap();
    assert!(max_age >= MAX_TTL - 60, "kept until the URL expires: {cc}");
    assert!(max_age <= MAX_LIFETIME, "capped: {cc}");
}

/// Even a correctly signed token is refused when it expires further ahead
/// than any setting gives, and one naming another generation finds nothing.
#[tokio::test]
async fn far_future_and_foreign_generation_tokens_are_refused() {
    if crate::backend::embedded_only("far_future_and_foreign_generation_tokens_are_refused") {
        return;
    }
    let s = server().await;
    let url = url_of_put(&s, "42", bytes(9, 100)).await;
    let r = Resigner::of(&s, &url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let generation = i64::from_be_bytes(r.payload[13..21].try_into().unwrap());
    // Re-signing the same payload is valid: the key is the right one.
    assert_eq!(
        fetch(&s, &r.with(GENERATION_AT, generation.to_be_bytes()))
            .await
            .0,
        200
    );
    for far in [u64::MAX, now + MAX_LIFETIME + 3600] {
        let (code, body) = fetch(&s, &r.with(EXPIRY_AT, far.to_be_bytes())).await;
        assert_eq!(code, 403, "expiry {far}");
        let e: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(e["error"], "Invalid or expired media URL");
    }
    let near = r.with(EXPIRY_AT, (now + MAX_TTL).to_be_bytes());
    let ok = s.http.get(&near).send().await.unwrap();
    assert_eq!(ok.status(), 200, "within the longest lifetime");
    let cc = ok.headers()["cache-control"].to_str().unwrap().to_owned();
    let age: u64 = cc.rsplit('=').next().unwrap().parse().unwrap();
    assert!(age <= MAX_TTL && age + 5 >= MAX_TTL, "{cc}");
    let other = r.with(GENERATION_AT, generation.wrapping_add(1).to_be_bytes());
    assert_eq!(fetch(&s, &other).await.0, 404, "another generation");
}

/// Evicted (by a storage limit), then listed and stored again from the
/// upstream: the URL handed out before the eviction stays dead.
#[tokio::test]
async fn an_old_url_stays_dead_after_eviction_and_store_anew() {
    use crate::demo::{Demo, add, all_pages, server_for, wait_idle};
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;
    add(&s, "103").await;
    wait_idle(&s).await;
    let first = all_pages(&s, "/v2/vault-plus/lists/103/media").await[0]["mediaId"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = listed_url(&s, &first).await;
    assert_eq!(fetch(&s, &old).await.0, 200);
    let settings = |v: Value| {
        s.req(Method::PATCH, "/v2/account/connections/conn_a/settings")
            .json(&json!({"vaultPlus": {"settings": v}}))
            .send()
    };
    let r = settings(json!({"storageLimitBytes": 1, "storageLimitPurgeStrategy": "purge_oldest"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fetch(&s, &old).await.0, 404, "evicted");
    let r = settings(json!({"storageLimitBytes": 0})).await.unwrap();
    assert_eq!(r.status(), 200);
    add(&s, "103").await;
    wait_idle(&s).await;
    let item: Value = body(s.conn(
        Method::GET,
        &format!("/v2/vault-plus/media/{first}"),
        "conn_a",
    ))
    .await;
    assert_eq!(item["media"]["full"]["status"], "stored", "{item}");
    let new = item["media"]["full"]["url"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(fetch(&s, &new).await.0, 200);
    assert_eq!(
        fetch(&s, &old).await.0,
        404,
        "the old URL never serves again"
    );
}
