//! `vaultplus migrate`: an embedded installation moved into PostgreSQL + S3,
//! interrupted by a damaged blob, resumed, verified, then served by a
//! cluster node exactly as before (same keys, same URLs, same counts).

use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::backend::{Backend, fresh_database, fresh_prefix};
use crate::demo::json;
use crate::harness::{BIN, TestServer, bytes};

/// More than one page of blobs (1,000), so a resumed run skips a page.
const ITEMS: usize = 1_050;

fn migrate(dir: &std::path::Path, db: &str, blobs: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(dir)
        .args(["--to", db, "--blobs", blobs, "--s3-allow-http"])
        .env(
            "VAULTPLUS_S3_ENDPOINT",
            std::env::var("VAULTPLUS_TEST_S3_ENDPOINT").expect("run with ./scripts/test.sh"),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn snapshot(s: &TestServer, conn: &str) -> (Value, Vec<Value>) {
    let status = json(s.conn(Method::GET, "/v2/vault-plus/status", conn))
        .await
        .1;
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v2/vault-plus/media?limit=100&cursor={c}"),
            None => "/v2/vault-plus/media?limit=100".to_owned(),
        };
        let (code, page) = json(s.conn(Method::GET, &path, conn)).await;
        assert_eq!(code, 200, "{page}");
        for it in page["items"].as_array().unwrap() {
            let mut it = it.clone();
            // URLs carry the node's own base and an expiry rounded to a
            // window that two snapshots seconds apart may straddle: they are
            // compared apart (an old URL served by the new node, below).
            for v in it["media"].as_object_mut().unwrap().values_mut() {
                assert!(v["url"].as_str().is_some_and(|u| u.contains("/v2/media/")));
                v["url"] = Value::Null;
            }
            items.push(it);
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    (status, items)
}

#[tokio::test]
async fn an_embedded_install_moves_into_a_cluster_resumably() {
    if crate::backend::cluster_selected() {
        // The source is an embedded data directory by definition; the
        // embedded pass runs this test.
        eprintln!("SKIPPED on the cluster pass: migrate starts from embedded stores");
        return;
    }
    let mut s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    for i in 0..ITEMS {
        let conn = if i % 3 == 0 { "conn_b" } else { "conn_a" };
        s.put(
            conn,
            &i.to_string(),
            "full",
            "image/jpeg",
            bytes(i as u8, 200 + i),
        )
        .await;
    }
    // Some history worth keeping: access counts and a deletion.
    let (_, item) = json(s.conn(Method::GET, "/v2/vault-plus/media/1", "conn_a")).await;
    let url = item["media"]["full"]["url"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(s.http.get(&url).send().await.unwrap().status(), 200);
    }
    let r = s
        .conn(Method::DELETE, "/v2/vault-plus/media/2", "conn_a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A webhook endpoint moves with its secret (a public address: it is
    // never called here).
    let (code, hook) = json(
        s.req(Method::POST, "/v2/vault-plus/webhooks")
            .json(&serde_json::json!({"url": "https://93.184.216.34/h",
                                      "events": ["vault_plus.purge.completed"]})),
    )
    .await;
    assert_eq!(code, 201, "{hook}");
    // The deletion's receipt finished (migrate moves only finished ones).
    s.wait_reclaimed().await;
    s.restart_gracefully(&[]).await; // flushes the access counts
    let before_b = snapshot(&s, "conn_b").await;
    let key = s.key.clone();
    let data_dir = s.data_dir().to_path_buf();

    // A running server holds the directory: migrate refuses.
    let (db, prefix) = (fresh_database().await, fresh_prefix());
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(!ok && text.contains("another vaultplus server"), "{text}");
    s.kill();

    // Damage the blob with the last key: the others get copied, then the
    // check against the recorded SHA-256 stops the run before it is
    // written.
    let files = s.blob_files();
    let (last_key, _) = files.last().unwrap().clone();
    let path = data_dir.join("blobs").join(&last_key);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&last_key) && text.contains("SHA-256"),
        "{text}"
    );
    let state = std::fs::read_to_string(data_dir.join("migrate-state.json")).unwrap();
    assert!(state.contains("\"done\": false"), "{state}");

    // Another target is refused while this one is unfinished.
    let (ok, text) = migrate(&data_dir, &fresh_database().await, &prefix);
    assert!(!ok && text.contains("another target"), "{text}");

    std::fs::write(&path, &good).unwrap();
    // The source changes between the runs (its server ran again): the
    // resumed run still moves everything, as it is now.
    s.restart(&[]).await;
    s.put("conn_a", "5000", "full", "image/jpeg", bytes(50, 5_000))
        .await;
    s.restart_gracefully(&[]).await;
    s.kill();
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(ok, "{text}");
    assert!(text.contains("verified variants"), "{text}");
    let written: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("blobs: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("blob summary line");
    assert!(written < ITEMS as u64 - 1, "resumed, not restarted: {text}");
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(ok && text.contains("already migrated"), "{text}");

    // The old server ran again after the migration (say, until cutover): a
    // rerun moves what changed, since the cluster has not written yet.
    s.restart(&[]).await;
    let r = s
        .conn(Method::DELETE, "/v2/vault-plus/media/4", "conn_a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.wait_reclaimed().await;
    s.restart_gracefully(&[]).await;
    let before_a = snapshot(&s, "conn_a").await;
    s.kill();
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(ok && !text.contains("already migrated"), "{text}");

    // A cluster node on the target serves the same thing, with the same
    // API key and the same signed URLs.
    let mut node = TestServer::start_on(
        tempfile::tempdir().unwrap(),
        Backend::cluster(&db, &prefix),
        &[],
    )
    .await;
    node.key = key;
    let (_, hooks) = json(node.req(Method::GET, "/v2/vault-plus/webhooks")).await;
    assert_eq!(hooks["items"][0]["id"], hook["id"], "{hooks}");
    assert_eq!(hooks["items"][0]["events"], hook["events"]);
    assert_eq!(snapshot(&node, "conn_a").await, before_a);
    assert_eq!(snapshot(&node, "conn_b").await, before_b);
    let token = url.rsplit('/').next().unwrap();
    let r = node
        .http
        .get(node.url(&format!("/v2/media/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes(1, 201));
    // New rows get new IDs (sequences moved past the copied ones).
    node.add_connection("default", "conn_c");
    node.put("conn_c", "9999", "full", "image/jpeg", bytes(9, 999))
        .await;
    let out = node.cli(&["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("consistent"),
        "{text}"
    );
    let p = json(node.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a"))
        .await
        .1;
    assert_eq!(p["purgedCount"], before_a.0["storedCount"], "{p}");
    assert_eq!(p["freedBytes"], before_a.0["totalSizeBytes"], "{p}");

    // Now the cluster holds data of its own: a rerun after yet another
    // change of the source refuses to overwrite it.
    drop(node);
    s.restart(&[]).await;
    s.put("conn_b", "6000", "full", "image/jpeg", bytes(60, 600))
        .await;
    s.kill();
    let (ok, text) = migrate(&data_dir, &db, &prefix);
    assert!(!ok && text.contains("refusing to overwrite"), "{text}");
}
