//! Cluster nodes answer media URLs from memory, and a revocation answered
//! by one node holds on every node at once (docs/cluster-coherence.md):
//! purge, delete, eviction, replace and key retirement, each repeated with
//! no pause between the revoking answer and the requests to the other
//! nodes; and the failure cases: a node frozen with SIGSTOP, a node whose
//! PostgreSQL connections are cut, a node restarted. Always on the cluster
//! stores (the test command starts them).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::backend::{Backend, fresh_database, fresh_prefix};
use crate::harness::{TestServer, bytes};
use crate::metrics::{scrape, value};

const LOOKUPS: &str = "vaultplus_lookup_cache_requests_total";
/// The protocol's bound: a lease (2 s) and its margin, plus room for a
/// loaded test machine.
const LEASE_BOUND: Duration = Duration::from_secs(6);

struct Cluster {
    nodes: Vec<TestServer>,
    database: String,
}

async fn cluster(n: usize) -> Cluster {
    let database = fresh_database().await;
    let backend = Backend::cluster(&database, &fresh_prefix());
    let mut nodes: Vec<TestServer> = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut node = TestServer::start_on(
            dir,
            backend.clone(),
            &[
                "--metrics-listen",
                "127.0.0.1:0",
                "--key-reload-secs",
                "3600",
            ],
        )
        .await;
        if let Some(first) = nodes.first() {
            node.key = first.key.clone();
        }
        nodes.push(node);
    }
    nodes[0].add_connection("default", "conn_a");
    Cluster { nodes, database }
}

fn path_of(node: &TestServer, url: &str) -> String {
    url.trim_start_matches(&node.base).to_owned()
}

async fn get(node: &TestServer, path: &str) -> u16 {
    node.http
        .get(node.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn hits(node: &TestServer) -> f64 {
    value(&scrape(node).await, LOOKUPS, &[("result", "hit")]).unwrap_or(0.0)
}

/// Serves `path` from every node until each answers it from memory (its
/// look-up cache hit count moves), so that a later 404 proves memory was
/// dropped rather than never used.
async fn warm(nodes: &[&TestServer], path: &str) {
    for n in nodes {
        let deadline = Instant::now() + LEASE_BOUND;
        loop {
            let before = hits(n).await;
            assert_eq!(get(n, path).await, 200, "{path} on {}", n.base);
            if hits(n).await > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never answered from memory",
                n.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The protocol's invariant once a revoking call answered: no node holds
/// a live lease without having acknowledged the latest revocation.
async fn assert_every_live_lease_acknowledged(database: &str) {
    let mut db = sqlx::PgConnection::connect(database).await.unwrap();
    let behind: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT node_id, acked_seq, (SELECT seq FROM revocation_clock) FROM node_leases \
         WHERE lease_until > CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) \
         AND acked_seq < (SELECT seq FROM revocation_clock)",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    assert!(
        behind.is_empty(),
        "live leases behind the clock: {behind:?}"
    );
}

async fn put(node: &TestServer, media: &str, seed: u8, len: usize) -> String {
    let v = node
        .put("conn_a", media, "full", "image/png", bytes(seed, len))
        .await;
    path_of(node, v["url"].as_str().unwrap())
}

async fn ok(r: reqwest::RequestBuilder) -> Value {
    let r = r.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test]
async fn purges_and_deletes_on_one_node_are_never_served_by_the_others() {
    let c = cluster(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    for round in 0..15u8 {
        let media = format!("{}", 100 + u32::from(round));
        let path = put(a, &media, round, 2_000).await;
        warm(&[a, b, d], &path).await;
        if round % 2 == 0 {
            let p = ok(a.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
            assert_eq!(p["purgedCount"], 1, "{p}");
        } else {
            let route = format!("/v2/vault-plus/media/{media}");
            ok(b.conn(Method::DELETE, &route, "conn_a")).await;
        }
        assert_every_live_lease_acknowledged(&c.database).await;
        for n in [a, b, d] {
            assert_eq!(get(n, &path).await, 404, "round {round} on {}", n.base);
        }
    }
}

#[tokio::test]
async fn replaced_and_evicted_variants_are_never_served_by_the_others() {
    let c = cluster(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    // Replace: the old URL names the old generation.
    for round in 0..8u8 {
        let old = put(a, "200", round, 1_000).await;
        warm(&[b, d], &old).await;
        let new = put(a, "200", round + 100, 1_500).await;
        for n in [b, d] {
            assert_eq!(
                get(n, &old).await,
                404,
                "replace round {round} on {}",
                n.base
            );
            assert_eq!(get(n, &new).await, 200);
        }
    }
    // Eviction by the storage limit: each upload past it evicts one item.
    ok(
        a.req(Method::PATCH, "/v2/account/connections/conn_a/settings")
            .json(&json!({"vaultPlus": {"settings": {
            "storageLimitBytes": 4_500, "storageLimitPurgeStrategy": "purge_oldest"}}})),
    )
    .await;
    let mut held: Vec<(String, String)> = Vec::new();
    for round in 0..10u8 {
        let media = format!("{}", 300 + u32::from(round));
        let path = put(a, &media, round, 1_000).await;
        held.push((media, path));
        let mut evicted = 0;
        for (media, path) in std::mem::take(&mut held) {
            let route = format!("/v2/vault-plus/media/{media}");
            let r = a.conn(Method::GET, &route, "conn_a").send().await.unwrap();
            let status = r.status().as_u16();
            let item: Value = r.json().await.unwrap();
            // Evicted: the item is gone with its only variant.
            if status == 200 && item["media"].get("full").is_some() {
                held.push((media, path));
                continue;
            }
            assert_eq!(status, 404, "{item}");
            evicted += 1;
            for n in [a, b, d] {
                assert_eq!(get(n, &path).await, 404, "evicted {media} on {}", n.base);
            }
        }
        assert!(round < 4 || evicted == 1, "round {round} evicted {evicted}");
        let paths: Vec<String> = held.iter().map(|(_, p)| p.clone()).collect();
        for p in &paths {
            warm(&[b, d], p).await;
        }
    }
}

#[tokio::test]
async fn a_retired_signing_key_is_refused_by_every_node_at_once() {
    let c = cluster(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let old = put(a, "400", 1, 1_000).await;
    warm(&[a, b, d], &old).await;
    assert!(a.cli(&["signing-keys", "rotate"]).status.success());
    // Nodes pick the new key up from the notification; until then the old
    // key still signs, so wait for a URL signed with key 2.
    let deadline = Instant::now() + LEASE_BOUND;
    let fresh = loop {
        let v = ok(a.conn(Method::GET, "/v2/vault-plus/media/400", "conn_a")).await;
        let url = path_of(a, v["media"]["full"]["url"].as_str().unwrap());
        if url != old {
            break url;
        }
        assert!(Instant::now() < deadline, "the rotated key never signed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = a.cli(&["signing-keys", "retire", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in [a, b, d] {
        assert_eq!(get(n, &old).await, 403, "retired key on {}", n.base);
        assert_eq!(get(n, &fresh).await, 200);
    }
}

#[tokio::test]
async fn a_frozen_node_bounds_the_purge_and_serves_nothing_revoked_after() {
    let c = cluster(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let path = put(a, "500", 1, 3_000).await;
    warm(&[a, b, d], &path).await;
    b.signal("STOP");
    let started = Instant::now();
    let p = ok(a.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    let took = started.elapsed();
    // B could not acknowledge: the purge answered only once its lease
    // was over.
    assert_every_live_lease_acknowledged(&c.database).await;
    b.signal("CONT");
    assert_eq!(p["purgedCount"], 1, "{p}");
    assert!(
        took < LEASE_BOUND,
        "the purge waited {took:?} for a frozen node"
    );
    for n in [b, a, d] {
        assert_eq!(get(n, &path).await, 404, "after SIGCONT on {}", n.base);
    }
    // The resumed node serves from memory again once it has caught up.
    let again = put(a, "501", 2, 3_000).await;
    warm(&[b], &again).await;
}

#[tokio::test]
async fn a_node_cut_off_from_postgres_stops_serving_from_memory_until_caught_up() {
    let c = cluster(2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    for round in 0..4u8 {
        let path = put(a, &format!("{}", 600 + u32::from(round)), round, 2_000).await;
        warm(&[b], &path).await;
        // Every connection of every node to this database is cut: the
        // listeners too.
        let mut admin = sqlx::PgConnection::connect(&c.database).await.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        admin.close().await.unwrap();
        // The purge runs on fresh connections; B must not answer from what
        // it held before the cut.
        let deadline = Instant::now() + LEASE_BOUND;
        loop {
            let r = a
                .conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            // A request may meet a connection cut under it (500).
            assert!(
                Instant::now() < deadline,
                "purge kept failing: {}",
                r.status()
            );
        }
        let deadline = Instant::now() + LEASE_BOUND;
        loop {
            let s = get(b, &path).await;
            assert_ne!(s, 200, "round {round}: B served a purged URL");
            if s == 404 {
                break;
            }
            assert!(Instant::now() < deadline, "B kept answering {s}");
        }
    }
    // Caught up: B answers from memory again.
    let path = put(a, "700", 9, 2_000).await;
    warm(&[b], &path).await;
}

#[tokio::test]
async fn a_restarted_node_serves_nothing_revoked_and_bounds_the_purge() {
    let mut c = cluster(2).await;
    let path = put(&c.nodes[0], "800", 1, 2_000).await;
    let keep = put(&c.nodes[0], "801", 2, 2_000).await;
    warm(&[&c.nodes[0], &c.nodes[1]], &path).await;
    // Killed: its lease lapses by itself.
    c.nodes[1].kill();
    let started = Instant::now();
    let route = "/v2/vault-plus/media/800";
    ok(c.nodes[0].conn(Method::DELETE, route, "conn_a")).await;
    assert!(started.elapsed() < LEASE_BOUND, "{:?}", started.elapsed());
    c.nodes[1]
        .restart(&[
            "--metrics-listen",
            "127.0.0.1:0",
            "--key-reload-secs",
            "3600",
        ])
        .await;
    let b = &c.nodes[1];
    assert_eq!(get(b, &path).await, 404);
    warm(&[b], &keep).await;
    let a = &c.nodes[0];
    ok(a.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(get(b, &keep).await, 404);
}

#[tokio::test]
async fn disabling_vault_plus_or_removing_a_connection_is_never_served_by_the_others() {
    let c = cluster(3).await;
    let (a, b, d) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let path = put(a, "900", 1, 1_500).await;
    warm(&[b, d], &path).await;
    ok(
        a.req(Method::PATCH, "/v2/account/connections/conn_a/settings")
            .json(&json!({"vaultPlus": {"enabled": false}})),
    )
    .await;
    assert_every_live_lease_acknowledged(&c.database).await;
    for n in [b, d] {
        assert_eq!(get(n, &path).await, 404, "disabled, on {}", n.base);
    }

    a.add_connection("default", "conn_b");
    let v = a
        .put("conn_b", "901", "full", "image/png", bytes(2, 1_500))
        .await;
    let path = path_of(a, v["url"].as_str().unwrap());
    warm(&[b, d], &path).await;
    let out = a.cli(&["connections", "remove", "--org", "default", "conn_b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command line answered only once every leased node dropped it.
    for n in [b, d] {
        assert_eq!(get(n, &path).await, 404, "removed, on {}", n.base);
    }
}
