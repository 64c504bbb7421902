//! Purges racing uploads: every upload answered 201 is either counted by
//! exactly one purge or still present, bytes on disk equal the catalog's
//! totals, and nothing is left behind once reclaim has run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::harness::{TestServer, body, bytes};

struct Done {
    started: Instant,
    media: String,
    size: u64,
}

#[tokio::test]
async fn purge_during_concurrent_uploads_is_exact() {
    // Six uploads at once on one connection: more than the default cap.
    let s = Arc::new(TestServer::start_with(&["--max-uploads-per-connection", "6"]).await);
    s.add_connection("default", "conn_a");
    let done = Arc::new(Mutex::new(Vec::<Done>::new()));
    let conflicts = Arc::new(Mutex::new(0u32));

    let mut workers = Vec::new();
    for w in 0..6u32 {
        let (s, done, conflicts) = (s.clone(), done.clone(), conflicts.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let media = format!("{}", 10_000 + w * 1000 + i);
                let size = 1 + ((w * 7919 + i * 104_729) % 60_000) as usize;
                let started = Instant::now();
                let r = s
                    .upload("conn_a", &media, "full", "image/jpeg", bytes(w as u8, size))
                    .await;
                match r.status().as_u16() {
                    201 => done.lock().await.push(Done {
                        started,
                        media,
                        size: size as u64,
                    }),
                    409 => *conflicts.lock().await += 1,
                    other => panic!("upload answered {other}: {}", r.text().await.unwrap()),
                }
            }
        }));
    }
    let mut purged = (0u64, 0u64);
    let mut last_purge_answered = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let p: Value = body(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
        last_purge_answered = Instant::now();
        assert_eq!(p["success"], true);
        purged.0 += p["purgedCount"].as_u64().unwrap();
        purged.1 += p["freedBytes"].as_u64().unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
    let done = done.lock().await;
    let status: Value = body(s.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    let stored = status["storedCount"].as_u64().unwrap();
    let bytes_now = status["totalSizeBytes"].as_u64().unwrap();

    // Exact accounting: each created variant was purged once or is present.
    let uploaded: u64 = done.iter().map(|d| d.size).sum();
    assert_eq!(
        purged.0 + stored,
        done.len() as u64,
        "counts: {purged:?} + {stored}"
    );
    assert_eq!(purged.1 + bytes_now, uploaded, "bytes");

    // Uploads that started after the last purge was answered must all be
    // there, with their size.
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = s
            .conn(Method::GET, "/v2/vault-plus/media", "conn_a")
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            ids.push((
                item["id"].as_str().unwrap().to_owned(),
                item["media"]["full"]["sizeBytes"].as_u64().unwrap(),
            ));
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len() as u64, stored);
    for d in done.iter().filter(|d| d.started > last_purge_answered) {
        assert!(
            ids.contains(&(d.media.clone(), d.size)),
            "upload {} after the last purge was lost",
            d.media
        );
    }

    // Once reclaim has run, the disk holds exactly what the catalog lists.
    s.wait_reclaimed().await;
    let files = s.blob_files();
    assert_eq!(
        files.len() as u64,
        stored,
        "orphan or missing blobs: {files:?}"
    );
    assert_eq!(files.iter().map(|(_, n)| n).sum::<u64>(), bytes_now);
    let tmp = s.tmp_files();
    assert_eq!(tmp, 0, "no temporary files left");
}
