//! A big list (the demo's list 107 at 5,000 items, 50 upstream pages) is
//! synced a page at a time: storing starts while later pages are still
//! being listed, `status` shows the sync's progress meanwhile, the answer
//! counts what one plan of the whole listing would, and a sync killed
//! between pages (or raced by a purge) leaves nothing the next sync does not
//! converge from. The demo holds list pages from an offset on
//! (`holdListFrom`), so "between pages" is a state the test waits for, not
//! a moment it hopes to hit.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::demo::*;
use crate::harness::TestServer;

const BULK: &str = "107";
const ITEMS: u64 = 5_000;
/// Media ID of the bulk list's item `n` (catalog.rs: `MEDIA_BASE + 1_000_000 + n`).
fn bulk_id(n: u64) -> String {
    (4_492_994_399u64 + 1_000_000 + n).to_string()
}

fn demo() -> Demo {
    Demo::start(&["--bulk-items", &ITEMS.to_string()])
}

/// Starts a sync of the bulk list without waiting for its answer.
fn start_sync(s: &TestServer) -> JoinHandle<(u16, Value)> {
    let r = s.conn(
        Method::PUT,
        &format!("/v2/vault-plus/lists/{BULK}/sync"),
        "conn_a",
    );
    tokio::spawn(json(r))
}

/// Waits (bounded) until `status` shows a sync of the bulk list that has
/// planned at least `items`, and returns that status.
async fn wait_planned(s: &TestServer, items: u64) -> Value {
    for _ in 0..1500 {
        let st = status(s).await;
        if st["syncs"][0]["itemsPlanned"].as_u64().unwrap_or(0) >= items {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no sync planned {items} items: {}", status(s).await);
}

/// Every member ID of the bulk list, sorted.
async fn member_ids(s: &TestServer) -> Vec<String> {
    let path = format!("/v2/vault-plus/lists/{BULK}/media?limit=100");
    let mut ids: Vec<String> = all_pages(s, &path)
        .await
        .iter()
        .map(|i| i["mediaId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// What a connection holds: its live variants and the bulk list's members.
async fn state(s: &TestServer) -> (u64, Vec<String>) {
    let st = status(s).await;
    let live = st["storedCount"].as_u64().unwrap() + st["pendingCount"].as_u64().unwrap();
    (live, member_ids(s).await)
}

#[tokio::test]
async fn a_big_sync_stores_while_it_lists_and_counts_like_one_plan() {
    let demo = demo();
    let s = server_for(&demo, &[]).await;
    // Pages from item 2,000 on wait until released.
    demo.faults(json!({"holdListFrom": 2000})).await;
    let running = start_sync(&s);
    let st = wait_planned(&s, 2000).await;
    let run = &st["syncs"][0];
    assert_eq!(
        (run["listId"].as_str(), run["mode"].as_str()),
        (Some(BULK), Some("sync")),
        "{st}"
    );
    assert_eq!(run["pagesPlanned"], 20, "{st}");
    assert_eq!(run["jobsQueued"], 2000, "one job per item (full only)");
    assert!(run["startedAt"].as_str().unwrap().ends_with('Z'));
    // Storing started with the first page: items are stored while the
    // sync is still waiting for page 21.
    for _ in 0..1500 {
        if status(&s).await["storedCount"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(status(&s).await["storedCount"].as_u64().unwrap() > 0);
    assert!(!running.is_finished(), "the sync has not answered yet");
    demo.faults(json!({"holdListFrom": 0})).await;
    let (code, first) = running.await.unwrap();
    assert_eq!(code, 200, "{first}");
    assert_eq!(
        first,
        json!({"synced": true, "listId": BULK, "seen": ITEMS, "addedItems": ITEMS, "updatedItems": 0,
               "removedItems": 0, "unchangedItems": 0, "adoptedItems": 0})
    );
    assert!(
        status(&s).await.get("syncs").is_none(),
        "no sync runs any more"
    );

    // Stored first: a change upstream while an item's first fetch is still
    // due would make that fetch fail (its URL gone), and the item count as
    // added rather than updated, by timing alone.
    wait_idle(&s).await;
    // Upstream: items on the first, a middle and the last page leave, three
    // change, two join.
    let gone = [0, 1, 2_150, 4_999];
    for n in gone {
        demo.remove(BULK, &bulk_id(n)).await;
    }
    for n in [3, 2_500, 4_998] {
        demo.change(&bulk_id(n)).await;
    }
    for n in [ITEMS, ITEMS + 1] {
        demo.add(BULK, &bulk_id(n)).await;
    }
    let (code, later) = sync(&s, BULK).await;
    assert_eq!(code, 200, "{later}");
    assert_eq!(
        later,
        json!({"synced": true, "listId": BULK, "seen": ITEMS - 4 + 2, "addedItems": 2, "updatedItems": 3,
               "removedItems": 4, "unchangedItems": ITEMS - 4 - 3, "adoptedItems": 0})
    );
    for n in gone {
        assert_eq!(item(&s, &bulk_id(n)).await.0, 404, "item {n} was removed");
    }
    let ids = member_ids(&s).await;
    assert_eq!(ids.len() as u64, ITEMS - 4 + 2);
    assert!(gone.iter().all(|n| !ids.contains(&bulk_id(*n))));
}

#[tokio::test]
async fn a_sync_killed_between_pages_converges_on_the_next() {
    let demo = demo();
    let mut s = server_for(&demo, &[]).await;
    let (code, first) = sync(&s, BULK).await;
    assert_eq!(
        (code, first["addedItems"].as_u64()),
        (200, Some(ITEMS)),
        "{first}"
    );
    // A second sync is killed after 3,000 items; meanwhile items it had
    // already listed leave the list, as do items it never reached.
    demo.faults(json!({"holdListFrom": 3000})).await;
    let r = s.conn(
        Method::PUT,
        &format!("/v2/vault-plus/lists/{BULK}/sync"),
        "conn_a",
    );
    let killed = tokio::spawn(r.send());
    wait_planned(&s, 3000).await;
    s.kill();
    assert!(
        killed.await.unwrap().is_err(),
        "the killed sync never answered"
    );
    let gone = [5, 1_234, 2_999, 3_000, 4_321];
    for n in gone {
        demo.remove(BULK, &bulk_id(n)).await;
    }
    demo.add(BULK, &bulk_id(ITEMS)).await;
    demo.faults(json!({"holdListFrom": 0})).await;
    let args = upstream_flags(&demo);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    s.restart(&refs).await;
    let (code, again) = sync(&s, BULK).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        (
            again["removedItems"].as_u64(),
            again["addedItems"].as_u64(),
            again["seen"].as_u64()
        ),
        (Some(5), Some(1), Some(ITEMS - 5 + 1)),
        "{again}"
    );
    // The same as a server that synced the same two listings cleanly.
    let fresh = demo_like(&demo).await;
    let (live, ids) = state(&s).await;
    assert_eq!(ids.len() as u64, ITEMS - 5 + 1);
    assert!(gone.iter().all(|n| !ids.contains(&bulk_id(*n))));
    assert_eq!(
        (live, ids),
        fresh,
        "converged to what one clean sync leaves"
    );
    // One job per variant at most, ever: every variant is stored once.
    let dup = s
        .backend
        .catalog_scalar(
            s.data_dir(),
            "SELECT count(*) - count(DISTINCT media_id || '/' || label) FROM jobs",
        )
        .await;
    assert_eq!(dup, "0");
}

/// A fresh server on the same demo, synced once with the demo's current
/// list: what a clean sync leaves (its live variants and members).
async fn demo_like(demo: &Demo) -> (u64, Vec<String>) {
    let clean = server_for(demo, &[]).await;
    let (code, body) = sync(&clean, BULK).await;
    assert_eq!(code, 200, "{body}");
    state(&clean).await
}

#[tokio::test]
async fn a_purge_between_pages_answers_409_and_the_next_sync_starts_afresh() {
    let demo = demo();
    let s = server_for(&demo, &[]).await;
    demo.faults(json!({"holdListFrom": 1000})).await;
    let sync_task = start_sync(&s);
    wait_planned(&s, 1000).await;
    let (code, _) = json(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(code, 200);
    demo.faults(json!({"holdListFrom": 0})).await;
    let (code, body) = sync_task.await.unwrap();
    assert_eq!(code, 409, "{body}");
    let (_, lists) = json(s.conn(Method::GET, "/v2/vault-plus/lists", "conn_a")).await;
    assert_eq!(
        lists["items"],
        json!([]),
        "nothing of the purged run is visible"
    );
    let (code, again) = sync(&s, BULK).await;
    assert_eq!(
        (code, again["addedItems"].as_u64()),
        (200, Some(ITEMS)),
        "{again}"
    );
}
