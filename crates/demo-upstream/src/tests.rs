//! End-to-end tests of the router, in process: list, fetch, mutate, fault.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::catalog::{self, MEDIA_BASE};
use super::faults::FaultSettings;
use super::routes::{Demo, router};
use super::state::World;
use super::urls::Signer;

fn app(faults: FaultSettings) -> Router {
    let world = World::new(faults, 1);
    let signer = Signer::with_key([1; 32]);
    let demo = Demo::new(world, signer, "k".into(), "http://demo".into(), 300, 1);
    router(Arc::new(demo))
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("apiKey", "k")
        .header("x-connection-id", "conn_1");
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    (status, bytes.to_vec())
}

async fn json_of(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, bytes) = call(app, method, uri, body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The path and query of a URL the demo handed out.
fn local(url: &Value) -> String {
    let url = url.as_str().expect("url string");
    url.strip_prefix("http://demo")
        .expect("public base")
        .to_owned()
}

async fn list(app: &Router, list: u64) -> Vec<Value> {
    let uri = format!("/v2/access/vault/lists/{list}/media?limit=100");
    let (status, v) = json_of(app, Method::GET, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    v["list"].as_array().expect("list").clone()
}

#[tokio::test]
async fn auth_errors_have_upstream_types() {
    let app = app(FaultSettings::default());
    let no_key = Request::get("/v2/access/vault/lists").body(Body::empty());
    let resp = app.clone().oneshot(no_key.expect("req")).await.expect("ok");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value =
        serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 16).await.expect("body"))
            .expect("json");
    assert_eq!(body["type"], "UNAUTHORIZED");
    let no_conn = Request::get("/v2/access/vault/lists")
        .header("apiKey", "k")
        .body(Body::empty());
    let resp = app
        .clone()
        .oneshot(no_conn.expect("req"))
        .await
        .expect("ok");
    let body: Value =
        serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 16).await.expect("body"))
            .expect("json");
    assert_eq!(body["type"], "SESSION_NOT_PROVIDED");
    let (status, _) = json_of(&app, Method::GET, "/v2/access/vault/lists/999/media", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_photo_rendition_serves_exactly_its_listed_size() {
    let app = app(FaultSettings::default());
    let items = list(&app, catalog::LIST_PHOTOS).await;
    assert_eq!(items.len(), 12);
    let without_thumb = items
        .iter()
        .filter(|i| i["files"]["thumb"].is_null())
        .count();
    assert!(without_thumb > 0);
    for item in &items {
        for (label, file) in item["files"].as_object().expect("files") {
            let (status, bytes) = call(&app, Method::GET, &local(&file["url"]), None).await;
            assert_eq!(status, StatusCode::OK, "{} {label}", item["id"]);
            assert_eq!(Some(bytes.len() as u64), file["size"].as_u64());
            let img = image::load_from_memory(&bytes).expect("decodes");
            assert_eq!(Some(u64::from(img.width())), file["width"].as_u64());
        }
    }
    let (_, stats) = json_of(&app, Method::GET, "/_demo/stats", None).await;
    assert_eq!(stats["cdn"][format!("{MEDIA_BASE}/full")]["ok"], 1);
}

#[tokio::test]
async fn change_moves_the_url_and_size_and_retires_the_old_url() {
    let app = app(FaultSettings::default());
    let before = list(&app, catalog::LIST_VIDEOS).await[0]["files"]["full"].clone();
    let uri = format!("/_demo/media/{}/change", MEDIA_BASE + 100);
    let (status, v) = json_of(&app, Method::POST, &uri, None).await;
    assert_eq!((status, v["revision"].as_u64()), (StatusCode::OK, Some(1)));
    let after = list(&app, catalog::LIST_VIDEOS).await[0]["files"]["full"].clone();
    assert_ne!(before["size"], after["size"]);
    let path = |f: &Value| local(&f["url"]).split('?').next().map(str::to_owned);
    assert_ne!(path(&before), path(&after));
    let (status, _) = call(&app, Method::GET, &local(&before["url"]), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, bytes) = call(&app, Method::GET, &local(&after["url"]), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(Some(bytes.len() as u64), after["size"].as_u64());
    assert_eq!(&bytes[4..8], b"ftyp");
}

#[tokio::test]
async fn remove_add_reset_and_paging() {
    let app = app(FaultSettings::default());
    let uri = format!("/_demo/lists/101/remove/{MEDIA_BASE}");
    let (status, v) = json_of(&app, Method::POST, &uri, None).await;
    assert_eq!((status, &v["removed"]), (StatusCode::OK, &json!(true)));
    assert_eq!(list(&app, 101).await.len(), 11);
    let uri = format!("/_demo/lists/103/add/{MEDIA_BASE}");
    json_of(&app, Method::POST, &uri, None).await;
    assert_eq!(list(&app, 103).await.len(), 5);
    json_of(&app, Method::POST, "/_demo/reset", None).await;
    assert_eq!(list(&app, 101).await.len(), 12);
    let uri = "/v2/access/vault/lists/105/media?limit=7&offset=994";
    let (_, v) = json_of(&app, Method::GET, uri, None).await;
    assert_eq!(v["list"].as_array().map(Vec::len), Some(6));
    assert_eq!(v["hasMore"], false);
    assert_eq!(v["list"][0]["id"], MEDIA_BASE + 10_994);
}

#[tokio::test]
async fn body_faults_cut_where_they_say() {
    let app = app(FaultSettings::default());
    let item = list(&app, catalog::LIST_AUDIO).await[0].clone();
    let full = &item["files"]["full"];
    let size = full["size"].as_u64().expect("size");
    let faults = json!({"wrongLengthRate": 1.0});
    json_of(&app, Method::PUT, "/_demo/faults", Some(faults)).await;
    let (status, bytes) = call(&app, Method::GET, &local(&full["url"]), None).await;
    assert_eq!((status, bytes.len() as u64), (StatusCode::OK, size - 100));

    let faults = json!({"wrongLengthRate": 0.0, "truncateRate": 1.0});
    json_of(&app, Method::PUT, "/_demo/faults", Some(faults)).await;
    let req = Request::get(local(&full["url"])).body(Body::empty());
    let resp = app.clone().oneshot(req.expect("req")).await.expect("ok");
    let announced = resp.headers()[header::CONTENT_LENGTH]
        .to_str()
        .map(str::to_owned);
    assert_eq!(announced.ok(), Some(size.to_string()));
    assert!(to_bytes(resp.into_body(), usize::MAX).await.is_err());
}

#[tokio::test]
async fn fail_first_and_status_faults() {
    let faults = FaultSettings {
        fail_first: 1,
        ..Default::default()
    };
    let app = app(faults);
    let full = list(&app, catalog::LIST_PHOTOS).await[2]["files"]["full"].clone();
    let (first, _) = call(&app, Method::GET, &local(&full["url"]), None).await;
    let (second, _) = call(&app, Method::GET, &local(&full["url"]), None).await;
    assert_eq!(
        (first, second),
        (StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK)
    );

    let (status, _) = json_of(
        &app,
        Method::PUT,
        "/_demo/faults",
        Some(json!({"errorRate": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let set = json!({"sessionExpired": true});
    json_of(&app, Method::PUT, "/_demo/faults", Some(set)).await;
    let (status, v) = json_of(&app, Method::GET, "/v2/access/vault/lists", None).await;
    assert_eq!(
        (status, &v["type"]),
        (StatusCode::UNAUTHORIZED, &json!("SESSION_EXPIRED"))
    );
    let set = json!({"sessionExpired": false, "rateLimitRate": 1.0});
    json_of(&app, Method::PUT, "/_demo/faults", Some(set)).await;
    let (status, _) = json_of(&app, Method::GET, "/v2/access/vault/lists", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = call(&app, Method::GET, &local(&full["url"]), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let tampered = local(&full["url"]).replace("sig=", "sig=00");
    let (status, _) = call(&app, Method::GET, &tampered, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bulk_items_are_tiny_audio_and_held_pages_wait() {
    let app = app(FaultSettings::default());
    let items = list(&app, catalog::LIST_BULK).await;
    assert_eq!(items.len(), 100);
    let full = &items[0]["files"]["full"];
    assert_eq!(
        (items[0]["type"].as_str(), full["size"].as_u64()),
        (Some("audio"), Some(427))
    );
    let (status, body) = call(&app, Method::GET, &local(&full["url"]), None).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 427));
    // Pages from offset 100 on are held until the hold is lifted.
    let hold = Some(json!({"holdListFrom": 100}));
    assert_eq!(
        json_of(&app, Method::PUT, "/_demo/faults", hold).await.0,
        StatusCode::OK
    );
    assert_eq!(
        list(&app, catalog::LIST_BULK).await.len(),
        100,
        "offset 0 is not held"
    );
    let uri = format!(
        "/v2/access/vault/lists/{}/media?limit=100&offset=200",
        catalog::LIST_BULK
    );
    let held = tokio::spawn({
        let app = app.clone();
        async move { json_of(&app, Method::GET, &uri, None).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "a held page waits");
    let lift = Some(json!({"holdListFrom": 0}));
    assert_eq!(
        json_of(&app, Method::PUT, "/_demo/faults", lift).await.0,
        StatusCode::OK
    );
    let (status, v) = held.await.expect("joined");
    assert_eq!(
        (status, v["list"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(50))
    );
}
