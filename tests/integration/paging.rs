//! Paging of `GET /v2/vault-plus/lists/{listId}/media` and
//! `GET /v2/vault-plus/jobs` over real HTTP: `limit` and `cursor` like the
//! media query, `nextCursor` only while more follow, no member repeated or
//! skipped while the list changes between pages, and every bad `limit` or
//! `cursor` a 400 naming it.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::demo::*;
use crate::harness::TestServer;

/// A server whose connection records list members without storing them
/// (no image quality is wanted), so a 1,000-item list costs no fetches.
async fn recording_only(demo: &Demo) -> TestServer {
    let s = server_for(demo, &[]).await;
    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_a/settings")
        .json(&json!({"vaultPlus": {"settings": {"imageQualities": []}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mediaId"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(s: &TestServer, path: &str) -> (u16, Value) {
    json(s.conn(Method::GET, path, "conn_a")).await
}

/// A 400 in the API's error format whose message names `what`.
fn assert_refused(code: u16, body: &Value, what: &str) {
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["type"], "BAD_REQUEST", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(what),
        "names {what}: {body}"
    );
    assert!(body["requestId"].is_string(), "{body}");
}

#[tokio::test]
async fn a_large_list_pages_through_without_repeats_or_gaps() {
    let demo = Demo::start(&[]);
    let s = recording_only(&demo).await;
    let (code, synced) = sync(&s, LARGE).await;
    assert_eq!((code, synced["addedItems"].clone()), (200, json!(1000)));
    let path = format!("/v2/vault-plus/lists/{LARGE}/media");

    // Default page: 100, then the rest, nextCursor absent on the last.
    let (code, first) = get(&s, &path).await;
    assert_eq!(code, 200, "{first}");
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 100);
    assert!(
        first["items"][0]["media"].is_object(),
        "members carry their media"
    );
    // Between pages: a member not read yet leaves the list; the walk must
    // neither repeat nor skip any of the others.
    let all = all_pages(&s, &path).await;
    assert_eq!(all.len(), 1000);
    let leaving = all[550]["mediaId"].as_str().unwrap().to_owned();
    demo.remove(LARGE, &leaving).await;
    let (code, _) = sync(&s, LARGE).await;
    assert_eq!(code, 200);

    let mut seen = first_ids.clone();
    let mut cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let mut pages = 1;
    loop {
        let (code, page) = get(&s, &format!("{path}?limit=100&cursor={cursor}")).await;
        assert_eq!(code, 200, "{page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= 100);
        seen.extend(got);
        match page["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 10, "999 members, 100 a page");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no member repeated");
    assert_eq!(seen.len(), 999);
    assert!(!seen.contains(&leaving));
    let before: Vec<String> = all
        .iter()
        .map(|m| m["mediaId"].as_str().unwrap().to_owned())
        .filter(|id| *id != leaving)
        .collect();
    assert_eq!(seen, before, "the same members, in the same order");

    // A smaller page size walks the same members.
    let small = all_pages(&s, &format!("{path}?limit=37")).await;
    let small: Vec<String> = small
        .iter()
        .map(|m| m["mediaId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(small, before);
    let (_, last) = get(&s, &format!("{path}?limit=100&cursor={cursor}")).await;
    assert!(last.get("nextCursor").is_none(), "{last}");
}

#[tokio::test]
async fn bad_limits_and_foreign_or_malformed_cursors_are_refused() {
    let demo = Demo::start(&[]);
    let s = recording_only(&demo).await;
    add(&s, PHOTOS).await;
    add(&s, MIXED).await;
    let photos = format!("/v2/vault-plus/lists/{PHOTOS}/media");
    let mixed = format!("/v2/vault-plus/lists/{MIXED}/media");
    for path in [photos.as_str(), "/v2/vault-plus/jobs"] {
        for limit in ["0", "101", "-1", "2.5", "abc", ""] {
            let (code, body) = get(&s, &format!("{path}?limit={limit}")).await;
            assert_refused(code, &body, "limit");
        }
        for cursor in ["garbage", "eyJxIjoiMSJ9", "%00"] {
            let (code, body) = get(&s, &format!("{path}?cursor={cursor}")).await;
            assert_refused(code, &body, "cursor");
        }
        let (code, body) = get(&s, &format!("{path}?stauts=stored")).await;
        assert_refused(code, &body, "stauts");
    }
    // Cursors bound to another list, another route, another filter.
    let (_, page) = get(&s, &format!("{photos}?limit=2")).await;
    let list_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (code, ok) = get(&s, &format!("{photos}?cursor={list_cursor}")).await;
    assert_eq!(code, 200, "{ok}");
    for path in [
        mixed.as_str(),
        "/v2/vault-plus/jobs",
        "/v2/vault-plus/media",
    ] {
        let (code, body) = get(&s, &format!("{path}?cursor={list_cursor}")).await;
        assert_refused(code, &body, "cursor");
    }
    s.add_connection("default", "conn_b");
    let r = s
        .conn(
            Method::GET,
            &format!("{photos}?cursor={list_cursor}"),
            "conn_b",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "another connection's cursor");
    for m in ["1", "2"] {
        s.put("conn_a", m, "full", "image/jpeg", vec![1; 10]).await;
    }
    let (_, media) = get(&s, "/v2/vault-plus/media?limit=1").await;
    let media_cursor = media["nextCursor"].as_str().unwrap().to_owned();
    let (code, body) = get(&s, &format!("{photos}?cursor={media_cursor}")).await;
    assert_refused(code, &body, "cursor");
}

#[tokio::test]
async fn jobs_page_through_and_stay_bound_to_their_state() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &["--fetch-attempts", "1"]).await;
    // Every CDN body is cut short: every job fails for good.
    demo.faults(json!({"truncateRate": 1.0})).await;
    add(&s, "103").await;
    add(&s, VIDEOS).await;
    wait_idle(&s).await;
    // Every job failed and stays listed: a stable set to page through.
    let key = |j: &Value| format!("{}/{}", j["mediaId"], j["label"]);
    let whole: Vec<String> = all_pages(&s, "/v2/vault-plus/jobs")
        .await
        .iter()
        .map(key)
        .collect();
    assert!(whole.len() > 12, "{whole:?}");
    let (_, one_page) = get(&s, "/v2/vault-plus/jobs").await;
    assert!(
        one_page.get("nextCursor").is_none(),
        "fewer than 100: one page"
    );
    let walked: Vec<String> = all_pages(&s, "/v2/vault-plus/jobs?limit=5")
        .await
        .iter()
        .map(key)
        .collect();
    assert_eq!(walked, whole, "no job repeated or skipped");
    let (_, page) = get(&s, "/v2/vault-plus/jobs?limit=5").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let failed_walk = all_pages(&s, "/v2/vault-plus/jobs?state=failed&limit=4").await;
    assert_eq!(failed_walk.len(), whole.len());
    // A cursor of all jobs does not page the failed ones, nor a list.
    let cursor = page["nextCursor"].as_str().unwrap();
    let (code, body) = get(
        &s,
        &format!("/v2/vault-plus/jobs?state=failed&cursor={cursor}"),
    )
    .await;
    assert_refused(code, &body, "cursor");
    let (code, body) = get(
        &s,
        &format!("/v2/vault-plus/lists/{PHOTOS}/media?cursor={cursor}"),
    )
    .await;
    assert_refused(code, &body, "cursor");
}
