//! A real Prometheus server (Debian's `prometheus`, which `scripts/test.sh`
//! installs when missing and names in `VAULTPLUS_TEST_PROMETHEUS`) scrapes a
//! running vaultplus, and a query through its HTTP API returns the request
//! count.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::TestServer;

fn prometheus_binary() -> Option<String> {
    if let Ok(bin) = std::env::var("VAULTPLUS_TEST_PROMETHEUS") {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// Kills the Prometheus server when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_request_count() {
    let Some(bin) = prometheus_binary() else {
        eprintln!("SKIPPED: no prometheus binary (./scripts/test.sh installs Debian's)");
        return;
    };
    let s = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"]).await;
    s.add_connection("default", "conn_a");
    for _ in 0..3 {
        let r = s.conn(Method::GET, "/v2/vault-plus/status", "conn_a");
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
    let target = s
        .metrics
        .as_deref()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.strip_suffix("/metrics"))
        .expect("metrics URL")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vaultplus\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    // Prometheus cannot report a port it picked: take a free one.
    let web = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _prometheus = Killed(
        Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}")),
    );
    let query = format!(
        "http://{web}/api/v1/query?query=sum(vaultplus_http_requests_total%7Broute%3D%22/v2/vault-plus/status%22%7D)"
    );
    // Until Prometheus is up and has scraped once (a readiness deadline,
    // not a figure under test).
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let answer = match reqwest::get(&query).await {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        let value = answer
            .as_ref()
            .and_then(|a| a["data"]["result"][0]["value"][1].as_str());
        if let Some(v) = value {
            break v.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus answered no sample: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count, "3");
}
