//! Account routes: org settings (API 4.14; DEC "Settings defaults"),
//! connection settings (API 4.13; DEC "Vault+ disabled"), the connections
//! list and connection delete (brief: vaultplus specifics).

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::harness::TestServer;

fn defaults() -> Value {
    json!({
        "autoCacheVault": true,
        "autoCacheMessages": false,
        "autoCachePosts": false,
        "autoCacheStories": false,
        "minAccessCountVault": 1,
        "minAccessCountMessages": 1,
        "minAccessCountPosts": 1,
        "minAccessCountStories": 1,
        "cacheImages": true,
        "cacheVideos": true,
        "cacheAudio": true,
        "imageQualities": ["thumb", "full"],
        "videoQualities": ["preview", "source"],
        "retentionDays": 0,
        "accessExpiryDays": 0,
        "presignedUrlTtlSeconds": 3600,
        "storageLimitBytes": 0,
        "storageLimitPurgeStrategy": "purge_oldest"
    })
}

async fn org_settings(s: &TestServer) -> Value {
    send(s.req(Method::GET, "/v2/account/settings"))
        .await
        .ok(200)
}

async fn patch_org(s: &TestServer, body: Value) -> Resp {
    send(s.req(Method::PATCH, "/v2/account/settings").json(&body)).await
}

async fn conn_settings(s: &TestServer, conn: &str) -> Resp {
    send(s.req(
        Method::GET,
        &format!("/v2/account/connections/{conn}/settings"),
    ))
    .await
}

/// `settingsOverrides` with no overrides: `null` (TS SDK) or `{}` (Python
/// SDK types it as a required object).
fn assert_no_overrides(v: &Value) {
    assert!(
        v.is_null() || v.as_object().is_some_and(|m| m.is_empty()),
        "expected no overrides, got {v}"
    );
}

#[tokio::test]
async fn org_settings_start_with_the_18_decided_defaults() {
    let s = TestServer::start().await;
    let got = org_settings(&s).await;
    assert_eq!(
        got,
        json!({"vaultPlus": {"autoEnableForNewConnections": true, "defaultSettings": defaults()}})
    );
    assert_eq!(keys_of(&got["vaultPlus"]["defaultSettings"]).len(), 18);
}

#[tokio::test]
async fn org_settings_patch_merges_partial_defaults() {
    let s = TestServer::start().await;
    let r = patch_org(
        &s,
        json!({"vaultPlus": {"autoEnableForNewConnections": false,
                             "defaultSettings": {"retentionDays": 30, "imageQualities": ["full"]}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = defaults();
    want["retentionDays"] = json!(30);
    want["imageQualities"] = json!(["full"]);
    let expected =
        json!({"vaultPlus": {"autoEnableForNewConnections": false, "defaultSettings": want}});
    assert_eq!(r.body["settings"], expected);
    assert_eq!(org_settings(&s).await, expected);
    // A second partial patch keeps the first one's values.
    let r = patch_org(
        &s,
        json!({"vaultPlus": {"defaultSettings": {"presignedUrlTtlSeconds": 600}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want2 = want.clone();
    want2["presignedUrlTtlSeconds"] = json!(600);
    assert_eq!(
        org_settings(&s).await,
        json!({"vaultPlus": {"autoEnableForNewConnections": false, "defaultSettings": want2}})
    );
}

fn bad_settings_cases() -> Vec<(Value, &'static str)> {
    vec![
        (json!({"retentionDays": -1}), "retentionDays"),
        (json!({"retentionDays": "30"}), "retentionDays"),
        (json!({"accessExpiryDays": -2}), "accessExpiryDays"),
        (json!({"storageLimitBytes": -5}), "storageLimitBytes"),
        (
            json!({"presignedUrlTtlSeconds": "an hour"}),
            "presignedUrlTtlSeconds",
        ),
        (json!({"minAccessCountVault": "1"}), "minAccessCountVault"),
        (json!({"autoCacheVault": "yes"}), "autoCacheVault"),
        (json!({"cacheImages": 1}), "cacheImages"),
        (json!({"imageQualities": ["huge"]}), "imageQualities"),
        (json!({"imageQualities": ["source"]}), "imageQualities"),
        (json!({"imageQualities": "full"}), "imageQualities"),
        (json!({"videoQualities": ["4k"]}), "videoQualities"),
        (json!({"videoQualities": [720]}), "videoQualities"),
        (
            json!({"storageLimitPurgeStrategy": "purge_random"}),
            "storageLimitPurgeStrategy",
        ),
        (
            json!({"storageLimitPurgeStrategy": 1}),
            "storageLimitPurgeStrategy",
        ),
    ]
}

#[tokio::test]
async fn bad_org_settings_patches_are_400_naming_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let before = org_settings(&s).await;
    let conn_before = state(&s, "conn_a").await;
    let mut cases: Vec<(Value, &str)> = bad_settings_cases()
        .into_iter()
        .map(|(v, f)| (json!({"vaultPlus": {"defaultSettings": v}}), f))
        .collect();
    cases.extend([
        (json!({"vaultPlus": {"autoEnableForNewConnections": "yes"}}), "autoEnableForNewConnections"),
        (json!({"vaultPlus": {"applyToExistingConnections": 1}}), "applyToExistingConnections"),
        (json!({"vaultPlus": {"defaultSettings": []}}), "defaultSettings"),
        (json!({"vaultPlus": "on"}), "vaultPlus"),
        // A valid change beside an invalid one is not applied either.
        (
            json!({"vaultPlus": {"autoEnableForNewConnections": false, "applyToExistingConnections": true,
                                 "defaultSettings": {"retentionDays": 3, "imageQualities": ["nope"]}}}),
            "imageQualities",
        ),
    ]);
    let mut soft = Soft::default();
    for (body, field) in cases {
        let r = patch_org(&s, body.clone()).await;
        let what = format!("PATCH /v2/account/settings {body}");
        soft.check(&what, || assert_bad_request(&r, &[field], &what));
        // Undo anything a wrongly accepted patch changed, so that every row
        // is judged on its own.
        if r.status == 200 {
            let _ = patch_org(&s, json!({"vaultPlus": before["vaultPlus"].clone()})).await;
        }
    }
    soft.finish();
    assert_eq!(org_settings(&s).await, before);
    assert_eq!(state(&s, "conn_a").await, conn_before);
}

#[tokio::test]
async fn apply_to_existing_connections_answers_a_broadcast_result_and_pushes_the_defaults() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let kb = s.create_key("orgb", &["ACCOUNT"]);
    s.add_connection("orgb", "conn_x");
    let v = create(&s, "conn_a", "1", "full", "image/jpeg", 10, None).await;
    let r = send(
        with_key(
            &s,
            Some(&kb),
            Method::PUT,
            "/v2/vault-plus/media/1/variants/full",
        )
        .header("x-connection-id", "conn_x")
        .header("content-type", "image/jpeg")
        .body(content("1", "full", 10)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let x = r.body;

    let r = patch_org(
        &s,
        json!({"vaultPlus": {"applyToExistingConnections": true, "defaultSettings": {"retentionDays": 30}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body["broadcastResult"];
    assert_eq!(b["affectedConnections"], json!(2), "{}", r.body);
    for p in b["purgeResults"].as_array().expect("purgeResults array") {
        assert_eq!(
            keys_of(p),
            key_set(&["connectionId", "purgedCount", "freedBytes"]),
            "{p}"
        );
        assert!(
            ["conn_a", "conn_b"].contains(&p["connectionId"].as_str().unwrap()),
            "{p}"
        );
        int(&p["purgedCount"]);
        int(&p["freedBytes"]);
    }
    assert_eq!(
        r.body["settings"]["vaultPlus"]["defaultSettings"]["retentionDays"],
        json!(30)
    );

    // conn_a now runs under retentionDays 30; org B's connection does not.
    let a = get_ok(&s, "conn_a", "/v2/vault-plus/media/1").await;
    assert_eq!(
        int(&a["media"]["full"]["expiresAt"]),
        int(&v["storedAt"]) + 30 * DAY_MS
    );
    let xb = send(
        with_key(&s, Some(&kb), Method::GET, "/v2/vault-plus/media/1")
            .header("x-connection-id", "conn_x"),
    )
    .await
    .ok(200);
    assert_eq!(
        int(&xb["media"]["full"]["expiresAt"]),
        int(&x["createdAt"]) + 365 * DAY_MS
    );
    let org_b = send(with_key(&s, Some(&kb), Method::GET, "/v2/account/settings"))
        .await
        .ok(200);
    assert_eq!(org_b["vaultPlus"]["defaultSettings"], defaults());
}

#[tokio::test]
async fn new_connections_follow_auto_enable_and_the_current_defaults() {
    let s = TestServer::start().await;
    let r = patch_org(
        &s,
        json!({"vaultPlus": {"autoEnableForNewConnections": false, "defaultSettings": {"retentionDays": 30}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.add_connection("default", "conn_off");
    let off = conn_settings(&s, "conn_off").await.ok(200);
    assert_eq!(off["vaultPlus"]["enabled"], json!(false), "{off}");
    let r = upload(
        &s,
        "conn_off",
        "1",
        "full",
        "image/jpeg",
        content("1", "full", 5),
        None,
    )
    .await;
    assert_error(&r, 403, "FORBIDDEN");
    assert_eq!(r.body["error"], "Vault+ is not enabled for this connection");

    let out = s.cli(&[
        "connections",
        "add",
        "--org",
        "default",
        "--enabled",
        "conn_on",
    ]);
    crate::harness::assert_success(&out);
    let v = create(&s, "conn_on", "1", "full", "image/jpeg", 5, None).await;
    assert_eq!(
        int(&v["expiresAt"]),
        int(&v["storedAt"]) + 30 * DAY_MS,
        "new connection uses the new default"
    );
}

#[tokio::test]
async fn connection_settings_get_shape_and_stats() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "1", "thumb", "image/jpeg", 100, None).await;
    let got = conn_settings(&s, "conn_a").await.ok(200);
    assert_eq!(
        keys_of(&got),
        key_set(&["connectionId", "vaultPlus"]),
        "{got}"
    );
    assert_eq!(got["connectionId"], "conn_a");
    let vp = &got["vaultPlus"];
    assert_eq!(
        keys_of(vp),
        key_set(&["enabled", "settingsOverrides", "stats"]),
        "{vp}"
    );
    assert_eq!(vp["enabled"], json!(true));
    assert_no_overrides(&vp["settingsOverrides"]);
    let st = &vp["stats"];
    assert_eq!(
        keys_of(st),
        key_set(&[
            "vaultPlusEnabled",
            "totalStorageBytes",
            "storageLimitBytes",
            "mediaCount",
            "storedCount",
            "storageUsagePercent"
        ]),
        "{st}"
    );
    assert_eq!(st["vaultPlusEnabled"], json!(true));
    assert_eq!(st["totalStorageBytes"], json!(1100));
    assert_eq!(st["storageLimitBytes"], json!(0));
    assert_eq!(st["storedCount"], json!(2));
    int(&st["mediaCount"]);
    assert!(st["storageUsagePercent"].is_number(), "{st}");

    let r = patch_conn_settings(
        &s,
        "conn_a",
        json!({"vaultPlus": {"settings": {"storageLimitBytes": 2200}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let st = conn_settings(&s, "conn_a").await.ok(200)["vaultPlus"]["stats"].clone();
    assert_eq!(st["storageLimitBytes"], json!(2200));
    assert_eq!(st["storageUsagePercent"].as_f64(), Some(50.0), "{st}");
}

#[tokio::test]
async fn connection_overrides_are_partial_and_null_resets_them() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    let r = patch_conn_settings(
        &s,
        "conn_a",
        json!({"vaultPlus": {"settings": {"retentionDays": 5, "imageQualities": ["full"]}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["settings"]["connectionId"], "conn_a");
    assert_eq!(r.body["settings"]["vaultPlus"]["enabled"], json!(true));
    let o = &r.body["settings"]["vaultPlus"]["settingsOverrides"];
    assert_eq!(o["retentionDays"], json!(5), "{o}");
    assert_eq!(o["imageQualities"], json!(["full"]), "{o}");
    let got = conn_settings(&s, "conn_a").await.ok(200);
    assert_eq!(got["vaultPlus"]["settingsOverrides"], *o);
    // Overrides are per connection: the org defaults are untouched.
    assert_eq!(
        org_settings(&s).await["vaultPlus"]["defaultSettings"],
        defaults()
    );

    let r = patch_conn_settings(&s, "conn_a", json!({"vaultPlus": {"settings": null}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_overrides(&r.body["settings"]["vaultPlus"]["settingsOverrides"]);
    let got = conn_settings(&s, "conn_a").await.ok(200);
    assert_no_overrides(&got["vaultPlus"]["settingsOverrides"]);
    assert_eq!(
        got["vaultPlus"]["enabled"],
        json!(true),
        "a reset does not touch `enabled`"
    );
}

#[tokio::test]
async fn bad_connection_settings_patches_are_400_naming_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    create(&s, "conn_a", "1", "full", "image/jpeg", 100, None).await;
    let before = state(&s, "conn_a").await;
    let mut cases: Vec<(Value, &str)> = bad_settings_cases()
        .into_iter()
        .map(|(v, f)| (json!({"vaultPlus": {"settings": v}}), f))
        .collect();
    cases.extend([
        (json!({"vaultPlus": {"enabled": "false"}}), "enabled"),
        (json!({"vaultPlus": {"enabled": 0}}), "enabled"),
        (json!({"vaultPlus": {"settings": "none"}}), "settings"),
        (json!({"vaultPlus": 7}), "vaultPlus"),
        // Disabling beside an invalid setting must neither disable nor purge.
        (
            json!({"vaultPlus": {"enabled": false, "settings": {"retentionDays": -1}}}),
            "retentionDays",
        ),
    ]);
    let mut soft = Soft::default();
    for (body, field) in cases {
        let r = patch_conn_settings(&s, "conn_a", body.clone()).await;
        let what = format!("PATCH connection settings {body}");
        soft.check(&what, || assert_bad_request(&r, &[field], &what));
    }
    soft.finish();
    assert_eq!(state(&s, "conn_a").await, before);
    // Unknown connection in the path: 404.
    for conn in ["conn_nope", "CONN_A"] {
        let r = conn_settings(&s, conn).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
        let r = patch_conn_settings(&s, conn, json!({"vaultPlus": {"enabled": true}})).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
}

#[tokio::test]
async fn disabling_vault_plus_purges_the_connection_and_answers_purge_result() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let v = create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "1", "thumb", "image/jpeg", 100, None).await;
    create(&s, "conn_a", "2", "full", "audio/mpeg", 500, Some("4")).await;
    create(&s, "conn_b", "1", "full", "image/jpeg", 7, None).await;

    let r = patch_conn_settings(&s, "conn_a", json!({"vaultPlus": {"enabled": false}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["purgeResult"],
        json!({"purgedCount": 3, "freedBytes": 1600}),
        "{}",
        r.body
    );
    assert_eq!(r.body["settings"]["vaultPlus"]["enabled"], json!(false));
    assert_eq!(
        r.body["settings"]["vaultPlus"]["stats"]["vaultPlusEnabled"],
        json!(false)
    );
    assert_eq!(
        stats_of(&s).await,
        json!({"totalConnections": 2, "connectionsWithVaultPlus": 1, "totalStorageBytes": 7, "totalMediaCount": 1})
    );
    let list = send(s.req(Method::GET, "/v2/account/connections"))
        .await
        .ok(200);
    let a = list["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "conn_a")
        .unwrap();
    assert_eq!(a["vaultPlus"], json!({"enabled": false}));
    assert_eq!(
        send(s.http.get(v["url"].as_str().unwrap())).await.status,
        404
    );

    // Enabling again brings nothing back.
    let r = patch_conn_settings(&s, "conn_a", json!({"vaultPlus": {"enabled": true}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get_ok(&s, "conn_a", "/v2/vault-plus/media").await,
        json!({"items": []})
    );
    assert_eq!(
        status_of(&s, "conn_a").await,
        json!({"connectionId": "conn_a", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
    );
    create(&s, "conn_a", "1", "full", "image/jpeg", 3, None).await;
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().iter().map(|(_, n)| n).sum::<u64>(), 10);
}

#[tokio::test]
async fn a_disabled_connection_reads_empty_and_refuses_writes_with_403() {
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
    assert_eq!(
        get_ok(&s, "conn_off", "/v2/vault-plus/media").await,
        json!({"items": []})
    );
    let batch = send(
        s.conn(Method::POST, "/v2/vault-plus/media/batch", "conn_off")
            .json(&json!({"mediaIds": ["1"]})),
    )
    .await
    .ok(200);
    assert_eq!(batch, json!({"items": []}));
    assert_eq!(
        status_of(&s, "conn_off").await,
        json!({"connectionId": "conn_off", "storedCount": 0, "pendingCount": 0, "totalSizeBytes": 0})
    );
    assert_error(
        &get(&s, "conn_off", "/v2/vault-plus/media/1").await,
        404,
        "RESOURCE_NOT_FOUND",
    );

    let before = state(&s, "conn_off").await;
    let r = upload(
        &s,
        "conn_off",
        "1",
        "full",
        "image/jpeg",
        content("1", "full", 10),
        None,
    )
    .await;
    assert_error(&r, 403, "FORBIDDEN");
    assert_eq!(r.body["error"], "Vault+ is not enabled for this connection");
    assert_eq!(state(&s, "conn_off").await, before);
}

fn conn_ids(page: &Value) -> Vec<String> {
    page["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn connections_list_pages_with_limit_and_offset() {
    let s = TestServer::start().await;
    let names = ["conn_1", "conn_2", "conn_3", "conn_4"];
    for n in names {
        s.add_connection("default", n);
    }
    let out = s.cli(&[
        "connections",
        "add",
        "--org",
        "default",
        "--disabled",
        "conn_5",
    ]);
    assert!(out.status.success());

    let all = send(s.req(Method::GET, "/v2/account/connections"))
        .await
        .ok(200);
    assert_eq!(all["hasMore"], json!(false));
    let mut got = conn_ids(&all);
    got.sort();
    assert_eq!(got, ["conn_1", "conn_2", "conn_3", "conn_4", "conn_5"]);
    for c in all["list"].as_array().unwrap() {
        assert_eq!(
            keys_of(c),
            key_set(&[
                "id",
                "status",
                "createdAt",
                "updatedAt",
                "imported",
                "permissions",
                "vaultPlus"
            ]),
            "{c}"
        );
        assert_eq!(c["status"], "active");
        assert_eq!(
            c["vaultPlus"],
            json!({"enabled": c["id"] != "conn_5"}),
            "{c}"
        );
    }

    let mut paged = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = send(s.req(
            Method::GET,
            &format!("/v2/account/connections?limit=2&offset={offset}"),
        ))
        .await
        .ok(200);
        let ids = conn_ids(&page);
        pages += 1;
        paged.extend(ids.clone());
        if page["hasMore"] == json!(true) {
            assert_eq!(ids.len(), 2);
            assert_eq!(page["nextOffset"], json!(offset + 2), "{page}");
            offset += 2;
        } else {
            assert_eq!(page["hasMore"], json!(false), "{page}");
            break;
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    let mut sorted = paged.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["conn_1", "conn_2", "conn_3", "conn_4", "conn_5"],
        "no skip, no repeat: {paged:?}"
    );

    for (q, name) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
    ] {
        let r = send(s.req(Method::GET, &format!("/v2/account/connections?{q}"))).await;
        assert_bad_request(&r, &[name], q);
    }
}

#[tokio::test]
async fn the_connections_list_defaults_to_20() {
    let s = TestServer::start().await;
    for i in 0..21 {
        s.add_connection("default", &format!("conn_{i:02}"));
    }
    let page = send(s.req(Method::GET, "/v2/account/connections"))
        .await
        .ok(200);
    assert_eq!(conn_ids(&page).len(), 20);
    assert_eq!(page["hasMore"], json!(true));
    assert_eq!(page["nextOffset"], json!(20));
    let full = send(s.req(Method::GET, "/v2/account/connections?limit=100"))
        .await
        .ok(200);
    assert_eq!(conn_ids(&full).len(), 21);
    assert_eq!(full["hasMore"], json!(false));
}

#[tokio::test]
async fn deleting_a_connection_purges_it_and_forgets_it() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let v = create(&s, "conn_a", "1", "full", "image/jpeg", 1000, None).await;
    create(&s, "conn_a", "2", "full", "image/jpeg", 100, None).await;
    create(&s, "conn_b", "1", "full", "image/jpeg", 40, None).await;
    let b_before = state(&s, "conn_b").await["media"].clone();

    let r = send(s.req(Method::DELETE, "/v2/account/connections/conn_a")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "connectionId": "conn_a", "purgeResult": {"purgedCount": 2, "freedBytes": 1100}})
    );
    assert_connection_not_found(
        &get(&s, "conn_a", "/v2/vault-plus/media").await,
        "deleted connection",
    );
    assert_error(
        &conn_settings(&s, "conn_a").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let list = send(s.req(Method::GET, "/v2/account/connections"))
        .await
        .ok(200);
    assert_eq!(conn_ids(&list), ["conn_b"]);
    assert_eq!(
        stats_of(&s).await,
        json!({"totalConnections": 1, "connectionsWithVaultPlus": 1, "totalStorageBytes": 40, "totalMediaCount": 1})
    );
    assert_eq!(
        send(s.http.get(v["url"].as_str().unwrap())).await.status,
        404
    );
    assert_eq!(state(&s, "conn_b").await["media"], b_before);

    for conn in ["conn_a", "conn_never"] {
        let r = send(s.req(Method::DELETE, &format!("/v2/account/connections/{conn}"))).await;
        assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    }
    s.wait_reclaimed().await;
    assert_eq!(s.blob_files().iter().map(|(_, n)| n).sum::<u64>(), 40);
}
