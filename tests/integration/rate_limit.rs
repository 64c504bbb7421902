//! Rate limits: per API key with X-RateLimit-* headers and 429 beyond the
//! burst, per-org overrides, and per client address on media URLs.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::harness::{TestServer, bytes};

/// One token every 10 s: nothing comes back within a test's few requests.
const SLOW: &[&str] = &["--rate-limit-per-minute", "6", "--rate-limit-burst", "5"];

fn num(r: &Response, name: &str) -> Option<u64> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

async fn settings(s: &TestServer, key: &str) -> Response {
    s.http
        .get(s.url("/v2/account/settings"))
        .header("apiKey", key)
        .send()
        .await
        .unwrap()
}

async fn patch(s: &TestServer, key: &str, body: Value) -> Response {
    s.http
        .patch(s.url("/v2/account/settings"))
        .header("apiKey", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn assert_limited(r: Response) -> u64 {
    assert_eq!(r.status(), 429);
    let retry = num(&r, "retry-after").expect("Retry-After on a 429");
    assert!(retry >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "RATE_LIMIT_EXCEEDED", "{body}");
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["error"].as_str().is_some());
    retry
}

#[tokio::test]
async fn headers_count_down_then_429_with_retry_after() {
    let s = TestServer::start_with(SLOW).await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = settings(&s, &s.key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(num(&r, "x-ratelimit-limit"), Some(5));
        let reset = num(&r, "x-ratelimit-reset").unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        remaining.push(num(&r, "x-ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let r = settings(&s, &s.key).await;
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(0));
    assert_eq!(num(&r, "x-ratelimit-limit"), Some(5));
    let retry = assert_limited(r).await;
    assert!(retry <= 10, "one token comes back every 10 s, got {retry}");
}

#[tokio::test]
async fn error_answers_carry_the_headers_too() {
    let s = TestServer::start_with(SLOW).await;
    // No x-connection-id: a 400, after authentication.
    let r = s
        .req(Method::GET, "/v2/vault-plus/status")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(4));
    let r = s
        .req(Method::GET, "/v2/no-such-route")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(3));
}

#[tokio::test]
async fn bad_keys_get_no_bucket_and_take_no_token() {
    let s = TestServer::start_with(SLOW).await;
    // The real key's ID with a wrong secret, and garbage.
    let id = s.key.split('_').nth(1).unwrap().to_owned();
    let wrong_secret = format!("vpk_{id}_wrong");
    for key in [wrong_secret.as_str(), "nonsense"]
        .into_iter()
        .cycle()
        .take(12)
    {
        let r = settings(&s, key).await;
        assert_eq!(
            r.status(),
            401,
            "never 429 for a key that did not authenticate"
        );
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    let r = settings(&s, &s.key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(4));
}

#[tokio::test]
async fn waiting_retry_after_lets_the_key_through_again() {
    // One token every 3 s, two at once.
    let s =
        TestServer::start_with(&["--rate-limit-per-minute", "20", "--rate-limit-burst", "2"]).await;
    for _ in 0..2 {
        assert_eq!(settings(&s, &s.key).await.status(), 200);
    }
    let retry = assert_limited(settings(&s, &s.key).await).await;
    assert!(retry <= 3);
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(200)).await;
    let r = settings(&s, &s.key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(0));
}

#[tokio::test]
async fn keys_have_separate_buckets() {
    let s = TestServer::start_with(SLOW).await;
    for _ in 0..5 {
        settings(&s, &s.key).await;
    }
    assert_eq!(settings(&s, &s.key).await.status(), 429);
    let other = s.create_key("default", &["ACCOUNT"]);
    let r = settings(&s, &other).await;
    assert_eq!(r.status(), 200);
    assert_eq!(num(&r, "x-ratelimit-remaining"), Some(4));
}

#[tokio::test]
async fn org_override_applies_to_every_key_of_the_org_and_resets() {
    // The server's own limit is generous: 600 a minute, 300 at once.
    let s = TestServer::start_with(&[
        "--rate-limit-per-minute",
        "600",
        "--rate-limit-burst",
        "300",
    ])
    .await;
    let other = s.create_key("default", &["ACCOUNT"]);
    let third = s.create_key("default", &["ACCOUNT"]);

    // Above the server's limit, or 0: refused, and nothing changes.
    for (bad, field) in [
        (json!({"rateLimitBurst": 301}), "rateLimitBurst"),
        (json!({"rateLimitPerMinute": 0}), "rateLimitPerMinute"),
        (json!({"rateLimitPerMinute": 1.5}), "rateLimitPerMinute"),
        (json!({"rateLimitPerMinute": -1}), "rateLimitPerMinute"),
        (json!({"rateLimitBurst": "3"}), "rateLimitBurst"),
    ] {
        let r = patch(&s, &s.key, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["type"], "BAD_REQUEST");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    let before: Value = settings(&s, &s.key).await.json().await.unwrap();
    assert!(before.get("rateLimitBurst").is_none(), "{before}");

    let r = patch(
        &s,
        &s.key,
        json!({"rateLimitPerMinute": 6, "rateLimitBurst": 3}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["settings"]["rateLimitPerMinute"], 6);
    assert_eq!(body["settings"]["rateLimitBurst"], 3);
    // The first key's spent tokens count against the smaller bucket (it
    // may be empty now); a fresh key of the org shows the override.
    let shown: Value = settings(&s, &third).await.json().await.unwrap();
    assert_eq!(
        (
            shown["rateLimitPerMinute"].clone(),
            shown["rateLimitBurst"].clone()
        ),
        (json!(6), json!(3))
    );

    // The other key of the org is held to the override.
    for want in [2, 1, 0] {
        let r = settings(&s, &other).await;
        assert_eq!(num(&r, "x-ratelimit-limit"), Some(3));
        assert_eq!(num(&r, "x-ratelimit-remaining"), Some(want));
    }
    assert_limited(settings(&s, &other).await).await;

    // null takes the server's limit again.
    let r = patch(
        &s,
        &third,
        json!({"rateLimitPerMinute": null, "rateLimitBurst": null}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = settings(&s, &other).await;
    assert_eq!(r.status(), 200);
    assert_eq!(num(&r, "x-ratelimit-limit"), Some(300));
    let shown: Value = r.json().await.unwrap();
    assert!(shown.get("rateLimitBurst").is_none(), "{shown}");
}

#[tokio::test]
async fn rate_limit_off_sends_no_headers() {
    let s = TestServer::start_with(&["--rate-limit-per-minute", "0"]).await;
    let r = settings(&s, &s.key).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-ratelimit-limit").is_none());
}

// --- media URLs, per client address -----------------------------------

async fn media_url(s: &TestServer) -> String {
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "42", "full", "image/png", bytes(1, 100))
        .await;
    v["url"].as_str().unwrap().to_owned()
}

fn fetch(s: &TestServer, url: &str, forwarded_for: Option<&str>) -> RequestBuilder {
    let rb = s.http.get(url);
    match forwarded_for {
        Some(v) => rb.header("x-forwarded-for", v),
        None => rb,
    }
}

async fn status(rb: RequestBuilder) -> u16 {
    rb.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn media_urls_are_limited_per_client_address() {
    // Two a minute, two at once.
    let s = TestServer::start_with(&["--media-rate-limit-per-minute", "2"]).await;
    let url = media_url(&s).await;
    for _ in 0..2 {
        let r = fetch(&s, &url, None).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    let r = fetch(&s, &url, None).send().await.unwrap();
    let retry = assert_limited(r).await;
    assert!(retry <= 30);
    // Without a trusted proxy, X-Forwarded-For is the client's own claim.
    assert_eq!(status(fetch(&s, &url, Some("203.0.113.9"))).await, 429);
    // API calls are not media fetches.
    assert_eq!(settings(&s, &s.key).await.status(), 200);
}

#[tokio::test]
async fn media_limit_off_by_default() {
    let s = TestServer::start().await;
    let url = media_url(&s).await;
    for _ in 0..20 {
        assert_eq!(status(fetch(&s, &url, None)).await, 200);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let s = TestServer::start_with(&[
        "--media-rate-limit-per-minute",
        "2",
        "--trusted-proxy",
        "10.0.0.0/8,127.0.0.1",
    ])
    .await;
    let url = media_url(&s).await;
    for _ in 0..2 {
        assert_eq!(status(fetch(&s, &url, Some("203.0.113.1"))).await, 200);
    }
    assert_eq!(status(fetch(&s, &url, Some("203.0.113.1"))).await, 429);
    // Another client behind the same proxy has its own bucket.
    assert_eq!(status(fetch(&s, &url, Some("203.0.113.2"))).await, 200);
    // A forged left part does not help: the right-most untrusted hop counts,
    // also past a trusted hop and over repeated headers.
    assert_eq!(
        status(fetch(&s, &url, Some("198.51.100.7, 203.0.113.1"))).await,
        429
    );
    let rb = s
        .http
        .get(&url)
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-for", "203.0.113.1, 10.1.1.1");
    assert_eq!(status(rb).await, 429);
    // Garbage from the proxy: the proxy itself is the client (its bucket is
    // fresh, then spent).
    for want in [200, 200, 429] {
        assert_eq!(status(fetch(&s, &url, Some("not-an-address"))).await, want);
    }
}

#[tokio::test]
async fn openapi_documents_the_limits() {
    let s = TestServer::start_with(SLOW).await;
    let d: Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let settings = &d["paths"]["/v2/account/settings"];
    for (method, code) in [("get", "200"), ("patch", "400"), ("patch", "429")] {
        let headers = &settings[method]["responses"][code]["headers"];
        for h in [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ] {
            assert!(
                headers.get(h).is_some(),
                "{method} {code} lacks {h}: {headers}"
            );
        }
    }
    let patch_body = &d["components"]["schemas"]["OrgSettingsPatch"]["properties"];
    assert!(
        patch_body.get("rateLimitPerMinute").is_some(),
        "{patch_body}"
    );
    assert!(patch_body.get("rateLimitBurst").is_some());
    // The most an org may set is this server's own limit, as the PATCH
    // checks it: 7 a minute is refused here, 6 taken.
    assert_eq!(
        patch_body["rateLimitPerMinute"]["maximum"], 6,
        "{patch_body}"
    );
    assert_eq!(patch_body["rateLimitBurst"]["maximum"], 5, "{patch_body}");
    assert_eq!(patch_body["rateLimitBurst"]["minimum"], 1, "{patch_body}");
    for (n, code) in [(7, 400), (6, 200)] {
        let r = s
            .req(Method::PATCH, "/v2/account/settings")
            .json(&serde_json::json!({ "rateLimitPerMinute": n }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), code, "rateLimitPerMinute {n}");
    }
    let media = &d["paths"]["/v2/media/{token}"]["get"]["responses"]["429"];
    assert!(media["headers"].get("Retry-After").is_some(), "{media}");
    assert!(media["headers"].get("X-RateLimit-Limit").is_none());
    // /healthz takes an optional apiKey, and a request that carries one is
    // limited by it like any other.
    let health = &d["paths"]["/healthz"]["get"]["responses"]["429"];
    assert!(
        health["headers"].get("X-RateLimit-Limit").is_some(),
        "{health}"
    );
}
