//! Crash harness: workloads (uploads, replacements, deletes, purges, and
//! evictions under a storage limit) run
//! against the real server while it is killed with SIGKILL at random points,
//! again and again. After every restart: nothing that was answered is lost,
//! nothing deleted or purged comes back, and once reclaim has run `fsck`
//! finds the catalog and the bytes in agreement (no orphan, no missing blob,
//! exact counters).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::harness::{TestServer, body};

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Answered: stored with these bytes.
    Present { sha: String, size: u64 },
    /// Answered: deleted or purged.
    Absent,
    /// An operation was cut by the kill: either outcome is allowed.
    Unknown,
}

type Key = (String, String, String);
type Book = Arc<Mutex<HashMap<Key, Expect>>>;

const LABELS: [&str; 2] = ["full", "thumb"];
/// A connection with a small storage limit: its uploads evict.
const LIMITED: &str = "conn_c";
const LIMIT: u64 = 50_000;
/// Bytes of uploads to LIMITED that were answered as stored.
static LIMITED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a worker needs to talk to the server: it must not own the server,
/// which the test kills under it.
#[derive(Clone)]
struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    fn of(s: &TestServer) -> Self {
        Self {
            base: s.base.clone(),
            key: s.key.clone(),
            http: s.http.clone(),
        }
    }

    fn conn(&self, method: Method, path: &str, conn: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("apiKey", &self.key)
            .header("x-connection-id", conn)
    }
}

fn set(book: &Book, k: &Key, e: Expect) {
    book.lock().unwrap().insert(k.clone(), e);
}

/// One sequential worker owning its media IDs: every key has one writer, so
/// the order of answers is the order of commits.
async fn worker(s: Api, book: Book, conn: &'static str, ids: Vec<u32>, seed: u64, purges: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..400 {
        let media = ids[rng.random_range(0..ids.len())].to_string();
        let roll = rng.random_range(0..100);
        if purges && roll < 5 {
            let keys: Vec<Key> = book
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.0 == conn)
                .cloned()
                .collect();
            for k in &keys {
                set(&book, k, Expect::Unknown);
            }
            let r = s
                .conn(Method::DELETE, "/v2/vault-plus/media", conn)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    keys.iter().for_each(|k| set(&book, k, Expect::Absent))
                }
                _ => return,
            }
        } else if roll < 20 {
            let keys: Vec<Key> = LABELS
                .iter()
                .map(|l| (conn.to_owned(), media.clone(), l.to_string()))
                .collect();
            for k in &keys {
                set(&book, k, Expect::Unknown);
            }
            let r = s
                .conn(
                    Method::DELETE,
                    &format!("/v2/vault-plus/media/{media}"),
                    conn,
                )
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    keys.iter().for_each(|k| set(&book, k, Expect::Absent))
                }
                _ => return,
            }
        } else {
            let label = LABELS[rng.random_range(0..2)];
            // Uploads to the limited connection fit in half its limit, so
            // that most are stored and the workload goes past the limit
            // (evicting) even when kills cut the rounds short.
            let max = if conn == LIMITED {
                LIMIT as usize / 2
            } else {
                200_000
            };
            let size = rng.random_range(1..max);
            let data: Vec<u8> = (0..size).map(|_| rng.random()).collect();
            let k = (conn.to_owned(), media.clone(), label.to_owned());
            let before = book.lock().unwrap().get(&k).cloned();
            set(&book, &k, Expect::Unknown);
            let r = s
                .conn(
                    Method::PUT,
                    &format!("/v2/vault-plus/media/{media}/variants/{label}"),
                    conn,
                )
                .header("content-type", "image/jpeg")
                .body(data.clone())
                .send()
                .await;
            match r {
                // Under a storage limit, a later upload may evict this one:
                // its record and bytes are checked by fsck instead.
                Ok(r) if (r.status() == 200 || r.status() == 201) && conn == LIMITED => {
                    LIMITED_BYTES.fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(r) if r.status() == 200 || r.status() == 201 => set(
                    &book,
                    &k,
                    Expect::Present {
                        sha: hex::encode(Sha256::digest(&data)),
                        size: size as u64,
                    },
                ),
                // Refused: nothing changed.
                Ok(r) if r.status().is_client_error() && r.status() != 409 => {
                    set(&book, &k, before.unwrap_or(Expect::Absent))
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

async fn check(s: &TestServer, book: &Book) {
    let snapshot = book.lock().unwrap().clone();
    for ((conn, media, label), expect) in snapshot {
        let item = s
            .conn(Method::GET, &format!("/v2/vault-plus/media/{media}"), &conn)
            .send()
            .await
            .unwrap();
        let found = if item.status() == 200 {
            let v: serde_json::Value = item.json().await.unwrap();
            v["media"].get(&label).cloned()
        } else {
            None
        };
        match expect {
            Expect::Present { sha, size } => {
                let v = found
                    .unwrap_or_else(|| panic!("{conn}/{media}/{label} was answered but is lost"));
                assert_eq!(v["sizeBytes"], size, "{conn}/{media}/{label}");
                let url = v["url"].as_str().unwrap();
                let bytes = s.http.get(url).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(
                    hex::encode(Sha256::digest(&bytes)),
                    sha,
                    "{conn}/{media}/{label} bytes"
                );
            }
            Expect::Absent => assert!(found.is_none(), "{conn}/{media}/{label} came back"),
            Expect::Unknown => {}
        }
    }
}

#[tokio::test]
async fn kill_9_at_random_points_loses_nothing_committed() {
    let mut server = TestServer::start().await;
    server.add_connection("default", "conn_a");
    server.add_connection("default", "conn_b");
    server.add_connection("default", LIMITED);
    let r = server
        .req(
            Method::PATCH,
            &format!("/v2/account/connections/{LIMITED}/settings"),
        )
        .json(&serde_json::json!({"vaultPlus": {"settings": {"storageLimitBytes": LIMIT}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let book: Book = Arc::default();
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..8u64 {
        let s = Api::of(&server);
        let workers = vec![
            tokio::spawn(worker(
                s.clone(),
                book.clone(),
                "conn_a",
                (100..110).collect(),
                round * 10 + 1,
                false,
            )),
            tokio::spawn(worker(
                s.clone(),
                book.clone(),
                "conn_a",
                (200..210).collect(),
                round * 10 + 2,
                false,
            )),
            tokio::spawn(worker(
                s.clone(),
                book.clone(),
                "conn_b",
                (300..310).collect(),
                round * 10 + 3,
                true,
            )),
            tokio::spawn(worker(
                s.clone(),
                book.clone(),
                LIMITED,
                (400..420).collect(),
                round * 10 + 4,
                false,
            )),
        ];
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        server.restart(&[]).await;
        for w in workers {
            w.await.unwrap();
        }
        check(&server, &book).await;
    }
    server.wait_reclaimed().await;
    let out = server.cli(&["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("consistent"),
        "{text}"
    );
    let uploaded = LIMITED_BYTES.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        uploaded > LIMIT,
        "the workload went past the limit ({uploaded} bytes)"
    );
    let c = body(server.conn(Method::GET, "/v2/vault-plus/status", LIMITED)).await;
    assert!(
        c["totalSizeBytes"].as_u64().unwrap() <= LIMIT,
        "evictions kept the limit: {c}"
    );
    let a = body(server.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert!(
        a["storedCount"].as_u64().unwrap() > 0,
        "the workload stored something"
    );
}
