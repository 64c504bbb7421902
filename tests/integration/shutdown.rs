//! Graceful shutdown: on SIGTERM the listener closes at once, downloads in
//! progress finish, workers give back what they claimed, the catalog is
//! closed, and the process exits 0; a second signal exits at once.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::demo::{Demo, LARGE, server_for, status, sync, upstream_flags};
use crate::harness::{TestServer, body, bytes};

const BIG: usize = 200 * 1024 * 1024;

/// A server holding one item of `len` bytes, and a download of it begun
/// (its head and first chunk read, the rest held back by the client).
async fn download_begun(len: usize) -> (TestServer, reqwest::Response, Vec<u8>) {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let content = bytes(7, len);
    s.put("conn_a", "1", "full", "video/mp4", content.clone())
        .await;
    let item = body(s.conn(Method::GET, "/v2/vault-plus/media/1", "conn_a")).await;
    let url = item["media"]["full"]["url"].as_str().unwrap().to_owned();
    let resp = s.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    (s, resp, content)
}

/// Waits until the server's address refuses connections (its listener is
/// closed), while the process still runs.
async fn wait_refused(s: &mut TestServer) {
    let addr = s.addr();
    for _ in 0..400 {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!("the listener stayed open after SIGTERM");
}

#[tokio::test]
async fn sigterm_lets_a_200_mib_download_finish_refuses_new_connections_and_exits_0() {
    let (mut s, mut resp, content) = download_begun(BIG).await;
    let mut hash = Sha256::new();
    let mut got = 0usize;
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    hash.update(&first);
    got += first.len();

    s.signal("TERM");
    wait_refused(&mut s).await;
    // The process is still there: the download holds it.
    assert!(s.try_exit().is_none(), "exited with a download in progress");
    while let Some(chunk) = resp.chunk().await.expect("the download is not cut") {
        hash.update(&chunk);
        got += chunk.len();
    }
    assert_eq!(got, BIG);
    assert_eq!(hash.finalize().to_vec(), Sha256::digest(&content).to_vec());
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    if !s.backend.is_cluster() {
        // Closed cleanly: the write-ahead log is checkpointed and removed.
        let wal = s.data_dir().join("catalog.sqlite-wal");
        let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(left, 0, "catalog left with a write-ahead log");
    }
}

#[tokio::test]
async fn a_second_signal_exits_at_once_with_130() {
    let (mut s, mut resp, _) = download_begun(64 * 1024 * 1024).await;
    resp.chunk().await.unwrap().expect("a first chunk");
    s.signal("TERM");
    wait_refused(&mut s).await;
    s.signal("INT");
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
    // The download was cut, not finished.
    let mut got = 0usize;
    let cut = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut || got < 64 * 1024 * 1024, "the download completed");
}

#[tokio::test]
async fn stopping_gives_back_job_leases_without_spending_a_try() {
    // Slow bodies: the fetches under way when the signal comes are cut.
    let demo = Demo::start(&["--slow-body-ms", "200"]);
    let mut s = server_for(&demo, &["--fetch-concurrency", "4"]).await;
    let (code, answer) = sync(&s, LARGE).await;
    assert_eq!(code, 200, "{answer}");
    let leased = "SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL";
    let mut held = 0;
    for _ in 0..400 {
        held = s
            .backend
            .catalog_scalar(s.data_dir(), leased)
            .await
            .parse::<u64>()
            .unwrap();
        if held > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(held > 0, "no job was claimed");

    s.signal("TERM");
    let exit = s.wait_exit();
    assert_eq!(exit.code(), Some(0), "{exit}");
    let catalog = |sql: &'static str| {
        let (backend, dir) = (s.backend.clone(), s.data_dir().to_path_buf());
        async move { backend.catalog_scalar(&dir, sql).await }
    };
    assert_eq!(catalog(leased).await, "0", "every lease given back");
    assert_eq!(
        catalog("SELECT count(*) FROM jobs WHERE attempts > 0 OR failed_at IS NOT NULL").await,
        "0",
        "no try spent on a stop"
    );
    assert_eq!(
        catalog("SELECT count(*) FROM upload_intents").await,
        "0",
        "the cut fetches' partial blobs are queued for reclaim, not left as intents"
    );

    // They run again on the next start, and everything gets stored.
    demo.faults(json!({"slowBodyMs": 0})).await;
    let flags = upstream_flags(&demo);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    s.restart(&flags).await;
    crate::demo::wait_idle(&s).await;
    let st = status(&s).await;
    assert_eq!(st["storedCount"], 2000, "{st}");
}
