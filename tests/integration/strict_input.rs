//! Strict input (issue 10, item 10): a request that says two things, or
//! something the server does not take, is a 400 naming the problem and
//! changes nothing. Duplicate JSON keys, repeated single-value headers,
//! unknown query parameters, numbers that are not whole or out of range.

use reqwest::Method;
use serde_json::{Value, json};

use crate::contract::{assert_bad_request, create, raw, send, state};
use crate::harness::TestServer;

const CONN: &str = "conn_strict";

async fn server() -> TestServer {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    let r = send(
        s.req(
            Method::PATCH,
            &format!("/v2/account/connections/{CONN}/settings"),
        )
        .json(&json!({"vaultPlus": {"enabled": true}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    create(&s, CONN, "500", "full", "image/jpeg", 300, None).await;
    s
}

/// A raw JSON body (serde_json cannot write a duplicate key).
fn raw_json(s: &TestServer, method: Method, path: &str, body: &str) -> reqwest::RequestBuilder {
    s.req(method, path)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_and_change_nothing() {
    let s = server().await;
    let before = state(&s, CONN).await;
    let settings = format!("/v2/account/connections/{CONN}/settings");
    let cases: [(&str, &str, &[&str]); 5] = [
        // Top level: the last value would disable Vault+ and purge.
        (
            settings.as_str(),
            r#"{"vaultPlus":{"enabled":true},"vaultPlus":{"enabled":false}}"#,
            &["vaultplus"],
        ),
        // Nested, with the path to the key.
        (
            settings.as_str(),
            r#"{"vaultPlus":{"enabled":true,"enabled":false}}"#,
            &["vaultplus", "enabled"],
        ),
        (
            settings.as_str(),
            r#"{"vaultPlus":{"settings":{"retentionDays":1,"retentionDays":0}}}"#,
            &["vaultplus.settings", "retentiondays"],
        ),
        (
            "/v2/account/settings",
            r#"{"vaultPlus":{"defaultSettings":{"cacheImages":false,"cacheImages":true}}}"#,
            &["vaultplus.defaultsettings", "cacheimages"],
        ),
        (
            "/v2/account/settings",
            r#"{"vaultPlus":{"autoEnableForNewConnections":true},"vaultPlus":{}}"#,
            &["vaultplus"],
        ),
    ];
    for (path, body, names) in cases {
        let r = send(raw_json(&s, Method::PATCH, path, body)).await;
        assert_bad_request(&r, &["more than once"], body);
        for n in names {
            assert!(r.error_lc().contains(n), "{body}: {} lacks {n}", r.body);
        }
    }
    let r = send(
        raw_json(
            &s,
            Method::POST,
            "/v2/vault-plus/media/batch",
            r#"{"mediaIds":["500"],"mediaIds":[]}"#,
        )
        .header("x-connection-id", CONN),
    )
    .await;
    assert_bad_request(&r, &["mediaids"], "batch");
    // Vault+ is still enabled and the media is still there.
    assert_eq!(state(&s, CONN).await, before);
    let after = state(&s, CONN).await;
    assert_eq!(after["settings"]["vaultPlus"]["enabled"], true);
    assert_eq!(after["media"]["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn repeated_single_value_headers_are_refused() {
    let s = server().await;
    let before = state(&s, CONN).await;
    let other = s.create_key("default", &["ACCOUNT"]);
    // Two apiKey lines, in two spellings: both keys are valid, so only the
    // repetition can be the reason.
    let r = send(
        s.http
            .get(s.url("/v2/vault-plus/status"))
            .header("apiKey", &s.key)
            .header("APIKEY", &other)
            .header("x-connection-id", CONN),
    )
    .await;
    assert_bad_request(&r, &["apikey"], "two apiKey headers");
    let r = send(
        s.req(Method::DELETE, "/v2/vault-plus/media")
            .header("x-connection-id", CONN)
            .header("X-Connection-Id", "conn_other"),
    )
    .await;
    assert_bad_request(&r, &["x-connection-id"], "two x-connection-id headers");
    let r = send(
        s.req(Method::PATCH, "/v2/account/settings")
            .header("content-type", "application/json")
            .header("content-type", "text/plain")
            .body(r#"{"vaultPlus":{}}"#),
    )
    .await;
    assert_bad_request(&r, &["content-type"], "two content-type headers on JSON");
    let r = send(
        s.conn(Method::PUT, "/v2/vault-plus/media/501/variants/full", CONN)
            .header("content-type", "image/jpeg")
            .header("content-type", "video/mp4")
            .body(vec![1u8; 10]),
    )
    .await;
    assert_bad_request(&r, &["content-type"], "two content-type headers on upload");
    // On uploads, x-media-duration too. (Two equal Content-Length lines
    // are merged by hyper, which refuses unequal ones itself.)
    let headers = [
        ("apiKey", s.key.as_str()),
        ("x-connection-id", CONN),
        ("Content-Type", "video/mp4"),
        ("x-media-duration", "3"),
        ("X-Media-Duration", "4"),
    ];
    let r = raw(
        &s,
        "PUT",
        "/v2/vault-plus/media/501/variants/full",
        &headers,
        &[7u8; 10],
    )
    .await;
    assert_bad_request(&r, &["x-media-duration"], "two x-media-duration headers");
    // Nothing was purged, stored or changed.
    assert_eq!(state(&s, CONN).await, before);
    // One of each still works.
    let r = send(s.conn(Method::GET, "/v2/vault-plus/status", CONN)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_on_every_kind_of_route() {
    let s = server().await;
    let before = state(&s, CONN).await;
    let media = s
        .conn(Method::GET, "/v2/vault-plus/media", CONN)
        .send()
        .await
        .unwrap();
    let url = media.json::<Value>().await.unwrap()["items"][0]["media"]["full"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        (Method::GET, "/v2/vault-plus/media?stauts=stored", "stauts"),
        (
            Method::GET,
            "/v2/vault-plus/list?status=stored&sort2=x",
            "sort2",
        ),
        (Method::GET, "/v2/vault-plus/status?verbose=1", "verbose"),
        (Method::GET, "/v2/vault-plus/media/500?expand=all", "expand"),
        (Method::DELETE, "/v2/vault-plus/media?dryRun=true", "dryrun"),
        (Method::GET, "/v2/account/connections?page=2", "page"),
        (Method::GET, "/v2/account/settings?x=", "\"x\""),
        (Method::GET, "/v2/vault-plus/stats?org=other", "org"),
    ];
    for (method, path, name) in cases {
        let r = send(s.conn(method.clone(), path, CONN)).await;
        assert_bad_request(&r, &[name], &format!("{method} {path}"));
    }
    // The media URL too (a CDN that appends parameters must not).
    assert!(!url.contains('?'), "media URLs carry no query: {url}");
    let r = send(s.http.get(format!("{url}?cb=1"))).await;
    assert_bad_request(&r, &["cb"], "media URL with a parameter");
    let r = send(s.http.head(format!("{url}?cb=1"))).await;
    assert_eq!(r.status, 400, "HEAD with a parameter");
    // The purge with a parameter purged nothing.
    assert_eq!(state(&s, CONN).await, before);
    // The URL itself still serves.
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn documented_and_older_sdk_parameters_still_work() {
    let s = server().await;
    create(&s, CONN, "501", "full", "image/png", 100, None).await;
    let ok = [
        "/v2/vault-plus/media?status=stored&type=image&contentType=image/jpeg&sort=createdAt_asc&limit=5",
        "/v2/vault-plus/media?storedAtFrom=2000-01-01T00:00:00Z&cachedAtTo=2999-01-01T00:00:00Z",
        "/v2/vault-plus/list?status=stored&source=vault&contentType=image/png&limit=1",
        "/v2/vault-plus/jobs?state=failed",
    ];
    for path in ok {
        let r = send(s.conn(Method::GET, path, CONN)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // limit + cursor paging on the older path.
    let first = send(s.conn(
        Method::GET,
        "/v2/vault-plus/list?source=vault&limit=1",
        CONN,
    ))
    .await
    .ok(200);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = send(s.conn(
        Method::GET,
        &format!("/v2/vault-plus/list?source=vault&limit=1&cursor={cursor}"),
        CONN,
    ))
    .await
    .ok(200);
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    let conns = send(s.req(
        Method::GET,
        "/v2/account/connections?status=active&limit=1&offset=0",
    ))
    .await
    .ok(200);
    assert_eq!(conns["list"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn query_integers_must_be_whole_and_in_range() {
    let s = server().await;
    for limit in [
        "1.5",
        "1e1",
        "1e3",
        "-1",
        "0",
        "101",
        "%2B5",
        "10.0",
        "18446744073709551616",
    ] {
        let path = format!("/v2/vault-plus/media?limit={limit}");
        let r = send(s.conn(Method::GET, &path, CONN)).await;
        assert_bad_request(&r, &["limit"], &path);
        let path = format!("/v2/account/connections?limit={limit}");
        let r = send(s.req(Method::GET, &path)).await;
        assert_bad_request(&r, &["limit"], &path);
    }
    for offset in ["-1", "1.5", "1e3", "9223372036854775807", "1000000001"] {
        let path = format!("/v2/account/connections?offset={offset}");
        let r = send(s.req(Method::GET, &path)).await;
        assert_bad_request(&r, &["offset"], &path);
    }
}

#[tokio::test]
async fn the_largest_offset_is_an_empty_last_page() {
    let s = server().await;
    s.add_connection("default", "conn_strict2");
    // Page 1, then the page its nextOffset names: the list ends.
    let first = send(s.req(Method::GET, "/v2/account/connections?limit=1"))
        .await
        .ok(200);
    assert_eq!(first["hasMore"], true, "{first}");
    assert_eq!(first["nextOffset"], 1, "{first}");
    let last = send(s.req(Method::GET, "/v2/account/connections?limit=1&offset=1"))
        .await
        .ok(200);
    assert_eq!(last["hasMore"], false, "{last}");
    assert!(last.get("nextOffset").is_none_or(Value::is_null), "{last}");
    // The largest accepted offset answers an empty page, not page 1, and
    // hands out no nextOffset.
    let edge = send(s.req(Method::GET, "/v2/account/connections?offset=1000000000"))
        .await
        .ok(200);
    assert_eq!(edge["list"], json!([]), "{edge}");
    assert_eq!(edge["hasMore"], false, "{edge}");
    assert!(edge.get("nextOffset").is_none_or(Value::is_null), "{edge}");
}

#[tokio::test]
async fn json_integers_must_be_whole_and_in_range() {
    let s = server().await;
    let before = state(&s, CONN).await;
    let settings = format!("/v2/account/connections/{CONN}/settings");
    let cases = [
        (
            r#"{"vaultPlus":{"settings":{"retentionDays":1.5}}}"#,
            "retentiondays",
        ),
        (
            r#"{"vaultPlus":{"settings":{"retentionDays":36501}}}"#,
            "retentiondays",
        ),
        (
            r#"{"vaultPlus":{"settings":{"storageLimitBytes":1e400}}}"#,
            "storagelimitbytes",
        ),
        (
            r#"{"vaultPlus":{"settings":{"storageLimitBytes":9223372036854775808}}}"#,
            "storagelimitbytes",
        ),
        (
            r#"{"vaultPlus":{"settings":{"storageLimitBytes":18446744073709551616}}}"#,
            "storagelimitbytes",
        ),
        (
            r#"{"vaultPlus":{"settings":{"minAccessCountVault":-1}}}"#,
            "minaccesscountvault",
        ),
        (
            r#"{"vaultPlus":{"settings":{"presignedUrlTtlSeconds":1e20}}}"#,
            "presignedurlttlseconds",
        ),
    ];
    for (body, name) in cases {
        let r = send(raw_json(&s, Method::PATCH, &settings, body)).await;
        assert_bad_request(&r, &[name], body);
    }
    let r = send(raw_json(
        &s,
        Method::PATCH,
        "/v2/account/settings",
        r#"{"vaultPlus":{"defaultSettings":{"accessExpiryDays":2.5}}}"#,
    ))
    .await;
    assert_bad_request(&r, &["accessexpirydays"], "org defaults");
    assert_eq!(state(&s, CONN).await, before);
    // An integral float (what the Python SDK sends) is still a whole number.
    let r = send(raw_json(
        &s,
        Method::PATCH,
        &settings,
        r#"{"vaultPlus":{"settings":{"presignedUrlTtlSeconds":600.0}}}"#,
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
