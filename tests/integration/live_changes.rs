//! Writes by the CLI reach a running server at once: retired signing keys,
//! revoked API keys, removed connections. The periodic key reload is set
//! to an hour, so only the change signal can make these pass.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::harness::{TestServer, body, bytes};

const NO_PERIODIC_RELOAD: &[&str] = &["--key-reload-secs", "3600"];
/// Generous for a promise of "within a second", far below the hour.
const DEADLINE: Duration = Duration::from_secs(4);

fn cli_ok(s: &TestServer, args: &[&str]) {
    let out = s.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `probe` until it returns true or the deadline passes.
async fn within_deadline(mut probe: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn status_of(s: &TestServer, url: &str) -> u16 {
    s.http.get(url).send().await.unwrap().status().as_u16()
}

async fn url_of(s: &TestServer) -> String {
    let item = body(s.conn(Method::GET, "/v2/vault-plus/media/42", "conn_a")).await;
    item["media"]["full"]["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotate_and_retire_by_the_cli_reach_the_server_within_a_second() {
    let s = TestServer::start_with(NO_PERIODIC_RELOAD).await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "42", "full", "image/png", bytes(3, 200))
        .await;
    let old_url = v["url"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&s, &old_url).await, 200);

    cli_ok(&s, &["signing-keys", "rotate"]);
    let mut new_url = String::new();
    assert!(
        within_deadline(async || {
            new_url = url_of(&s).await;
            new_url != old_url
        })
        .await,
        "new URLs are signed with the rotated key"
    );
    cli_ok(&s, &["signing-keys", "retire", "1"]);
    assert!(
        within_deadline(async || status_of(&s, &old_url).await == 403).await,
        "a URL signed with a retired key is refused"
    );
    assert_eq!(status_of(&s, &new_url).await, 200);
}

#[tokio::test]
async fn a_key_revoked_by_the_cli_is_refused_at_once() {
    let s = TestServer::start_with(NO_PERIODIC_RELOAD).await;
    let key = s.create_key("default", &["ACCOUNT"]);
    let settings = async || {
        s.http
            .get(s.url("/v2/account/settings"))
            .header("apiKey", &key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(settings().await, 200);
    cli_ok(&s, &["keys", "revoke", &key]);
    // API keys are never cached: the very next request sees the revocation.
    assert_eq!(settings().await, 401);
}

#[tokio::test]
async fn a_connection_removed_by_the_cli_stops_serving_its_urls_within_a_second() {
    let s = TestServer::start_with(NO_PERIODIC_RELOAD).await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "42", "full", "image/png", bytes(4, 300))
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    // Served twice: the second answer comes from the look-up cache.
    assert_eq!(status_of(&s, &url).await, 200);
    assert_eq!(status_of(&s, &url).await, 200);
    cli_ok(&s, &["connections", "remove", "--org", "default", "conn_a"]);
    // Within the poller's 100 ms, cached look-ups included.
    assert!(within_deadline(async || status_of(&s, &url).await == 404).await);
}

#[tokio::test]
async fn a_retention_run_by_the_cli_stops_serving_what_it_evicted_within_a_second() {
    let s = TestServer::start_with(NO_PERIODIC_RELOAD).await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "42", "full", "image/png", bytes(5, 300))
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    // Org defaults change without a sweep; the CLI's run applies them.
    let r = s
        .req(Method::PATCH, "/v2/account/settings")
        .json(&serde_json::json!({"vaultPlus": {"defaultSettings": {"retentionDays": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&s, &url).await, 200);
    assert_eq!(status_of(&s, &url).await, 200);
    cli_ok(&s, &["retention", "run", "--as-of", "2099-01-01T00:00:00Z"]);
    assert!(within_deadline(async || status_of(&s, &url).await == 404).await);
}
