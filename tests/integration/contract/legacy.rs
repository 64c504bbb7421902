//! Older SDK paths (API section 7) answer the same data as the current
//! ones.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::*;
use crate::harness::TestServer;

/// The current fields of an item: legacy paths may add `id`/`source` to
/// variants (API section 7), and URLs may roll over to a new window.
fn current_fields(item: &Value) -> Value {
    let mut media = Map::new();
    for (label, v) in item["media"].as_object().expect("media map") {
        let kept: Map<String, Value> = VARIANT_KEYS
            .iter()
            .filter(|k| **k != "url")
            .map(|k| {
                (
                    (*k).to_owned(),
                    v.get(*k).cloned().unwrap_or(json!("<missing>")),
                )
            })
            .collect();
        media.insert(label.clone(), Value::Object(kept));
    }
    json!({"id": item["id"], "type": item["type"], "duration": item["duration"], "media": media})
}

fn all_current(items: &Value) -> Vec<Value> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(current_fields)
        .collect()
}

async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "100", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "100", "thumb", "image/jpeg", 56, None).await;
    create(&s, "conn_a", "200", "full", "video/mp4", 500, Some("42")).await;
    create(&s, "conn_a", "30", "full", "audio/ogg", 70, Some("3")).await;
    s
}

#[tokio::test]
async fn older_get_batch_and_list_paths_answer_the_same_items() {
    let s = seeded().await;
    for id in ["100", "200", "30"] {
        let new = get_ok(&s, "conn_a", &format!("/v2/vault-plus/media/{id}")).await;
        let old = get_ok(&s, "conn_a", &format!("/v2/vault-plus/{id}")).await;
        assert_eq!(
            current_fields(&old),
            current_fields(&new),
            "GET /v2/vault-plus/{id}"
        );
    }
    let miss = get(&s, "conn_a", "/v2/vault-plus/999").await;
    assert_error(&miss, 404, "RESOURCE_NOT_FOUND");
    assert_eq!(miss.body["error"], "Media not found");

    let body = json!({"mediaIds": ["30", "999", "100", "30"]});
    let new = send(
        s.conn(Method::POST, "/v2/vault-plus/media/batch", "conn_a")
            .json(&body),
    )
    .await
    .ok(200);
    let old = send(
        s.conn(Method::POST, "/v2/vault-plus/batch", "conn_a")
            .json(&body),
    )
    .await
    .ok(200);
    assert_eq!(ids(old["items"].as_array().unwrap()), ["30", "100"]);
    assert_eq!(all_current(&old["items"]), all_current(&new["items"]));

    for query in [
        "",
        "?status=stored",
        "?contentType=image%2Fjpeg",
        "?limit=100",
    ] {
        let new = get_ok(&s, "conn_a", &format!("/v2/vault-plus/media{query}")).await;
        let old = get_ok(&s, "conn_a", &format!("/v2/vault-plus/list{query}")).await;
        assert_eq!(
            all_current(&old["items"]),
            all_current(&new["items"]),
            "list{query}"
        );
    }
    // The older list pages with the same cursor rules.
    let first = get_ok(&s, "conn_a", "/v2/vault-plus/list?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let second = get_ok(
        &s,
        "conn_a",
        &with_query("/v2/vault-plus/list", &[("limit", "2"), ("cursor", cursor)]),
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second.get("nextCursor").is_none());
    let mut seen = ids(first["items"].as_array().unwrap());
    seen.extend(ids(second["items"].as_array().unwrap()));
    seen.sort();
    assert_eq!(seen, ["100", "200", "30"]);
    let bad = get(&s, "conn_a", "/v2/vault-plus/list?limit=0").await;
    assert_bad_request(&bad, &["limit"], "older list, limit=0");
}

#[tokio::test]
async fn older_status_includes_total_media_and_older_stats_match() {
    let s = seeded().await;
    let new = status_of(&s, "conn_a").await;
    assert_eq!(
        new,
        json!({"connectionId": "conn_a", "storedCount": 4, "pendingCount": 0, "totalSizeBytes": 1626})
    );
    let old = get_ok(&s, "conn_a", "/v2/vault-plus/store/status").await;
    assert_eq!(
        old,
        json!({"connectionId": "conn_a", "totalMedia": 4, "storedCount": 4, "pendingCount": 0, "totalSizeBytes": 1626})
    );
    let new = stats_of(&s).await;
    let old = send(s.req(Method::GET, "/v2/vault-plus/store/stats"))
        .await
        .ok(200);
    assert_eq!(old, new);
    assert_eq!(
        new,
        json!({"totalConnections": 1, "connectionsWithVaultPlus": 1, "totalStorageBytes": 1626, "totalMediaCount": 4})
    );
}

#[tokio::test]
async fn older_delete_path_deletes_the_same_way() {
    let s = seeded().await;
    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/100", "conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "mediaId": "100", "freedBytes": 1056})
    );
    assert_error(
        &get(&s, "conn_a", "/v2/vault-plus/media/100").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let r = send(s.conn(Method::DELETE, "/v2/vault-plus/100", "conn_a")).await;
    assert_eq!(
        r.body,
        json!({"success": false, "mediaId": "100", "freedBytes": 0})
    );
    assert_eq!(status_of(&s, "conn_a").await["totalSizeBytes"], json!(570));
}
