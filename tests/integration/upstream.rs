//! Filling the cache from the upstream (the local demo-upstream, real HTTP):
//! lists add/sync, the storing pipeline under faults, the media proxy.

use reqwest::Method;
use serde_json::{Value, json};

use crate::demo::*;

fn ids(list_media: &Value) -> Vec<String> {
    list_media["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["mediaId"].as_str().unwrap().to_owned())
        .collect()
}

/// Every member of the list, all pages, as `{"items": [...]}`.
async fn members(s: &crate::harness::TestServer, list: &str) -> Value {
    json!({ "items": all_pages(s, &format!("/v2/vault-plus/lists/{list}/media")).await })
}

#[tokio::test]
async fn add_sync_removal_and_change() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;

    let (code, added) = add(&s, PHOTOS).await;
    assert_eq!(code, 200, "{added}");
    assert_eq!(
        added,
        json!({"added": true, "listId": PHOTOS, "seen": 12, "addedItems": 12, "adoptedItems": 0, "unchangedItems": 0})
    );
    wait_idle(&s).await;
    // Every photo has its full and thumb stored; five thumbs were derived.
    let st = status(&s).await;
    assert_eq!(st["storedCount"], 24, "{st}");
    let photos = members(&s, PHOTOS).await;
    for it in photos["items"].as_array().unwrap() {
        assert_eq!(it["status"], "stored", "{it}");
        assert_eq!(it["media"]["thumb"]["status"], "stored");
        assert_eq!(it["media"]["full"]["status"], "stored");
        let thumb_url = it["media"]["thumb"]["url"].as_str().unwrap();
        let bytes = s
            .http
            .get(thumb_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let img = image::load_from_memory(&bytes).expect("thumbnails are real images");
        assert!(img.width() <= 320 && img.height() <= 320);
    }

    // First sync: everything is adopted, nothing removed.
    let (_, first) = sync(&s, PHOTOS).await;
    assert_eq!(first["adoptedItems"], 12);
    assert_eq!(
        (first["addedItems"].clone(), first["removedItems"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(first["synced"], true);

    // The mixed list shares three photos and skips three unusable items.
    let (_, mixed) = add(&s, MIXED).await;
    assert_eq!(mixed["seen"], 9);
    assert_eq!(mixed["adoptedItems"], 3, "{mixed}");
    assert_eq!(mixed["addedItems"], 3, "{mixed}");
    wait_idle(&s).await;
    let shared: Vec<String> = ids(&members(&s, MIXED).await)
        .into_iter()
        .filter(|id| ids(&photos).contains(id))
        .collect();
    assert_eq!(shared.len(), 3);
    let only_photos: Vec<String> = ids(&photos)
        .into_iter()
        .filter(|id| !shared.contains(id))
        .collect();

    // Upstream: one shared and one unshared photo leave list 101, one
    // other photo changes.
    demo.remove(PHOTOS, &shared[0]).await;
    demo.remove(PHOTOS, &only_photos[0]).await;
    demo.change(&only_photos[1]).await;
    let before = item(&s, &only_photos[1]).await.1;
    let (_, later) = sync(&s, PHOTOS).await;
    assert_eq!(
        later,
        json!({"synced": true, "listId": PHOTOS, "seen": 10, "addedItems": 0, "updatedItems": 1,
               "removedItems": 1, "unchangedItems": 9, "adoptedItems": 0})
    );
    assert_eq!(
        item(&s, &only_photos[0]).await.0,
        404,
        "removed from the cache"
    );
    assert_eq!(
        item(&s, &shared[0]).await.0,
        200,
        "kept: list 104 still owns it"
    );
    wait_idle(&s).await;
    let after = item(&s, &only_photos[1]).await.1;
    assert_eq!(after["media"]["full"]["status"], "stored");
    assert_ne!(
        before["media"]["full"]["sizeBytes"], after["media"]["full"]["sizeBytes"],
        "the changed item was stored again"
    );
    // Totals match the bytes on disk once reclaim has run.
    s.wait_reclaimed().await;
    let st = status(&s).await;
    let files = s.blob_files();
    assert_eq!(files.len() as u64, st["storedCount"].as_u64().unwrap());
    assert_eq!(
        files.iter().map(|f| f.1).sum::<u64>(),
        st["totalSizeBytes"].as_u64().unwrap()
    );

    let (_, lists) = json(s.conn(Method::GET, "/v2/vault-plus/lists", "conn_a")).await;
    let l101 = lists["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listId"] == PHOTOS)
        .unwrap()
        .clone();
    assert_eq!(
        (l101["hasBaseline"].clone(), l101["mediaCount"].clone()),
        (json!(true), json!(10))
    );
}

#[tokio::test]
async fn settings_that_exclude_videos_store_none() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;
    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_a/settings")
        .json(&json!({"vaultPlus": {"settings": {"cacheVideos": false}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, added) = add(&s, VIDEOS).await;
    assert_eq!(
        (added["seen"].clone(), added["addedItems"].clone()),
        (json!(6), json!(0))
    );
    wait_idle(&s).await;
    assert_eq!(status(&s).await["storedCount"], 0);
    let stats = demo.stats().await;
    assert!(
        !stats.to_string().contains("44929944"),
        "nothing fetched: {stats}"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_stored() {
    let demo = Demo::start(&["--fail-first", "2"]);
    let s = server_for(&demo, &[]).await;
    add(&s, "103").await;
    wait_idle(&s).await;
    let st = status(&s).await;
    assert_eq!(st["storedCount"], 4, "{st}");
    assert_eq!(st["pendingCount"], 0);
    let failed = all_pages(&s, "/v2/vault-plus/jobs?state=failed").await;
    assert_eq!(failed, Vec::<Value>::new());
}

#[tokio::test]
async fn rate_limits_and_expired_urls_are_survived() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &["--fetch-attempts", "12"]).await;
    demo.faults(json!({"rateLimitRate": 0.3, "expiredRate": 0.3}))
        .await;
    let (code, body) = add(&s, "103").await;
    assert_eq!(code, 200, "{body}");
    wait_idle(&s).await;
    assert_eq!(status(&s).await["storedCount"], 4);
}

/// A body cut short (with or without an honest Content-Length) is never
/// stored: after the retry budget the variant stays visible, edge_only,
/// with its error; nothing is left on disk.
#[tokio::test]
async fn cut_bodies_fail_visibly_and_never_store() {
    for fault in ["truncateRate", "wrongLengthRate"] {
        let demo = Demo::start(&[]);
        let s = server_for(&demo, &["--fetch-attempts", "2"]).await;
        demo.faults(json!({ fault: 1.0 })).await;
        add(&s, "103").await;
        wait_idle(&s).await;
        let st = status(&s).await;
        assert_eq!(st["storedCount"], 0, "{fault}: {st}");
        let failed = all_pages(&s, "/v2/vault-plus/jobs?state=failed").await;
        assert_eq!(failed.len(), 4, "{fault}");
        assert!(
            failed
                .iter()
                .all(|j| j["lastError"].as_str().is_some_and(|e| !e.is_empty()))
        );
        let list = members(&s, "103").await;
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["status"] == "edge_only")
        );
        s.wait_reclaimed().await;
        assert!(s.blob_files().is_empty(), "{fault}: {:?}", s.blob_files());

        // Once the upstream behaves, POST on a media URL stores it.
        demo.no_faults().await;
        let url = list["items"][0]["media"]["full"]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s.http.post(&url).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"queued": true, "status": "pending"})
        );
        wait_idle(&s).await;
        let r = s.http.post(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"queued": false, "status": "stored"})
        );
    }
}

#[tokio::test]
async fn upstream_errors_reach_the_caller() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;
    demo.faults(json!({"sessionExpired": true})).await;
    let (code, body) = add(&s, PHOTOS).await;
    assert_eq!(
        (code, body["type"].clone()),
        (401, json!("SESSION_EXPIRED")),
        "{body}"
    );
    demo.faults(json!({"sessionExpired": false, "errorRate": 1.0}))
        .await;
    let (code, body) = sync(&s, PHOTOS).await;
    assert_eq!(
        (code, body["type"].clone()),
        (502, json!("UPSTREAM_ERROR")),
        "{body}"
    );
    demo.no_faults().await;
    let (code, body) = add(&s, "999999").await;
    assert_eq!(
        (code, body["type"].clone()),
        (404, json!("RESOURCE_NOT_FOUND")),
        "{body}"
    );
    let (code, _) = add(&s, "12ab").await;
    assert_eq!(code, 400);
    assert_eq!(status(&s).await["pendingCount"], 0, "nothing changed");
}

#[tokio::test]
async fn vault_plus_disabled_refuses_writes() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;
    add(&s, "103").await;
    let url = members(&s, "103").await["items"][0]["media"]["full"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_a/settings")
        .json(&json!({"vaultPlus": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (code, body) in [add(&s, "103").await, sync(&s, "103").await] {
        assert_eq!((code, body["type"].clone()), (403, json!("FORBIDDEN")));
        assert_eq!(body["error"], "Vault+ is not enabled for this connection");
    }
    // The purge that disabling did makes old URLs unknown.
    assert_eq!(s.http.post(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn proxy_serves_unstored_variants_and_auto_caches() {
    let demo = Demo::start(&[]);
    let s = server_for(&demo, &[]).await;
    // Store only the full variant; previews stay edge_only. Auto-cache
    // after the second access.
    s.req(Method::PATCH, "/v2/account/connections/conn_a/settings")
        .json(&json!({"vaultPlus": {"settings": {"imageQualities": ["full"], "minAccessCountVault": 2}}}))
        .send()
        .await
        .unwrap();
    add(&s, PHOTOS).await;
    wait_idle(&s).await;
    let list = members(&s, PHOTOS).await;
    let with_preview = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["media"]["preview"].is_object())
        .expect("a photo with a preview")
        .clone();
    let media = with_preview["mediaId"].as_str().unwrap().to_owned();
    assert_eq!(with_preview["media"]["preview"]["status"], "edge_only");
    let url = with_preview["media"]["preview"]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let first = s.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(
        first.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/")
    );
    let proxied = first.bytes().await.unwrap();
    assert!(image::load_from_memory(&proxied).is_ok());
    wait_idle(&s).await;
    assert_eq!(
        item(&s, &media).await.1["media"]["preview"]["status"],
        "edge_only"
    );

    let second = s
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(second, proxied);
    wait_idle(&s).await;
    let now = item(&s, &media).await.1;
    assert_eq!(now["media"]["preview"]["status"], "stored", "{now}");
    // Served from storage now: same bytes.
    assert_eq!(
        s.http
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        proxied
    );
}

/// One fetch per variant, however many adds and syncs ask for it.
#[tokio::test]
async fn concurrent_requests_fetch_each_variant_once() {
    let demo = Demo::start(&["--slow-body-ms", "5"]);
    let s = server_for(&demo, &[]).await;
    let (a, b, c) = tokio::join!(add(&s, "102"), add(&s, "102"), sync(&s, "102"));
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    wait_idle(&s).await;
    let stats = demo.stats().await;
    for (key, v) in stats["cdn"].as_object().unwrap() {
        assert_eq!(v["ok"], 1, "{key} fetched more than once: {v}");
    }
    // 6 videos: full (source), preview, and the thumb poster.
    assert_eq!(status(&s).await["storedCount"], 18);
}

async fn stored_count(s: &crate::harness::TestServer) -> u64 {
    status(s).await["storedCount"].as_u64().unwrap()
}

#[tokio::test]
async fn a_kill_mid_sync_resumes_without_storing_twice() {
    let demo = Demo::start(&["--slow-body-ms", "20"]);
    // On cluster stores the blobs of fetches cut by the kill are found by
    // age (--stale-upload-secs); an embedded server finds them at start.
    let flags = [
        "--job-lease-secs",
        "3",
        "--fetch-concurrency",
        "8",
        "--stale-upload-secs",
        "4",
    ];
    let mut s = server_for(&demo, &flags).await;
    let (code, body) = sync(&s, LARGE).await;
    assert_eq!(
        (code, body["addedItems"].clone()),
        (200, json!(1000)),
        "{body}"
    );
    while stored_count(&s).await < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.kill();
    // Whatever the kill cut (fetches, writes waiting for their sync, a
    // batch's commit), each variant stored by then has its whole blob.
    let stored = s.assert_stored_blobs_whole().await;
    assert!(stored >= 200, "{stored} stored at the kill");
    let mut args = upstream_flags(&demo);
    args.extend(flags.iter().map(|f| f.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    s.start_again(&refs).await;
    demo.faults(json!({"slowBodyMs": 0})).await;
    wait_idle(&s).await;
    // 1,000 photos, each full + derived thumb.
    let st = status(&s).await;
    assert_eq!(
        (st["storedCount"].clone(), st["pendingCount"].clone()),
        (json!(2000), json!(0)),
        "{st}"
    );
    let fetches = demo.fetch_counts().await;
    assert_eq!(fetches.len(), 1000);
    // Only fetches the kill cut, or whose sync or commit it cut, may have
    // happened twice: the 8 in flight and the finished ones waiting to be
    // settled and committed, of which the pipeline holds at most 4 per slot.
    let refetched = fetches.iter().filter(|n| **n > 1).count();
    assert!(refetched <= 8 + 4 * 8, "{refetched} fetched twice");
    let files = s.wait_blob_count(2000).await;
    s.wait_reclaimed().await;
    assert_eq!(
        files.len(),
        2000,
        "every stored variant has exactly one blob"
    );
    assert_eq!(
        files.iter().map(|f| f.1).sum::<u64>(),
        st["totalSizeBytes"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn a_purge_during_a_sync_leaves_nothing_behind() {
    let demo = Demo::start(&["--slow-body-ms", "20"]);
    let s = server_for(&demo, &[]).await;
    sync(&s, LARGE).await;
    while stored_count(&s).await < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (code, purge) = json(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(code, 200);
    // Every variant the sync recorded was live: 1,000 full + 1,000 thumbs.
    assert_eq!(purge["purgedCount"], 2000, "{purge}");
    assert!(purge["freedBytes"].as_u64().unwrap() > 0);
    let st = status(&s).await;
    assert_eq!(
        st,
        json!({"connectionId": "conn_a", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
    );
    let (_, lists) = json(s.conn(Method::GET, "/v2/vault-plus/lists", "conn_a")).await;
    assert_eq!(lists["items"], json!([]));
    // Fetches in flight at the purge end without storing anything; once
    // they have and reclaim has run, no byte of the old state is left.
    for _ in 0..400 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let backlog = String::from_utf8_lossy(&s.cli(&["reclaim", "status"]).stdout).to_string();
        if s.blob_files().is_empty()
            && backlog.contains("queued_blobs=0")
            && backlog.contains("retired_scopes=0")
        {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.wait_reclaimed().await;
    assert!(
        s.blob_files().is_empty(),
        "{} blobs left",
        s.blob_files().len()
    );
    assert_eq!(status(&s).await["storedCount"], 0);
    let (_, page) = json(s.conn(Method::GET, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(page["items"], json!([]));
}

/// Storing from the upstream keeps to the connection's storage limit as
/// the settings say when the fetches commit: under `block_new` what does
/// not fit fails with the reason, under `purge_oldest` older items make
/// room; either way the connection never holds more than the limit.
#[tokio::test]
async fn stores_from_the_upstream_keep_to_the_storage_limit() {
    let demo = Demo::start(&[]);
    // What list 103 holds, stored without a limit.
    let free = server_for(&demo, &[]).await;
    add(&free, "103").await;
    wait_idle(&free).await;
    let all = status(&free).await;
    let total = all["totalSizeBytes"].as_u64().unwrap();
    let count = all["storedCount"].as_u64().unwrap();
    assert!(count >= 2, "{all}");
    // At least the smallest variant fits, and not all of them.
    let limit = total / 2;
    for strategy in ["block_new", "purge_oldest"] {
        let s = server_for(&demo, &[]).await;
        let settings = json!({"vaultPlus": {"settings": {
            "storageLimitBytes": limit, "storageLimitPurgeStrategy": strategy}}});
        let r = s
            .req(Method::PATCH, "/v2/account/connections/conn_a/settings")
            .json(&settings)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{strategy}");
        add(&s, "103").await;
        wait_idle(&s).await;
        let st = status(&s).await;
        let bytes = st["totalSizeBytes"].as_u64().unwrap();
        let stored = st["storedCount"].as_u64().unwrap();
        assert!(bytes <= limit, "{strategy}: {st}");
        assert!(stored > 0 && stored < count, "{strategy}: {st}");
        if strategy == "block_new" {
            let failed = all_pages(&s, "/v2/vault-plus/jobs?state=failed").await;
            assert!(
                failed.iter().any(|j| j["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("storage limit"))),
                "{failed:?}"
            );
        }
    }
}
