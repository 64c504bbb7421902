//! The vault-list routes (API 4.6-4.9, 4.15; DEC "Lists", "Vault+
//! disabled") as far as they can be exercised without an upstream: reads
//! on connections that never synced, the wire conventions, and the 403 of
//! a disabled connection.

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::harness::TestServer;

const LIST_ROUTES: [(&str, &str); 5] = [
    ("GET", "/v2/vault-plus/lists"),
    ("GET", "/v2/vault-plus/lists/28489180/media"),
    ("PUT", "/v2/vault-plus/lists/28489180/sync"),
    ("POST", "/v2/vault-plus/lists/28489180/add"),
    ("POST", "/v2/vault-plus/store/list/28489180"),
];

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

#[tokio::test]
async fn list_reads_on_a_connection_that_never_synced_are_empty() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "1", "full", "image/jpeg", 10, None).await;
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/lists").await,
        json!({"items": []})
    );
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/lists/28489180/media").await,
        json!({"items": []}),
        "DEC: an unknown list answers {{\"items\":[]}}"
    );
}

#[tokio::test]
async fn list_routes_follow_the_auth_and_connection_rules() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("orgb", "conn_b");
    let access = s.create_key("default", &["ACCESS"]);
    let mut soft = Soft::default();
    for (m, path) in LIST_ROUTES {
        for (what, key) in [("no key", None), ("ACCESS key", Some(access.as_str()))] {
            let r =
                send(with_key(&s, key, method(m), path).header("x-connection-id", "conn_a")).await;
            let what = format!("{m} {path} with {what}");
            soft.check(&what, || assert_unauthorized(&r, &what));
        }
        let r = send(s.req(method(m), path)).await;
        let what = format!("{m} {path} without x-connection-id");
        soft.check(&what, || assert_header_required(&r, &what));
        for conn in ["conn_nope", "conn_b"] {
            let r = send(s.conn(method(m), path, conn)).await;
            let what = format!("{m} {path} for {conn}");
            soft.check(&what, || assert_connection_not_found(&r, &what));
        }
    }
    soft.finish();
}

#[tokio::test]
async fn a_disabled_connection_reads_no_lists_and_refuses_list_writes_with_403() {
    let s = TestServer::start().await;
    let out = s.cli(&[
        "connections",
        "add",
        "--org",
        "default",
        "--disabled",
        "conn_off",
    ]);
    crate::harness::assert_success(&out);
    let before = state(&s, "conn_off").await;
    let mut soft = Soft::default();
    for (m, path) in LIST_ROUTES {
        let r = send(s.conn(method(m), path, "conn_off")).await;
        let what = format!("{m} {path} on a disabled connection");
        if m == "GET" {
            soft.check(&what, || {
                assert_eq!((r.status, &r.body), (200, &json!({"items": []})), "{what}")
            });
        } else {
            soft.check(&what, || {
                assert_error(&r, 403, "FORBIDDEN");
                assert_eq!(
                    r.body["error"], "Vault+ is not enabled for this connection",
                    "{what}"
                );
            });
        }
    }
    soft.finish();
    assert_eq!(state(&s, "conn_off").await, before);
}
