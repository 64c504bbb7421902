//! Restarts, crashes mid-upload, limits, and the CLI beside a running server.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{BIN, TestServer, body, bytes};

#[tokio::test]
async fn data_survives_a_kill_and_restart() {
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "77", "full", "video/mp4", bytes(3, 5000))
        .await;
    s.restart(&[]).await;
    let item: Value = body(s.conn(Method::GET, "/v2/vault-plus/media/77", "conn_a")).await;
    assert_eq!(item["media"]["full"]["sizeBytes"], 5000);
    assert_eq!(item["type"], "video");
    // The URL issued before the restart still serves the same bytes (the
    // restarted server listens on another port: keep the path only).
    let old = v["url"].as_str().unwrap();
    let path = &old[old.find("/v2/media/").unwrap()..];
    let body = s.http.get(s.url(path)).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().to_vec(), bytes(3, 5000));
}

#[tokio::test]
async fn an_upload_cut_by_a_crash_leaves_nothing_behind() {
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    // A body that sends 1 MB and then never ends.
    let stream = futures::stream::iter((0..16).map(|i| Ok::<_, std::io::Error>(bytes(i, 65536))))
        .chain(futures::stream::pending());
    let req = s
        .conn(
            Method::PUT,
            "/v2/vault-plus/media/5/variants/full",
            "conn_a",
        )
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let upload = tokio::spawn(req);
    // Wait until the bytes are being written.
    for _ in 0..100 {
        let tmp = s.tmp_files();
        if tmp > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.restart(&[]).await;
    assert!(
        upload.await.unwrap().is_err(),
        "the cut upload was not answered"
    );
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty());
    assert_eq!(s.tmp_files(), 0);
    let status: Value = body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert_eq!(status["storedCount"], 0);
}

#[tokio::test]
async fn oversized_uploads_get_413_and_change_nothing() {
    let s = TestServer::start_with(&["--max-upload-bytes", "1000"]).await;
    s.add_connection("default", "conn_a");
    let r = s
        .upload("conn_a", "1", "full", "image/jpeg", bytes(1, 1001))
        .await;
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "PAYLOAD_TOO_LARGE");
    // Without a Content-Length the limit still holds, mid-stream.
    let chunks = futures::stream::iter((0..4).map(|i| Ok::<_, std::io::Error>(bytes(i, 400))));
    let r = s
        .conn(
            Method::PUT,
            "/v2/vault-plus/media/1/variants/full",
            "conn_a",
        )
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.put("conn_a", "1", "full", "image/jpeg", bytes(1, 1000))
        .await;
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().len(), 1);
}

#[tokio::test]
async fn cli_works_beside_a_running_server() {
    let s = TestServer::start().await;
    let key = s.create_key("acme", &["ACCOUNT", "LINK"]);
    assert!(key.starts_with("vpk_") && !key.contains('\n'));
    s.add_connection("acme", "conn_z");
    let stats: Value = s
        .http
        .get(s.url("/v2/vault-plus/stats"))
        .header("apiKey", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totalConnections"], 1);
    let listed = s.cli(&["keys", "list", "--org", "acme"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    let id = &key[4..20];
    assert!(text.contains(id), "{text}");
    assert!(!text.contains(&key[21..]), "secrets are never listed");
    assert!(s.cli(&["keys", "revoke", id]).status.success());
    let r = s
        .http
        .get(s.url("/v2/vault-plus/stats"))
        .header("apiKey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let conns = s.cli(&["connections", "list", "--org", "acme"]);
    assert!(String::from_utf8_lossy(&conns.stdout).contains("conn_z"));
    let dup = s.cli(&["connections", "add", "--org", "acme", "conn_z"]);
    assert!(!dup.status.success());
    let bad = s.cli(&["keys", "create", "--org", "acme", "--scope", "ROOT"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));
    let removed = s.cli(&["connections", "remove", "--org", "acme", "conn_z"]);
    assert!(removed.status.success());
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["connections", "--help"],
        vec!["connections", "add", "--help"],
        vec!["connections", "list", "--help"],
        vec!["connections", "remove", "--help"],
        vec!["reclaim", "--help"],
        vec!["reclaim", "status", "--help"],
        vec!["reclaim", "run", "--help"],
        vec!["demo-upstream", "--help"],
        vec!["signing-keys", "--help"],
        vec!["fsck", "--help"],
        vec!["retention", "run", "--help"],
        vec!["signing-keys", "rotate", "--help"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn media_urls_serve_bytes_and_count_accesses() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let v = s
        .put("conn_a", "8", "full", "image/png", bytes(9, 3000))
        .await;
    let url = v["url"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes(9, 3000));
    }
    let head = s.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "3000");
    // Counts are batched; wait for the flush rather than assume its timing.
    let mut count = 0;
    for _ in 0..100 {
        let item: Value = body(s.conn(Method::GET, "/v2/vault-plus/media/8", "conn_a")).await;
        count = item["media"]["full"]["accessCount"].as_u64().unwrap();
        if count >= 3 {
            assert!(
                item["media"]["full"]["lastAccessedAt"].as_i64()
                    > item["media"]["full"]["createdAt"].as_i64().map(|c| c - 1)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 3, "HEAD is not counted, each GET is");
    let mut forged = url.clone();
    forged.pop();
    forged.push(if url.ends_with('A') { 'B' } else { 'A' });
    let r = s.http.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 403);
    s.conn(Method::DELETE, "/v2/vault-plus/media/8", "conn_a")
        .send()
        .await
        .unwrap();
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn one_server_per_data_dir_and_the_cli_leaves_uploads_alone() {
    if crate::backend::embedded_only("one_server_per_data_dir_and_the_cli_leaves_uploads_alone") {
        return;
    }
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    // A second server on the same directory is refused.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another vaultplus server"));

    // CLI commands while an upload is half written do not disturb it.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(bytes(1, 50_000))).unwrap();
    let req = s
        .conn(
            Method::PUT,
            "/v2/vault-plus/media/9/variants/full",
            "conn_a",
        )
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let upload = tokio::spawn(req);
    for _ in 0..200 {
        if s.tmp_files() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for args in [&["reclaim", "status"][..], &["fsck"], &["keys", "list"]] {
        assert!(s.cli(args).status.success(), "{args:?}");
    }
    tx.unbounded_send(Ok(bytes(2, 50_000))).unwrap();
    drop(tx);
    let r = upload.await.unwrap().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let item = body(s.conn(Method::GET, "/v2/vault-plus/media/9", "conn_a")).await;
    assert_eq!(item["media"]["full"]["sizeBytes"], 100_000);
}
