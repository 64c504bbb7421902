//! `POST /v2/vault-plus/media/batch` (API 4.5; DEC "Single item, batch,
//! status, stats": 1-100 string IDs, duplicates folded, request order,
//! misses left out).

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::harness::TestServer;

async fn batch(s: &TestServer, path: &str, body: Value) -> Resp {
    send(s.conn(Method::POST, path, "conn_a").json(&body)).await
}

async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    for id in ["10", "9", "300", "4492994399"] {
        create(&s, "conn_a", id, "full", "image/jpeg", 10 + id.len(), None).await;
    }
    create(&s, "conn_a", "300", "thumb", "image/jpeg", 3, None).await;
    create(&s, "conn_b", "77", "full", "image/jpeg", 10, None).await;
    s
}

#[tokio::test]
async fn batch_answers_in_request_order_folding_duplicates_and_leaving_out_misses() {
    let s = seeded().await;
    let request = json!({"mediaIds": ["300", "5", "9", "4492994399", "300", "77", "9", "10"]});
    let body = batch(&s, "/v2/vault-plus/media/batch", request)
        .await
        .ok(200);
    assert_eq!(keys_of(&body), key_set(&["items"]));
    let items = body["items"].as_array().unwrap();
    // 5 is unknown; 77 belongs to another connection.
    assert_eq!(ids(items), ["300", "9", "4492994399", "10"]);
    for item in items {
        let single = get_ok(
            &s,
            "conn_a",
            &format!("/v2/vault-plus/media/{}", item["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(
            strip_urls(item),
            strip_urls(&single),
            "batch item equals the single get"
        );
    }
    assert_eq!(keys_of(&items[0]["media"]), key_set(&["full", "thumb"]));

    let none = batch(
        &s,
        "/v2/vault-plus/media/batch",
        json!({"mediaIds": ["1", "2"]}),
    )
    .await
    .ok(200);
    assert_eq!(none, json!({"items": []}));
}

#[tokio::test]
async fn a_batch_of_exactly_100_ids_is_accepted() {
    let s = seeded().await;
    let mut list: Vec<String> = (1000..1099).map(|i| i.to_string()).collect();
    list.push("10".to_owned());
    assert_eq!(list.len(), 100);
    let body = batch(&s, "/v2/vault-plus/media/batch", json!({"mediaIds": list}))
        .await
        .ok(200);
    assert_eq!(ids(body["items"].as_array().unwrap()), ["10"]);
    // 100 copies of one ID is also 100 IDs (folded to one).
    let same = vec!["9"; 100];
    let body = batch(&s, "/v2/vault-plus/media/batch", json!({"mediaIds": same}))
        .await
        .ok(200);
    assert_eq!(ids(body["items"].as_array().unwrap()), ["9"]);
}

#[tokio::test]
async fn bad_batch_bodies_are_400_naming_media_ids_and_change_nothing() {
    let s = seeded().await;
    let before = state(&s, "conn_a").await;
    let hundred_one: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    const FIELD: &[&str] = &["mediaIds"];
    const MEDIA: &[&str] = &["mediaIds", "media id", "mediaId"];
    const BODY: &[&str] = &["mediaIds", "body", "object"];
    let cases = [
        ("empty list", json!({"mediaIds": []}), FIELD),
        ("101 IDs", json!({"mediaIds": hundred_one}), FIELD),
        ("a number", json!({"mediaIds": [10]}), FIELD),
        ("mixed", json!({"mediaIds": ["10", 9]}), FIELD),
        ("null element", json!({"mediaIds": [null]}), FIELD),
        ("nested list", json!({"mediaIds": [["10"]]}), FIELD),
        ("object element", json!({"mediaIds": [{"id": "10"}]}), FIELD),
        ("non-numeric ID", json!({"mediaIds": ["10", "abc"]}), MEDIA),
        ("33-digit ID", json!({"mediaIds": ["1".repeat(33)]}), MEDIA),
        ("empty string ID", json!({"mediaIds": [""]}), MEDIA),
        ("signed ID", json!({"mediaIds": ["-10"]}), MEDIA),
        ("not a list", json!({"mediaIds": "10"}), FIELD),
        ("null list", json!({"mediaIds": null}), FIELD),
        ("missing field", json!({}), FIELD),
        ("array body", json!(["10"]), BODY),
    ];
    let mut soft = Soft::default();
    for path in ["/v2/vault-plus/media/batch", "/v2/vault-plus/batch"] {
        for (what, body, names) in &cases {
            let r = batch(&s, path, body.clone()).await;
            let what = format!("{path}: {what}");
            soft.check(&what, || assert_bad_request(&r, names, &what));
        }
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
}
