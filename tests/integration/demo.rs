//! The local upstream (`vaultplus demo-upstream`) as a test fixture, and a
//! vaultplus server wired to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, TestServer};

pub const PHOTOS: &str = "101";
pub const VIDEOS: &str = "102";
pub const MIXED: &str = "104";
pub const LARGE: &str = "105";

pub struct Demo {
    child: Child,
    pub base: String,
    http: reqwest::Client,
}

impl Demo {
    pub fn start(extra: &[&str]) -> Demo {
        let mut child = Command::new(BIN)
            .args(["demo-upstream", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn demo-upstream");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("demo-upstream listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo-upstream printed its address");
        Demo {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn faults(&self, patch: Value) {
        let r = self
            .http
            .put(format!("{}/_demo/faults", self.base))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "faults {patch}: {}", r.status());
    }

    pub async fn no_faults(&self) {
        self.faults(
            json!({"errorRate": 0.0, "slowBodyMs": 0, "truncateRate": 0.0,
            "wrongLengthRate": 0.0, "expiredRate": 0.0, "rateLimitRate": 0.0,
            "sessionExpired": false, "failFirst": 0}),
        )
        .await;
    }

    pub async fn remove(&self, list: &str, media: &str) {
        self.post(&format!("/_demo/lists/{list}/remove/{media}"))
            .await;
    }

    pub async fn add(&self, list: &str, media: &str) {
        self.post(&format!("/_demo/lists/{list}/add/{media}")).await;
    }

    pub async fn change(&self, media: &str) {
        self.post(&format!("/_demo/media/{media}/change")).await;
    }

    /// Successful fetches of each media file from the demo's CDN.
    pub async fn fetch_counts(&self) -> Vec<u64> {
        let stats = self.stats().await;
        stats["cdn"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["ok"].as_u64().unwrap())
            .collect()
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_demo/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flags wiring a server to `demo`, with quick retries so fault tests end
/// fast.
pub fn upstream_flags(demo: &Demo) -> Vec<String> {
    vec![
        "--upstream-url".into(),
        demo.base.clone(),
        "--upstream-key".into(),
        "demo-key".into(),
        "--retry-base-ms".into(),
        "20".into(),
        "--retry-cap-secs".into(),
        "1".into(),
    ]
}

pub async fn server_for(demo: &Demo, extra: &[&str]) -> TestServer {
    let mut args = upstream_flags(demo);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = TestServer::start_with(&refs).await;
    s.add_connection("default", "conn_a");
    s
}

pub async fn json(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn add(s: &TestServer, list: &str) -> (u16, Value) {
    json(s.conn(
        Method::POST,
        &format!("/v2/vault-plus/lists/{list}/add"),
        "conn_a",
    ))
    .await
}

pub async fn sync(s: &TestServer, list: &str) -> (u16, Value) {
    json(s.conn(
        Method::PUT,
        &format!("/v2/vault-plus/lists/{list}/sync"),
        "conn_a",
    ))
    .await
}

pub async fn status(s: &TestServer) -> Value {
    json(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a"))
        .await
        .1
}

/// Every item of a paged route of `conn_a` (`path` may hold a query),
/// following `nextCursor` to the last page.
pub async fn all_pages(s: &TestServer, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => path.to_owned(),
            Some(c) => format!("{path}{sep}cursor={c}"),
        };
        let (code, page) = json(s.conn(Method::GET, &url, "conn_a")).await;
        assert_eq!(code, 200, "{url}: {page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// Waits until no storing job is queued or running (failed ones may stay).
pub async fn wait_idle(s: &TestServer) {
    for _ in 0..1200 {
        let jobs = all_pages(s, "/v2/vault-plus/jobs").await;
        let busy = jobs.iter().any(|j| j["state"] != "failed");
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("storing jobs did not settle");
}

pub async fn item(s: &TestServer, media: &str) -> (u16, Value) {
    json(s.conn(
        Method::GET,
        &format!("/v2/vault-plus/media/{media}"),
        "conn_a",
    ))
    .await
}
