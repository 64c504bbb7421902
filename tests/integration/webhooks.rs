//! Webhooks: endpoints per organization, the outbox written with the change
//! it reports, and deliveries the Svix way to a real HTTP receiver. (The
//! official SDK's and the `svix` package's verifiers check the same
//! deliveries in tests/sdk/test_webhooks.py.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::harness::{TestServer, bytes};

/// Fast retries, so that no test waits for real backoff.
pub const FAST: [&str; 5] = [
    "--allow-private-webhooks",
    "--webhook-retry-base-ms",
    "20",
    "--webhook-retry-cap-secs",
    "1",
];

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub status: u16,
}

/// A real HTTP receiver on a local port: answers 500 to its first
/// `failures` requests (all of them when `failures` is `usize::MAX`), then
/// 200, and keeps every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    /// Answers 500 to the first `failures` requests, then 200.
    pub async fn start(failures: usize) -> Self {
        Self::serve(failures, None).await
    }

    /// Answers 500 to every body containing `pattern`, 200 to the rest.
    pub async fn refusing(pattern: &'static str) -> Self {
        Self::serve(0, Some(pattern)).await
    }

    async fn serve(failures: usize, refuse: Option<&'static str>) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let failures = Arc::new(AtomicUsize::new(failures));
        let (state, failing) = (got.clone(), failures.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let mut got = state.lock().unwrap();
                    let refused = refuse.is_some_and(|p| body.contains(p));
                    let status = if refused || got.len() < failing.load(Ordering::SeqCst) {
                        500
                    } else {
                        200
                    };
                    got.push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                            .collect(),
                        body,
                        status,
                    });
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, got, failures }
    }

    /// Answers 200 from now on.
    pub fn recover(&self) {
        self.failures.store(0, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies answered 200, by svix-id.
    pub fn delivered(&self) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in self.received().into_iter().filter(|r| r.status == 200) {
            out.entry(r.headers["svix-id"].clone())
                .or_default()
                .push(serde_json::from_str(&r.body).unwrap());
        }
        out
    }

    /// Waits (bounded) until `n` distinct events were answered 200.
    pub async fn wait_delivered(&self, n: usize) -> BTreeMap<String, Vec<Value>> {
        for _ in 0..600 {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} events never arrived; got {:#?}", self.received());
    }
}

pub async fn create_endpoint(s: &TestServer, key: &str, url: &str, events: &[&str]) -> Value {
    let r = s
        .http
        .post(s.url("/v2/vault-plus/webhooks"))
        .header("apiKey", key)
        .json(&json!({"url": url, "events": events, "description": "test"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn list(s: &TestServer, key: &str) -> Vec<Value> {
    let r = s
        .http
        .get(s.url("/v2/vault-plus/webhooks"))
        .header("apiKey", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

pub const ALL: [&str; 3] = [
    "vault_plus.media.stored",
    "vault_plus.purge.completed",
    "vault_plus.connection.removed",
];

/// The svix-signature's v1 signatures that `secret` (`whsec_...`) makes of
/// a request, checked as a receiver would, with its own HMAC.
fn signed_by(r: &Received, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            r.headers["svix-id"], r.headers["svix-timestamp"], r.body
        )
        .as_bytes(),
    );
    let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.headers["svix-signature"].split(' ').any(|s| s == want)
}

#[tokio::test]
async fn endpoints_are_registered_listed_rotated_and_deleted_per_org() {
    let s = TestServer::start_with(&FAST).await;
    let e = create_endpoint(&s, &s.key, "http://127.0.0.1:9/hook", &ALL[..2]).await;
    let id = e["id"].as_str().unwrap();
    assert!(id.starts_with("whk_"), "{e}");
    assert_eq!(e["url"], "http://127.0.0.1:9/hook");
    assert_eq!(e["events"], json!(ALL[..2]));
    let secret = e["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{e}");
    assert_eq!(
        STANDARD.decode(&secret[6..]).unwrap().len(),
        32,
        "a 32-byte key"
    );

    let listed = list(&s, &s.key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["enabled"], true);
    assert_eq!(listed[0]["events"], json!(ALL[..2]));
    assert_eq!(listed[0]["description"], "test");
    assert!(listed[0].get("secret").is_none(), "{}", listed[0]);
    assert!(
        !listed[0].to_string().contains(&secret[6..]),
        "the listing never shows the secret"
    );

    // Another org sees none of it and cannot touch it.
    s.add_connection("other", "conn_other");
    let other = s.create_key("other", &["ACCOUNT"]);
    assert!(list(&s, &other).await.is_empty());
    for (method, path) in [
        (Method::DELETE, format!("/v2/vault-plus/webhooks/{id}")),
        (
            Method::POST,
            format!("/v2/vault-plus/webhooks/{id}/rotate-secret"),
        ),
    ] {
        let r = s
            .http
            .request(method, s.url(&path))
            .header("apiKey", &other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Without an ACCOUNT key: 401.
    let r = s
        .http
        .get(s.url("/v2/vault-plus/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = s
        .req(
            Method::POST,
            &format!("/v2/vault-plus/webhooks/{id}/rotate-secret"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    assert_eq!(rotated["id"], id);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(rotated["previousSecretExpiresAt"].as_i64().unwrap() > e_created(&listed[0]));
    // One secret in rotation at a time: the replaced one signs for the
    // whole day it was promised, so a second rotation waits.
    let r = s
        .req(
            Method::POST,
            &format!("/v2/vault-plus/webhooks/{id}/rotate-secret"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let why: Value = r.json().await.unwrap();
    assert!(why.to_string().contains("still signs"), "{why}");

    let r = s
        .req(Method::DELETE, &format!("/v2/vault-plus/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(list(&s, &s.key).await.is_empty());
    let r = s
        .req(Method::DELETE, &format!("/v2/vault-plus/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.to_string().contains("webhook endpoint not found"),
        "{body}"
    );
}

/// Every connection of `want` (sorted) had its purge told twice: once
/// committed (`bytesGone` false), once its receipt `bytes_gone`.
pub fn assert_each_purge_told_twice(delivered: &BTreeMap<String, Vec<Value>>, want: &[String]) {
    for gone in [false, true] {
        let mut connections: Vec<String> = delivered
            .values()
            .filter(|b| b[0]["data"]["bytesGone"] == gone)
            .map(|b| b[0]["data"]["connectionId"].as_str().unwrap().to_owned())
            .collect();
        connections.sort();
        assert_eq!(connections, want, "bytesGone {gone}");
    }
}

/// Purges a connection of the default org (its `vault_plus.purge.completed`,
/// and a second once its receipt is `bytes_gone`).
async fn purge(s: &TestServer, connection: &str) {
    let r = s
        .conn(Method::DELETE, "/v2/vault-plus/media", connection)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn e_created(v: &Value) -> i64 {
    v["createdAt"].as_i64().unwrap()
}

#[tokio::test]
async fn bad_endpoint_bodies_get_a_400_naming_the_problem() {
    // Without --allow-private-webhooks.
    let s = TestServer::start().await;
    let post = |body: String| {
        s.req(Method::POST, "/v2/vault-plus/webhooks")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let good = r#""events": ["vault_plus.media.stored"]"#;
    for (body, want) in [
        (
            format!(r#"{{"url": "https://93.184.216.34/h", {good}, "colour": 1}}"#),
            "colour",
        ),
        (
            format!(r#"{{"url": "https://93.184.216.34/h", "url": "https://93.184.216.35/h", {good}}}"#),
            "url",
        ),
        (format!(r#"{{"url": "ftp://93.184.216.34/h", {good}}}"#), "scheme"),
        (format!(r#"{{"url": "nonsense", {good}}}"#), "url"),
        (
            format!(r#"{{"url": "http://127.0.0.1:8080/h", {good}}}"#),
            "--allow-private-webhooks",
        ),
        (
            format!(r#"{{"url": "http://192.168.1.10/h", {good}}}"#),
            "--allow-private-webhooks",
        ),
        (
            format!(r#"{{"url": "http://169.254.169.254/h", {good}}}"#),
            "--allow-private-webhooks",
        ),
        (
            format!(r#"{{"url": "http://[::1]/h", {good}}}"#),
            "--allow-private-webhooks",
        ),
        (
            r#"{"url": "https://93.184.216.34/h", "events": ["vault_plus.nope"]}"#.to_owned(),
            "unknown event type",
        ),
        (
            r#"{"url": "https://93.184.216.34/h", "events": []}"#.to_owned(),
            "at least one",
        ),
        (
            r#"{"url": "https://93.184.216.34/h", "events": ["vault_plus.media.stored", "vault_plus.media.stored"]}"#.to_owned(),
            "more than once",
        ),
        (r#"{"url": "https://93.184.216.34/h"}"#.to_owned(), "events"),
    ] {
        let r = post(body.clone()).await.unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(want), "{body}: {answer}");
    }
    // Nothing was registered by any of them.
    assert!(list(&s, &s.key).await.is_empty());
    // A public address is accepted as is (it is not called here).
    create_endpoint(&s, &s.key, "https://93.184.216.34/h", &ALL).await;
}

#[tokio::test]
async fn every_event_is_delivered_once_signed_with_the_same_id_on_retries() {
    let s = TestServer::start_with(&FAST).await;
    // Down for its first three requests, then up.
    let rx = Receiver::start(3).await;
    let e = create_endpoint(&s, &s.key, &rx.url, &ALL).await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    s.add_connection("default", "conn_w");
    s.put("conn_w", "100", "full", "image/jpeg", bytes(1, 1000))
        .await;
    purge(&s, "conn_w").await;
    let r = s
        .req(Method::DELETE, "/v2/account/connections/conn_w")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Four events: the purge is told twice, the second time once its bytes
    // are gone.
    let delivered = rx.wait_delivered(4).await;
    let received = rx.received();
    assert_eq!(received.iter().filter(|r| r.status == 500).count(), 3);
    // Each event answered 200 exactly once, and every failed attempt was
    // an attempt of one of them: the same svix-id and the same body.
    assert!(
        delivered.values().all(|bodies| bodies.len() == 1),
        "{delivered:#?}"
    );
    for r in &received {
        let id = &r.headers["svix-id"];
        assert!(id.starts_with("msg_"), "{id}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(delivered[id], vec![body], "retries resend the same event");
        assert!(signed_by(r, &secret), "signature of {r:?}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers["svix-timestamp"].parse::<i64>().unwrap() > 1_600_000_000);
    }
    let mut gone: Vec<bool> = delivered
        .values()
        .filter(|b| b[0]["eventType"] == "vault_plus.purge.completed")
        .map(|b| b[0]["data"]["bytesGone"].as_bool().unwrap())
        .collect();
    gone.sort();
    assert_eq!(gone, [false, true], "the purge, then its bytes gone");
    let by_type: BTreeMap<String, Value> = delivered
        .values()
        .filter(|b| b[0]["data"]["bytesGone"] != true)
        .map(|b| (b[0]["eventType"].as_str().unwrap().to_owned(), b[0].clone()))
        .collect();
    assert_eq!(by_type.keys().collect::<Vec<_>>(), {
        let mut all = ALL.to_vec();
        all.sort();
        all
    });
    for body in by_type.values() {
        assert_eq!(body["live"], true);
        assert_eq!(body["data"]["connectionId"], "conn_w");
    }
    let stored = &by_type["vault_plus.media.stored"]["data"];
    assert_eq!(stored["mediaId"], "100");
    assert_eq!(stored["quality"], "full");
    assert_eq!(stored["sizeBytes"], 1000);
    assert_eq!(stored["contentType"], "image/jpeg");
    assert_eq!(stored["sha256"].as_str().unwrap().len(), 64);
    let purged = &by_type["vault_plus.purge.completed"]["data"];
    assert_eq!(
        (purged["purgedCount"].clone(), purged["freedBytes"].clone()),
        (json!(1), json!(1000))
    );
    assert!(purged["receiptId"].as_str().unwrap().starts_with("rcpt_"));
    // The connection was empty by then.
    let removed = &by_type["vault_plus.connection.removed"]["data"];
    assert_eq!(
        (
            removed["purgedCount"].clone(),
            removed["freedBytes"].clone()
        ),
        (json!(0), json!(0))
    );
    // Nothing is left in the outbox.
    let pending = s
        .backend
        .catalog_scalar(s.data_dir(), "SELECT count(*) FROM webhook_deliveries")
        .await;
    assert_eq!(pending, "0");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one() {
    let s = TestServer::start_with(&FAST).await;
    let rx = Receiver::start(0).await;
    let e = create_endpoint(&s, &s.key, &rx.url, &ALL[1..2]).await;
    let (id, old) = (e["id"].as_str().unwrap(), e["secret"].as_str().unwrap());
    let rotated = body_of(s.req(
        Method::POST,
        &format!("/v2/vault-plus/webhooks/{id}/rotate-secret"),
    ))
    .await;
    let new = rotated["secret"].as_str().unwrap();
    s.add_connection("default", "conn_r");
    purge(&s, "conn_r").await;
    rx.wait_delivered(1).await;
    let got = rx.received();
    assert_eq!(got[0].headers["svix-signature"].split(' ').count(), 2);
    assert!(signed_by(&got[0], new) && signed_by(&got[0], old));
}

async fn body_of(r: reqwest::RequestBuilder) -> Value {
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// A change that rolls back after its event was written to the outbox
/// makes no event: the disabling of a connection purges it (writing
/// `vault_plus.purge.completed`) and is then made to fail by a trigger on
/// its next statement.
#[tokio::test]
async fn a_rolled_back_change_makes_no_event() {
    let s = TestServer::start_with(&FAST).await;
    let rx = Receiver::start(0).await;
    create_endpoint(&s, &s.key, &rx.url, &ALL[1..2]).await;
    s.add_connection("default", "conn_rb");
    s.add_connection("default", "conn_ok");
    s.put("conn_rb", "1", "full", "image/jpeg", bytes(2, 500))
        .await;
    fail_disabling(&s, "conn_rb").await;

    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_rb/settings")
        .json(&json!({"vaultPlus": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "the injected failure");
    // The purge rolled back with it: the media is still there.
    let r = s
        .conn(Method::GET, "/v2/vault-plus/media/1", "conn_rb")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A committed purge after it is delivered (twice: committed, then its
    // bytes gone); the rolled-back one never.
    purge(&s, "conn_ok").await;
    let delivered = rx.wait_delivered(2).await;
    let pending = s
        .backend
        .catalog_scalar(s.data_dir(), "SELECT count(*) FROM webhook_deliveries")
        .await;
    assert_eq!(pending, "0", "nothing else is waiting in the outbox");
    let connections: Vec<&Value> = delivered
        .values()
        .map(|b| &b[0]["data"]["connectionId"])
        .collect();
    assert_eq!(connections, [&json!("conn_ok"), &json!("conn_ok")]);
}

/// Makes every statement that disables `connection` fail, behind the
/// server's back.
async fn fail_disabling(s: &TestServer, connection: &str) {
    if let Some((_, url)) = s
        .backend
        .env
        .iter()
        .find(|(k, _)| k == "VAULTPLUS_DATABASE_URL")
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for sql in [
            "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                .to_owned(),
            format!(
                "CREATE TRIGGER test_fail BEFORE UPDATE OF enabled ON connections FOR EACH ROW \
                 WHEN (NOT NEW.enabled AND OLD.id = '{connection}') EXECUTE FUNCTION test_fail()"
            ),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    } else {
        crate::harness::sqlite(
            &s.data_dir().join("catalog.sqlite"),
            &format!(
                "CREATE TRIGGER test_fail BEFORE UPDATE OF enabled ON connections \
                 WHEN NEW.enabled = 0 AND OLD.id = '{connection}' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ),
        );
    }
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled() {
    let mut args = FAST.to_vec();
    args.extend(["--webhook-retry-window-secs", "1"]);
    let s = TestServer::start_with(&args).await;
    let rx = Receiver::start(usize::MAX).await;
    create_endpoint(&s, &s.key, &rx.url, &ALL[1..2]).await;
    s.add_connection("default", "conn_d");
    purge(&s, "conn_d").await;
    let mut listed = Vec::new();
    for _ in 0..600 {
        listed = list(&s, &s.key).await;
        if listed[0]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed[0]["enabled"], false, "{listed:?}");
    assert!(listed[0]["disabledAt"].as_i64().is_some());
    let reason = listed[0]["disabledReason"].as_str().unwrap();
    assert!(reason.contains("500"), "{reason}");
    // The purge's event (and perhaps its bytes-gone one), each retried
    // under its own svix-id.
    let attempts = rx.received();
    let first = &attempts[0].headers["svix-id"];
    let retries = attempts
        .iter()
        .filter(|a| &a.headers["svix-id"] == first)
        .count();
    assert!(retries >= 2, "it was retried: {attempts:?}");
    let ids: std::collections::BTreeSet<&String> =
        attempts.iter().map(|a| &a.headers["svix-id"]).collect();
    assert!(ids.len() <= 2, "{ids:?}");
    // A disabled endpoint gets no new event, and nothing waits for it.
    s.add_connection("default", "conn_d2");
    purge(&s, "conn_d2").await;
    let pending = s
        .backend
        .catalog_scalar(s.data_dir(), "SELECT count(*) FROM webhook_deliveries")
        .await;
    assert_eq!(pending, "0");
}

/// One event an endpoint always refuses is given up at the end of its
/// window, but an endpoint that answered others meanwhile is not failing:
/// it stays enabled and keeps receiving.
#[tokio::test]
async fn an_endpoint_refusing_one_event_stays_enabled() {
    let mut args = FAST.to_vec();
    // Long enough for the other event to be answered well within it.
    args.extend(["--webhook-retry-window-secs", "5"]);
    let s = TestServer::start_with(&args).await;
    let rx = Receiver::refusing("vault_plus.purge.completed").await;
    create_endpoint(&s, &s.key, &rx.url, &ALL).await;
    s.add_connection("default", "conn_r");
    purge(&s, "conn_r").await;
    // Answered 200 after the refused event was written.
    s.add_connection("default", "conn_r2");
    let r = s
        .req(Method::DELETE, "/v2/account/connections/conn_r2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    rx.wait_delivered(1).await;
    let pending = || {
        s.backend
            .catalog_scalar(s.data_dir(), "SELECT count(*) FROM webhook_deliveries")
    };
    for _ in 0..300 {
        if pending().await == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending().await, "0", "the refused event is given up");
    let listed = list(&s, &s.key).await;
    assert_eq!(listed[0]["enabled"], true, "{listed:?}");
    let refused = rx.received().iter().filter(|r| r.status == 500).count();
    assert!(refused >= 2, "the refused event was retried");
    // Still subscribed: the next event arrives.
    s.add_connection("default", "conn_r3");
    let r = s
        .req(Method::DELETE, "/v2/account/connections/conn_r3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let removed = |rx: &Receiver| {
        rx.delivered()
            .values()
            .filter(|b| b[0]["eventType"] == "vault_plus.connection.removed")
            .count()
    };
    for _ in 0..600 {
        if removed(&rx) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(removed(&rx), 2);
}

/// Events committed before a kill -9 are all delivered after the restart,
/// each answered 200 once, with the svix-id of its attempts before the
/// kill.
#[tokio::test]
async fn no_event_is_lost_across_a_kill_9() {
    let mut args = FAST.to_vec();
    // A short lease, so that a cluster node's lapses soon after its death.
    args.extend(["--webhook-timeout-secs", "1"]);
    let mut s = TestServer::start_with(&args).await;
    let rx = Receiver::start(usize::MAX).await;
    create_endpoint(&s, &s.key, &rx.url, &ALL[1..2]).await;
    for i in 0..5 {
        let conn = format!("conn_k{i}");
        s.add_connection("default", &conn);
        purge(&s, &conn).await;
    }
    // Being retried (the receiver is down), then the server dies.
    for _ in 0..600 {
        if !rx.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rx.received().is_empty(), "attempts before the kill");
    s.kill();
    // Requests the dead process had sent are handled (and refused) before
    // the receiver recovers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before: std::collections::BTreeSet<String> = rx
        .received()
        .iter()
        .map(|r| r.headers["svix-id"].clone())
        .collect();
    rx.recover();
    s.start_again(&args).await;
    // Each purge is told twice: committed, then (reclaim, before or after
    // the kill, finished its receipt) its bytes gone.
    let delivered = rx.wait_delivered(10).await;
    assert_eq!(delivered.len(), 10);
    // At least once: only an attempt the kill cut (in flight at the
    // receiver, which may answer it 200 once it recovers) is sent again.
    assert!(
        delivered
            .iter()
            .all(|(id, b)| b.len() == 1 || before.contains(id)),
        "{delivered:#?}"
    );
    assert!(before.iter().all(|id| delivered.contains_key(id)));
    let want: Vec<String> = (0..5).map(|i| format!("conn_k{i}")).collect();
    assert_each_purge_told_twice(&delivered, &want);
}

/// A sync from a real upstream: its `vault_plus.list.synced` carries the
/// sync answer's counts, and every variant the pipeline stores is told by
/// one `vault_plus.media.stored` (written in the storing commit).
#[tokio::test]
async fn a_sync_and_every_variant_it_stores_are_told() {
    use crate::demo::{Demo, PHOTOS, server_for, status, sync, wait_idle};
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &FAST).await;
    let rx = Receiver::start(0).await;
    create_endpoint(
        &s,
        &s.key,
        &rx.url,
        &["vault_plus.list.synced", "vault_plus.media.stored"],
    )
    .await;
    let (code, answer) = sync(&s, PHOTOS).await;
    assert_eq!(code, 200, "{answer}");
    wait_idle(&s).await;
    let stored = status(&s).await["storedCount"].as_u64().unwrap();
    assert!(stored > 0);
    let delivered = rx.wait_delivered(1 + stored as usize).await;
    assert!(delivered.values().all(|b| b.len() == 1));
    let events: Vec<&Value> = delivered.values().map(|b| &b[0]).collect();
    let synced: Vec<&&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "vault_plus.list.synced")
        .collect();
    assert_eq!(synced.len(), 1);
    let data = &synced[0]["data"];
    assert_eq!(data["connectionId"], "conn_a");
    assert_eq!(data["listId"], PHOTOS);
    for k in [
        "seen",
        "addedItems",
        "updatedItems",
        "removedItems",
        "unchangedItems",
        "adoptedItems",
    ] {
        assert_eq!(data[k], answer[k], "{k}: {data} vs {answer}");
    }
    let mut variants: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["eventType"] == "vault_plus.media.stored")
        .map(|e| {
            let d = &e["data"];
            assert_eq!(d["sha256"].as_str().unwrap().len(), 64, "{d}");
            (
                d["mediaId"].as_str().unwrap().to_owned(),
                d["quality"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    variants.sort();
    variants.dedup();
    assert_eq!(
        variants.len() as u64,
        stored,
        "one event per stored variant"
    );
}

/// With a master key a webhook secret is stored sealed (never as the key
/// the deliveries are signed with), and deliveries are still signed with
/// it.
#[tokio::test]
async fn with_a_master_key_secrets_are_sealed_and_still_sign() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    crate::harness::assert_success(
        &std::process::Command::new(crate::harness::BIN)
            .args(["master-key", "generate"])
            .arg(&key_file)
            .output()
            .unwrap(),
    );
    let mut args = FAST.to_vec();
    let key_path = key_file.to_str().unwrap().to_owned();
    args.extend(["--master-key-file", &key_path]);
    let s = TestServer::start_with(&args).await;
    let rx = Receiver::start(0).await;
    let e = create_endpoint(&s, &s.key, &rx.url, &ALL[1..2]).await;
    let secret = e["secret"].as_str().unwrap();
    let raw = STANDARD.decode(&secret[6..]).unwrap();
    let stored = s
        .backend
        .catalog_scalar(s.data_dir(), "SELECT length(secret) FROM webhook_endpoints")
        .await;
    // Sealed: a marker, a nonce and a tag around the 32 bytes.
    assert_eq!(stored, (4 + 24 + raw.len() + 16).to_string());
    s.add_connection("default", "conn_m");
    purge(&s, "conn_m").await;
    rx.wait_delivered(1).await;
    assert!(signed_by(&rx.received()[0], secret));
}
