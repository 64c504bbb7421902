//! Several vaultplus nodes on one PostgreSQL database and one S3 bucket:
//! what one node answers, every node answers at once; storing jobs are
//! shared out, survive a node killed mid-way, and none runs twice.
//! These always run on the cluster stores (the test command starts them).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend::{Backend, fresh_database, fresh_prefix};
use crate::demo::{Demo, LARGE, json, upstream_flags, wait_idle};
use crate::harness::{TestServer, bytes};

async fn cluster(n: usize, extra: &[&str]) -> Vec<TestServer> {
    let backend = Backend::cluster(&fresh_database().await, &fresh_prefix());
    let mut nodes: Vec<TestServer> = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut node = TestServer::start_on(dir, backend.clone(), extra).await;
        if let Some(first) = nodes.first() {
            node.key = first.key.clone();
        }
        assert!(!node.key.is_empty(), "the first node prints the key");
        nodes.push(node);
    }
    nodes
}

async fn status(s: &TestServer, conn: &str) -> Value {
    json(s.conn(Method::GET, "/v2/vault-plus/status", conn))
        .await
        .1
}

async fn purge(s: &TestServer, conn: &str) -> Value {
    let (code, body) = json(s.conn(Method::DELETE, "/v2/vault-plus/media", conn)).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// A purge or delete answered by one node holds on every other at once.
#[tokio::test]
async fn every_node_sees_a_delete_and_a_purge_at_once() {
    let nodes = cluster(3, &[]).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.add_connection("default", "conn_a");
    let one = a
        .put("conn_a", "1", "full", "image/jpeg", bytes(1, 50_000))
        .await;
    b.put("conn_a", "2", "full", "image/jpeg", bytes(2, 70_000))
        .await;
    let url1 = one["url"].as_str().unwrap().to_owned();
    // A URL handed out by node A is served by node C (they share keys).
    let path = url1.trim_start_matches(&a.base).to_owned();
    let r = c.http.get(c.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 50_000);

    // Delete on B: C answers 404 for the URL and the item at once.
    let r = b
        .conn(Method::DELETE, "/v2/vault-plus/media/1", "conn_a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(c.http.get(c.url(&path)).send().await.unwrap().status(), 404);
    let (code, _) = json(c.conn(Method::GET, "/v2/vault-plus/media/1", "conn_a")).await;
    assert_eq!(code, 404);
    assert_eq!(status(c, "conn_a").await["storedCount"], 1);

    // Purge on C: A and B see an empty connection at once.
    let url2 = json(a.conn(Method::GET, "/v2/vault-plus/media/2", "conn_a"))
        .await
        .1["media"]["full"]["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&a.base)
        .to_owned();
    let p = purge(c, "conn_a").await;
    assert_eq!(p["purgedCount"], 1, "{p}");
    assert_eq!(p["freedBytes"], 70_000, "{p}");
    for n in [a, b] {
        assert_eq!(n.http.get(n.url(&url2)).send().await.unwrap().status(), 404);
        assert_eq!(
            status(n, "conn_a").await,
            json!({"connectionId": "conn_a", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
        );
    }
    a.wait_reclaimed().await;
    assert!(a.blob_files().is_empty(), "{:?}", a.blob_files());
}

fn size(i: usize) -> usize {
    1_000 + i * 7
}

/// Stores 40 items through one node; returns (stored, bytes) of those
/// that were answered 201.
async fn store(node: &TestServer, from: usize) -> (u64, u64) {
    let mut stored = 0u64;
    let mut bytes_total = 0u64;
    for i in from..from + 40 {
        let r = node
            .upload(
                "conn_a",
                &i.to_string(),
                "full",
                "image/jpeg",
                bytes(i as u8, size(i)),
            )
            .await;
        // 201: stored. 409: a purge retired the scope while the bytes were
        // written, so nothing was stored. Nothing else.
        match r.status().as_u16() {
            201 => {
                stored += 1;
                bytes_total += size(i) as u64;
            }
            409 => {}
            other => panic!("upload answered {other}: {}", r.text().await.unwrap()),
        }
    }
    (stored, bytes_total)
}

async fn purges(node: &TestServer) -> Vec<Value> {
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(purge(node, "conn_a").await);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    answers
}

/// Two nodes purging one connection while two others store into it: every
/// variant stored is counted by exactly one purge or by what is left.
#[tokio::test]
async fn concurrent_purges_and_stores_on_two_nodes_stay_exact() {
    let nodes = cluster(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.add_connection("default", "conn_a");
    let ((s1, b1), (s2, b2), pa, pb) =
        tokio::join!(store(a, 0), store(b, 100), purges(a), purges(b));
    let purged: u64 = pa
        .iter()
        .chain(&pb)
        .map(|p| p["purgedCount"].as_u64().unwrap())
        .sum();
    let freed: u64 = pa
        .iter()
        .chain(&pb)
        .map(|p| p["freedBytes"].as_u64().unwrap())
        .sum();
    let left = status(b, "conn_a").await;
    assert_eq!(
        purged + left["storedCount"].as_u64().unwrap(),
        s1 + s2,
        "purges {pa:?} {pb:?}, left {left}"
    );
    assert_eq!(freed + left["totalSizeBytes"].as_u64().unwrap(), b1 + b2);
    a.wait_reclaimed().await;
    let blobs = a.blob_files();
    assert_eq!(blobs.len() as u64, left["storedCount"].as_u64().unwrap());
    assert_eq!(
        blobs.iter().map(|b| b.1).sum::<u64>(),
        left["totalSizeBytes"].as_u64().unwrap()
    );
}

/// A sync's storing jobs are shared by three nodes, beside uploads, reads,
/// deletes and a purge through all of them; one node is killed mid-way.
/// The others take its leases over: everything is stored, once, and the
/// catalog and the bucket agree.
#[tokio::test]
async fn a_node_killed_mid_sync_loses_no_job_and_runs_none_twice() {
    let demo = Demo::start(&["--slow-body-ms", "10"]);
    let mut flags = upstream_flags(&demo);
    // Short leases and stale-upload age, so that the killed node's work
    // passes to the others within the test.
    flags.extend(
        [
            "--job-lease-secs",
            "3",
            "--fetch-concurrency",
            "4",
            "--stale-upload-secs",
            "8",
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut nodes = cluster(3, &refs).await;
    nodes[0].add_connection("default", "conn_a");
    nodes[0].add_connection("default", "conn_b");
    nodes[0].add_connection("default", "conn_c");

    let (code, body) = json(nodes[1].conn(
        Method::PUT,
        &format!("/v2/vault-plus/lists/{LARGE}/sync"),
        "conn_a",
    ))
    .await;
    assert_eq!(
        (code, body["addedItems"].clone()),
        (200, json!(1000)),
        "{body}"
    );
    // Meanwhile, uploads and reads on conn_b through every node.
    for i in 0..30usize {
        let node = &nodes[i % 3];
        let v = node
            .put(
                "conn_b",
                &format!("7{i:03}"),
                "full",
                "image/png",
                bytes(i as u8, 3_000 + i),
            )
            .await;
        let url = v["url"]
            .as_str()
            .unwrap()
            .trim_start_matches(&node.base)
            .to_owned();
        let other = &nodes[(i + 1) % 3];
        let r = other.http.get(other.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().len(), 3_000 + i);
    }
    // conn_c is filled through every node, then purged after the kill.
    let mut c_bytes = 0u64;
    for i in 0..12usize {
        let len = 2_000 + 10 * i;
        nodes[i % 3]
            .put(
                "conn_c",
                &format!("8{i:03}"),
                "full",
                "image/png",
                bytes(i as u8, len),
            )
            .await;
        c_bytes += len as u64;
    }
    while status(&nodes[0], "conn_a").await["storedCount"]
        .as_u64()
        .unwrap()
        < 300
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL node C while it holds leases; deletes go on through B.
    let mut killed = nodes.pop().unwrap();
    killed.kill();
    for i in 0..10usize {
        let r = nodes[1]
            .conn(
                Method::DELETE,
                &format!("/v2/vault-plus/media/7{i:03}"),
                "conn_b",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let p = purge(&nodes[0], "conn_c").await;
    assert_eq!(
        (p["purgedCount"].clone(), p["freedBytes"].clone()),
        (json!(12), json!(c_bytes)),
        "{p}"
    );
    assert_eq!(status(&nodes[1], "conn_c").await["storedCount"], 0);
    demo.faults(json!({"slowBodyMs": 0})).await;
    wait_idle(&nodes[0]).await;

    let st = status(&nodes[1], "conn_a").await;
    assert_eq!(
        (st["storedCount"].clone(), st["pendingCount"].clone()),
        (json!(2000), json!(0)),
        "1,000 photos, each full + derived thumb: {st}"
    );
    let fetches = demo.fetch_counts().await;
    assert_eq!(fetches.len(), 1000);
    // Only the fetches the kill cut, or whose group commit it cut, ran
    // twice: at most two for each of its 4 slots.
    assert!(
        fetches.iter().filter(|n| **n > 1).count() <= 2 * 4,
        "refetched too much: {:?}",
        fetches.iter().filter(|n| **n > 1).count()
    );
    let b_left = status(&nodes[0], "conn_b").await;
    assert_eq!(b_left["storedCount"], 20, "{b_left}");

    // Blobs the killed node wrote and never committed are found by their
    // intents' age (--stale-upload-secs), then reclaimed.
    nodes[0].wait_blob_count(2020).await;
    nodes[0].wait_reclaimed().await;
    let blobs = nodes[0].blob_files();
    let total = st["totalSizeBytes"].as_u64().unwrap() + b_left["totalSizeBytes"].as_u64().unwrap();
    assert_eq!(
        blobs.len(),
        2020,
        "every stored variant has exactly one blob"
    );
    assert_eq!(blobs.iter().map(|b| b.1).sum::<u64>(), total);
    let out = nodes[0].cli(&["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("consistent"),
        "{text}"
    );
}

/// Every node delivers webhooks, and each event goes out once, by one of
/// them: a delivery is claimed with a lease (`FOR UPDATE SKIP LOCKED`), the
/// way storing jobs are. Retries (the receiver is down at first) may be
/// made by any node, with the same svix-id.
#[tokio::test]
async fn webhook_events_are_delivered_once_by_one_of_the_nodes() {
    use crate::webhooks::{ALL, FAST, Receiver, create_endpoint};
    let nodes = cluster(3, &FAST).await;
    let rx = Receiver::start(4).await;
    create_endpoint(&nodes[0], &nodes[0].key, &rx.url, &ALL[1..2]).await;
    for i in 0..9 {
        let node = &nodes[i % 3];
        let conn = format!("conn_{i}");
        node.add_connection("default", &conn);
        purge(node, &conn).await;
    }
    // Each purge is told twice: committed, then its bytes gone.
    let delivered = rx.wait_delivered(18).await;
    assert_eq!(delivered.len(), 18);
    assert!(delivered.values().all(|b| b.len() == 1), "{delivered:#?}");
    let mut want: Vec<String> = (0..9).map(|i| format!("conn_{i}")).collect();
    want.sort();
    crate::webhooks::assert_each_purge_told_twice(&delivered, &want);
    assert_eq!(rx.received().iter().filter(|r| r.status == 500).count(), 4);
}
